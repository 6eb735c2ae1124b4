"""Fixtures of the cloud tests: the API (tests/cloud/test_api_*.py, see api_support.py) and
ingest's databases, devices and workers (tests/cloud/test_ingest_*.py, see ingest_support.py),
and a real SMTP server for the mail tests (`smtp_server`, see tests/support/smtp.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from broker.launcher import Mosquitto
from cloud_api.db import make_engine
from cloud_api.ingest import IngestWorker, WorkerOptions
from cloud_api.schema import upgrade as upgrade_schema
from tests.cloud.api_support import (
    BACKENDS,
    api,  # noqa: F401 - a fixture, found by name
    private_database,
)
from tests.cloud.ingest_support import Device
from tests.cloud.web_support import cloud  # noqa: F401 - a fixture, found by name
from tests.support.smtp import smtp_server  # noqa: F401 - a fixture, found by name


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A private database: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    with private_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- builders


@pytest.fixture
def devices(mosquitto: Mosquitto) -> Iterator[Callable[[str], Device]]:
    made: list[Device] = []

    def make(device_id: str) -> Device:
        made.append(Device(mosquitto, device_id))
        return made[-1]

    yield make
    for device in made:
        device.close()


@pytest.fixture
def workers(engine: Engine, mosquitto: Mosquitto) -> Iterator[Callable[[str], IngestWorker]]:
    started: list[IngestWorker] = []

    def start(worker_id: str) -> IngestWorker:
        worker = IngestWorker(
            engine, mosquitto.host, mosquitto.port, worker_id, options=WorkerOptions(reconnect_min_s=0.1)
        ).start()
        started.append(worker)
        assert worker.wait_subscribed(10), "worker did not subscribe"
        return worker

    yield start
    for worker in started:
        worker.stop()
