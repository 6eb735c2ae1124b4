"""The cloud's GET /metrics: who may scrape it, and fleet figures read from the database at scrape time.

The scrape of a live API next to a running agent is in tests/posapi/test_metrics.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from cloud_api.app import create_app
from cloud_api.db import make_engine
from cloud_api.ingest.models import DevicePresence, SequenceGap
from cloud_api.schema import upgrade as upgrade_schema
from cloud_api.settings import CloudSettings

TOKEN = "scrape-secret-1"


def client(tmp_path: Path, **settings: object) -> TestClient:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    return TestClient(create_app(CloudSettings(database_url=url, **settings), engine))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_without_a_token_only_loopback_may_scrape(tmp_path: Path) -> None:
    reply = client(tmp_path).get("/metrics")  # the test client's address is "testclient", not loopback
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "metrics.forbidden"


def test_with_a_token_it_must_be_sent(tmp_path: Path) -> None:
    api = client(tmp_path, metrics_token=TOKEN)
    assert api.get("/metrics").status_code == 403
    assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    reply = api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")


def test_figures_come_from_the_database_and_latency_by_route_template(tmp_path: Path) -> None:
    api = client(tmp_path, metrics_token=TOKEN)
    engine = api.app.state.engine
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add_all(
            [
                SequenceGap(device_id="pos-a", first_missing=3, last_missing=5, detected_at=now),
                SequenceGap(device_id="pos-a", first_missing=9, last_missing=9, detected_at=now, closed_at=now),
                DevicePresence(
                    device_id="pos-a", state="online", status_message_id=uuid.uuid4(), status_at=now, last_seen_at=now
                ),
                DevicePresence(
                    device_id="pos-b", state="offline", status_message_id=uuid.uuid4(), status_at=now, last_seen_at=now
                ),
            ]
        )
        session.commit()
    api.get("/companies/7/devices/pos-a")  # no admin token: 401, still timed under its template
    found = samples(api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text)

    assert found[("kassa_cloud_sequence_gaps_open", frozenset())] == 1
    assert found[("kassa_cloud_sequence_gap_seqs", frozenset())] == 3
    assert found[("kassa_cloud_devices_online", frozenset())] == 1
    assert found[("kassa_cloud_ingested_messages_total", frozenset({("outcome", "applied")}))] == 0
    assert found[("kassa_cloud_push_queue", frozenset({("kind", "desired_state")}))] == 0
    route = frozenset({("method", "GET"), ("route", "/companies/{company_id}/devices/{device_id}"), ("status", "401")})
    assert found[("kassa_cloud_http_request_duration_seconds_count", route)] == 1
    assert ("kassa_cloud_ingest_last_message_age_seconds", frozenset()) not in found  # nothing ingested yet
