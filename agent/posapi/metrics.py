"""``GET /metrics``: the agent in Prometheus text format, on the POS API's listener (docs/metrics.md).

Every value is read from the components at scrape time by ``AgentCollector``, registered on a
registry of this app's own (not prometheus_client's global one), so two agents in one process (tests)
never share or collide. Who may scrape: a loopback client, or anyone with a valid POS token.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from agent.posapi.access import is_loopback
from agent.posapi.routes import require_pos
from agent.posapi.service import PosService
from agent.version import agent_version

PATH = "/metrics"


_bearer = HTTPBearer(auto_error=False)


def local_or_pos_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """A loopback client may read; from another host it takes a valid POS token (routes.require_pos)."""
    if not is_loopback(request.client.host if request.client else None):
        require_pos(request, credentials)


class AgentCollector(Collector):
    """Reads the POS API's components (``PosParts``) and the runtime's outbox when scraped."""

    def __init__(self, pos: PosService) -> None:
        self.pos = pos

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        parts = self.pos.parts
        yield InfoMetricFamily(
            "kassa_agent",
            "The agent's version and device id.",
            {"version": agent_version(), "device_id": self._device()},
        )

        stats = self.pos.runtime.outbox.stats()
        yield GaugeMetricFamily("kassa_agent_outbox_depth", "Up messages waiting for the cloud's ack.", stats.depth)
        yield GaugeMetricFamily(
            "kassa_agent_outbox_oldest_age_seconds",
            "Age of the oldest message in the outbox (0 when it is empty).",
            stats.oldest_age_s or 0.0,
        )
        yield GaugeMetricFamily(
            "kassa_agent_outbox_rejected", "Up messages the cloud rejected (kept for a technician).", stats.rejected
        )

        committed = parts.sales.committed
        yield CounterMetricFamily(
            "kassa_agent_sales_committed", "Sales committed since the agent started.", committed["sales"]
        )
        yield CounterMetricFamily(
            "kassa_agent_refunds_committed", "Refunds committed since the agent started.", committed["refunds"]
        )
        yield CounterMetricFamily(
            "kassa_agent_sale_replays",
            "Sale and refund requests answered from an earlier commit (same request_id) since start.",
            committed["replays"],
        )

        jobs = GaugeMetricFamily(
            "kassa_agent_print_jobs", "Print jobs in the store by printer and state.", labels=["printer", "state"]
        )
        for (printer, state), count in sorted(parts.hardware.queue.counts_by_state().items()):
            jobs.add_metric([printer, state], count)
        yield jobs

        scans = CounterMetricFamily(
            "kassa_agent_scans", "Barcode scans since the agent started, by outcome.", labels=["outcome"]
        )
        scans.add_metric(["accepted"], parts.hardware.scans)
        scans.add_metric(["rejected"], parts.hardware.scans_rejected)
        yield scans

        link = parts.cloud.link
        yield GaugeMetricFamily(
            "kassa_agent_mqtt_connected",
            "1 while the cloud link is connected to the broker.",
            int(parts.cloud.connected),
        )
        yield CounterMetricFamily(
            "kassa_agent_mqtt_connects",
            "Successful broker connections since the agent started (reconnects are this minus one).",
            0 if link is None else link.mqtt.connects,
        )

    def _device(self) -> str:
        return self.pos.runtime.device_id


def add_metrics_route(app: FastAPI, pos: PosService) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(pos))

    async def metrics() -> Response:  # on the agent loop, where the components and the store are read
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        PATH,
        metrics,
        methods=["GET"],
        dependencies=[Depends(local_or_pos_token)],
        include_in_schema=False,
        summary="Prometheus metrics",
    )
