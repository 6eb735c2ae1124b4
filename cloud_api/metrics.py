"""``GET /metrics``: the cloud in Prometheus text format (docs/metrics.md).

The ingest workers and the push publisher run in other processes, so what they did is read from
the database at scrape time (``CloudCollector``); only the HTTP latency histogram is this
process's own. Both live on a registry of the app's own, not prometheus_client's global one.

Who may scrape: with ``metrics_token`` set, whoever sends it as ``Authorization: Bearer``; without
it, loopback clients only (a Prometheus on the same host, or behind an SSH tunnel).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, and_, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker import contract as kc
from cloud_api.api.errors import ApiError
from cloud_api.ingest.models import DevicePresence, DeviceStream, IngestedMessage, SequenceGap
from cloud_api.pushes.models import DesiredState, DeviceCommand

PATH = "/metrics"
LAG_WINDOW_S = 300.0  # a device whose newest message is older than this is idle, not lagging
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; the ingest writes UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CloudCollector(Collector):
    """Fleet figures read from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            outcomes = dict(
                conn.execute(select(IngestedMessage.outcome, func.count()).group_by(IngestedMessage.outcome)).all()
            )
            online = conn.execute(
                select(func.count()).select_from(DevicePresence).where(DevicePresence.state == kc.Presence.ONLINE.value)
            ).scalar_one()
            gaps, gap_seqs = conn.execute(
                select(func.count(), func.sum(SequenceGap.last_missing - SequenceGap.first_missing + 1)).where(
                    SequenceGap.closed_at.is_(None)
                )
            ).one()
            desired_pending = conn.execute(
                select(func.count()).select_from(DesiredState).where(DesiredState.publish_pending.is_(True))
            ).scalar_one()
            commands_open = conn.execute(
                select(func.count()).select_from(DeviceCommand).where(DeviceCommand.open.is_(True))
            ).scalar_one()
            # Each device's newest message, found through the (device_id, seq) index: one row per device.
            newest = conn.execute(
                select(IngestedMessage.received_at, IngestedMessage.created_at, IngestedMessage.clock_trusted).join(
                    DeviceStream,
                    and_(
                        IngestedMessage.device_id == DeviceStream.device_id, IngestedMessage.seq == DeviceStream.max_seq
                    ),
                )
            ).all()

        ingested = CounterMetricFamily(
            "kassa_cloud_ingested_messages", "Up messages the ingest has settled, by outcome.", labels=["outcome"]
        )
        for outcome in ("applied", "rejected"):
            ingested.add_metric([outcome], outcomes.get(outcome, 0))
        yield ingested

        lag = 0.0
        last_received: datetime | None = None
        for received_at, created_at, clock_trusted in newest:
            received = _utc(received_at)
            last_received = received if last_received is None else max(last_received, received)
            if clock_trusted and created_at is not None and (now - received).total_seconds() <= LAG_WINDOW_S:
                lag = max(lag, (received - _utc(created_at)).total_seconds())
        yield GaugeMetricFamily(
            "kassa_cloud_ingest_lag_seconds",
            f"Largest delay from a device making its newest message to the cloud recording it, over devices "
            f"heard from in the last {LAG_WINDOW_S:.0f} s with a trusted clock (0 when none).",
            max(lag, 0.0),
        )
        if last_received is not None:
            yield GaugeMetricFamily(
                "kassa_cloud_ingest_last_message_age_seconds",
                "Seconds since the newest message of any device was recorded.",
                max((now - last_received).total_seconds(), 0.0),
            )
        yield GaugeMetricFamily("kassa_cloud_devices_online", "Devices whose retained status is online.", online)
        yield GaugeMetricFamily("kassa_cloud_sequence_gaps_open", "Open sequence gaps over all devices.", gaps)
        yield GaugeMetricFamily(
            "kassa_cloud_sequence_gap_seqs",
            "Sequence numbers inside open gaps (an upper bound of the messages still missing).",
            gap_seqs or 0,
        )
        queue = GaugeMetricFamily(
            "kassa_cloud_push_queue", "Pushes waiting for the publisher, by kind.", labels=["kind"]
        )
        queue.add_metric(["desired_state"], desired_pending)
        queue.add_metric(["command"], commands_open)
        yield queue


class RequestLatency:
    """ASGI middleware timing each HTTP request into a histogram by method, route template and status.

    The route is the matched path template (``/devices/{device_id}``), never the raw path, so the
    number of series stays bounded; a request no route matched counts as ``unmatched``.
    """

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)


def is_loopback(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def may_scrape(request: Request, token: str | None) -> bool:
    """The configured token when there is one (compared in constant time), else loopback only."""
    if token is None:
        return is_loopback(request.client.host if request.client else None)
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def install(app: FastAPI, engine: Engine, token: str | None) -> None:
    """Add GET /metrics and the latency middleware to the cloud's app."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CloudCollector(engine))
    latency = Histogram(
        "kassa_cloud_http_request_duration_seconds",
        "Time to answer an HTTP request of the cloud API, by method, route and status.",
        ["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    app.add_middleware(RequestLatency, histogram=latency)

    @app.get(PATH, include_in_schema=False, summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        if not may_scrape(request, token):
            raise ApiError(
                403,
                "metrics.forbidden",
                "metrics need Authorization: Bearer <metrics token> (or, unset, a loopback client)",
            )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
