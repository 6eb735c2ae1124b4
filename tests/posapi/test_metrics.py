"""GET /metrics of a running agent (POS API listener) and of the cloud API, parsed as Prometheus text."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client.parser import text_string_to_metric_families

from agent.posapi.access import is_loopback
from agent.posapi.errors import ApiError
from agent.posapi.metrics import local_or_pos_token
from agent.posapi.tokens import PosTokens
from agent.store import Store
from broker.launcher import Mosquitto
from cloud_api.settings import CloudSettings
from drivers.sim.scanner import VirtualSerialScanner
from tests.posapi.support import DEVICE, sale_body, wait_for
from tests.support.cloud_http import live_api
from tests.support.terminal import Terminal, make_terminal

AGENT_METRICS = {
    "kassa_agent_info",
    "kassa_agent_outbox_depth",
    "kassa_agent_outbox_oldest_age_seconds",
    "kassa_agent_outbox_rejected",
    "kassa_agent_sales_committed",
    "kassa_agent_refunds_committed",
    "kassa_agent_sale_replays",
    "kassa_agent_print_jobs",
    "kassa_agent_scans",
    "kassa_agent_mqtt_connected",
    "kassa_agent_mqtt_connects",
}
CLOUD_METRICS = {
    "kassa_cloud_ingested_messages",
    "kassa_cloud_ingest_lag_seconds",
    "kassa_cloud_ingest_last_message_age_seconds",
    "kassa_cloud_devices_online",
    "kassa_cloud_sequence_gaps_open",
    "kassa_cloud_sequence_gap_seqs",
    "kassa_cloud_push_queue",
    "kassa_cloud_http_request_duration_seconds",
}


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer: (sample name, sorted labels) -> value; the family names under ("", ())."""
    reply = httpx.get(url, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(reply.text):
        samples[("#family", (("name", family.name),))] = 0
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def families(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    return {labels[0][1] for name, labels in samples if name == "#family"}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def outbox_rows(state_dir: Path) -> int:
    with sqlite3.connect(f"file:{state_dir / 'agent.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


@pytest.fixture
def scanner() -> Iterator[VirtualSerialScanner]:
    with VirtualSerialScanner() as device:
        yield device


@pytest.fixture
def unacked(tmp_path: Path, mosquitto: Mosquitto, scanner: VirtualSerialScanner) -> Iterator[Terminal]:
    """A terminal ready to sell with no cloud worker: nothing is acked, so the outbox keeps every row."""
    for terminal in make_terminal(tmp_path, mosquitto, with_worker=False, scanner=scanner):
        terminal.ready_to_sell()
        yield terminal


def test_agent_metrics_after_one_sale_and_one_scan(unacked: Terminal, scanner: VirtualSerialScanner) -> None:
    pos = unacked.pos()
    metrics_url = str(pos.http.base_url).rstrip("/") + "/metrics"
    pos.login("anna")
    pos.ok("POST", "/v1/sales", sale_body(cash=1500))
    unacked.printer.wait_for_receipts(1, 15)
    scanner.scan("4006381333931")

    def settled() -> dict | None:  # the print job's state and the scan are recorded after their events
        samples = scrape(metrics_url)
        printed = samples.get(("kassa_agent_print_jobs", (("printer", "front"), ("state", "printed"))))
        scanned = samples.get(("kassa_agent_scans_total", (("outcome", "accepted"),)))
        return samples if printed == 1 and scanned == 1 else None

    wait_for(settled, 15, "the printed job and the scan in /metrics")
    before = outbox_rows(unacked.state_dir)
    samples = scrape(metrics_url)  # loopback: no token needed
    after = outbox_rows(unacked.state_dir)

    assert families(samples) >= AGENT_METRICS
    assert value(samples, "kassa_agent_sales_committed_total") == 1
    assert value(samples, "kassa_agent_refunds_committed_total") == 0
    assert value(samples, "kassa_agent_print_jobs", printer="front", state="printed") == 1
    assert value(samples, "kassa_agent_scans_total", outcome="accepted") == 1
    assert before <= value(samples, "kassa_agent_outbox_depth") <= after  # the sale's row is among them
    assert before >= 1
    assert value(samples, "kassa_agent_outbox_oldest_age_seconds") >= 0
    assert value(samples, "kassa_agent_mqtt_connected") == 1
    assert value(samples, "kassa_agent_mqtt_connects_total") >= 1
    info = [dict(labels) for name, labels in samples if name == "kassa_agent_info"]
    assert len(info) == 1 and info[0]["device_id"] == DEVICE and info[0]["version"]


def test_agent_and_cloud_metrics_agree_once_the_sale_is_acked(selling: Terminal) -> None:
    pos = selling.pos()
    agent_url = str(pos.http.base_url).rstrip("/") + "/metrics"
    pos.login("anna")
    pos.ok("POST", "/v1/sales", sale_body(cash=1500))
    selling.cloud.wait_sales(DEVICE, 1, 30)
    wait_for(lambda: scrape(agent_url)[("kassa_agent_outbox_depth", ())] == 0, 30, "outbox acked")
    applied = selling.cloud.applied(DEVICE)

    engine = selling.cloud.engine
    with live_api(CloudSettings(database_url=str(engine.url)), engine) as api:
        httpx.get(api.url + "/healthz", timeout=10)  # one timed request before the scrape
        samples = scrape(api.url + "/metrics")  # loopback, no metrics_token configured
    assert families(samples) >= CLOUD_METRICS
    assert value(samples, "kassa_cloud_ingested_messages_total", outcome="applied") == applied >= 1
    assert value(samples, "kassa_cloud_devices_online") == 1
    assert value(samples, "kassa_cloud_sequence_gaps_open") == 0
    assert value(samples, "kassa_cloud_push_queue", kind="command") == 0
    assert value(samples, "kassa_cloud_ingest_lag_seconds") >= 0
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(samples, "kassa_cloud_http_request_duration_seconds_count", **healthz) == 1


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.168.1.20") and not is_loopback("testclient") and not is_loopback(None)


def test_dashboard_and_docs_name_exactly_the_exposed_metrics() -> None:
    """docs/metrics.md lists every metric the scrapes above find; the Grafana dashboard charts only those."""
    docs = Path(__file__).parents[2] / "docs"
    listed = set(re.findall(r"^\| `(kassa_\w+)` \|", (docs / "metrics.md").read_text(), re.MULTILINE))
    assert {name.removesuffix("_total") for name in listed} == AGENT_METRICS | CLOUD_METRICS
    dashboard = json.loads((docs / "grafana-kassa-fleet.json").read_text())
    charted = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"kassa_\w+", target["expr"])
    }
    assert charted and charted <= AGENT_METRICS | CLOUD_METRICS


def test_another_host_needs_a_valid_pos_token(tmp_path: Path) -> None:
    """The rule of local_or_pos_token, on a real token book: loopback reads freely, others need a live token."""
    with Store.open(tmp_path / "agent.db") as store:
        tokens = PosTokens(store)
        token = tokens.create("prometheus")["token"]
        app = SimpleNamespace(state=SimpleNamespace(pos=SimpleNamespace(tokens=tokens)))

        def ask(host: str, sent: str | None) -> str:
            request = Request({"type": "http", "client": (host, 40000), "app": app, "headers": []})
            credentials = None if sent is None else HTTPAuthorizationCredentials(scheme="Bearer", credentials=sent)
            try:
                local_or_pos_token(request, credentials)
            except ApiError as refused:
                return refused.code
            return "ok"

        assert ask("127.0.0.1", None) == "ok"
        assert ask("10.8.0.5", None) == "pos.token_missing"
        assert ask("10.8.0.5", "kpos_not-a-token") == "pos.token_invalid"
        assert ask("10.8.0.5", token) == "ok"
