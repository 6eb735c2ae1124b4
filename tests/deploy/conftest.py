from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.tls_broker import Peer, ProductionBroker, make_certs, start_production_broker


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CA, broker certificate, kassa-cloud and two devices, made by broker/production/make-certs.sh."""
    out = tmp_path_factory.mktemp("pki")
    result = make_certs(out, "pos-a", "pos-b")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def rogue_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA with a certificate that claims to be pos-a."""
    out = tmp_path_factory.mktemp("rogue-pki")
    result = make_certs(out, "pos-a")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def production_broker(tmp_path: Path, pki: Path) -> Iterator[ProductionBroker]:
    running = start_production_broker(tmp_path / "broker", pki)
    try:
        yield running
    finally:
        running.broker.kill()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """MQTT clients a test opened; closed after it."""
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        with contextlib.suppress(Exception):
            peer.close()
