"""Configuration QR codes scanned with the terminal's own scanner."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import wiring
from broker import contract as kc
from broker.contract.signing import public_key_text
from cloud_api.provisioning import qr_text, write_qr_png
from cloud_api.signing_keys import SigningKey
from drivers.sim.scanner import VirtualSerialScanner
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent

CLOUD_KEY = SigningKey("cloud-2026", Ed25519PrivateKey.generate())


def settings(**overrides: object) -> kc.Provisioning:
    values: dict[str, object] = {
        "point_of_sale": "POS-BERLIN-1",
        "language": "de",
        "rooms": ["Saal 1", "Saal 2"],
        "issued_at": datetime.now(UTC),
    }
    values.update(overrides)
    return kc.Provisioning(**values)  # type: ignore[arg-type]


@pytest.fixture
def scanner() -> Iterator[VirtualSerialScanner]:
    sim = VirtualSerialScanner().start()
    yield sim
    sim.stop()


@pytest.fixture
def agent(tmp_path: Path, scanner: VirtualSerialScanner) -> Iterator[InProcessAgent]:
    extra = f"""
[trust]
cloud_keys = {{ "{CLOUD_KEY.key_id}" = "{CLOUD_KEY.public_text}" }}

[[scanners]]
name = "hand"
url = "serial://{scanner.path}"
"""
    running = InProcessAgent(write_agent_config(tmp_path / "agent", extra=extra)).start()
    yield running
    running.stop()


def provisioner(agent: InProcessAgent):
    return agent.agent.component(wiring.PROVISIONING)


def file_settings(agent: InProcessAgent) -> dict:
    assert agent.agent.config_path is not None
    return tomllib.loads(agent.agent.config_path.read_text())


def test_signed_code_scanned_on_the_serial_scanner_reconfigures(
    agent: InProcessAgent, scanner: VirtualSerialScanner, tmp_path: Path
) -> None:
    text = qr_text(settings(broker_host="mqtt.shop.example", broker_port=8883), CLOUD_KEY)
    assert write_qr_png(text, tmp_path / "code.png").stat().st_size > 0
    scanner.scan(text)
    agent.wait_until(lambda: provisioner(agent).applied == 1 or provisioner(agent).refused > 0, 15, "code handled")
    assert provisioner(agent).applied == 1, provisioner(agent).last_result
    assert agent.agent.config.site.point_of_sale == "POS-BERLIN-1"  # live
    assert agent.agent.config.site.language == "de"
    assert agent.agent.config.site.rooms == ["Saal 1", "Saal 2"]
    on_disk = file_settings(agent)
    assert on_disk["mqtt"]["host"] == "mqtt.shop.example" and on_disk["mqtt"]["port"] == 8883
    assert set(provisioner(agent).last_result["restart_needed"]) == {"mqtt.host", "mqtt.port"}
    assert "mqtt.host" in agent.agent.status()["restart_needed"]


def test_tampered_code_changes_nothing(agent: InProcessAgent, scanner: VirtualSerialScanner) -> None:
    good = qr_text(settings(point_of_sale="POS-GOOD"), CLOUD_KEY)
    _body, signature = good[len("KASSA-PROV1:") :].split(".")
    forged_settings = settings(point_of_sale="POS-EVIL")
    forged_body = kc.make_qr_text(forged_settings, Ed25519PrivateKey.generate(), CLOUD_KEY.key_id)[12:].split(".")[0]
    before = file_settings(agent)
    scanner.scan("KASSA-PROV1:" + forged_body + "." + signature)  # their settings, our signature
    agent.wait_until(lambda: provisioner(agent).refused == 1, 15, "tampered code refused")
    assert "signature" in provisioner(agent).last_result["reason"]
    assert file_settings(agent) == before
    assert agent.agent.config.site.point_of_sale is None


def test_foreign_key_expired_and_replayed_codes_are_ignored(
    agent: InProcessAgent, scanner: VirtualSerialScanner
) -> None:
    foreign = SigningKey(CLOUD_KEY.key_id, Ed25519PrivateKey.generate())
    scanner.scan(qr_text(settings(point_of_sale="POS-FOREIGN"), foreign))
    unknown_kid = SigningKey("someone-else", Ed25519PrivateKey.generate())
    scanner.scan(qr_text(settings(point_of_sale="POS-UNKNOWN"), unknown_kid))
    expired = settings(point_of_sale="POS-LATE", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    scanner.scan(qr_text(expired, CLOUD_KEY))
    agent.wait_until(lambda: provisioner(agent).refused == 3, 15, "three refusals")
    assert agent.agent.config.site.point_of_sale is None

    newer, older = (
        settings(point_of_sale="POS-NEW"),
        settings(point_of_sale="POS-OLD", issued_at=datetime.now(UTC) - timedelta(days=1)),
    )
    scanner.scan(qr_text(newer, CLOUD_KEY))
    agent.wait_until(lambda: provisioner(agent).applied == 1, 15, "newer applied")
    scanner.scan(qr_text(older, CLOUD_KEY))  # an old code must not roll the terminal back
    agent.wait_until(lambda: provisioner(agent).refused == 4, 15, "older refused")
    assert agent.agent.config.site.point_of_sale == "POS-NEW"


def test_ordinary_barcodes_are_not_touched(agent: InProcessAgent, scanner: VirtualSerialScanner) -> None:
    scanner.scan("4006381333931")
    agent.wait_until(lambda: agent.agent.component(wiring.HARDWARE).scans == 1, 10, "scan delivered")
    assert provisioner(agent).applied == provisioner(agent).refused == 0


def test_bad_pinned_key_is_a_config_error(tmp_path: Path) -> None:
    from agent.config import ConfigError, load_config

    config = write_agent_config(tmp_path / "agent", extra='[trust]\ncloud_keys = { k1 = "not-a-key" }\n')
    with pytest.raises(ConfigError, match="cloud key 'k1' is not an Ed25519 public key"):
        load_config(config, environ={})
    assert public_key_text(CLOUD_KEY.private_key.public_key()) == CLOUD_KEY.public_text
