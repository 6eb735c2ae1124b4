from __future__ import annotations

from agent.config_doc import render
from tests.support.agent_process import REPO_ROOT


def test_configuration_reference_is_current() -> None:
    on_disk = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert on_disk == render(), (
        "docs/configuration.md is stale: run `python -m agent.config_doc > docs/configuration.md`"
    )


def test_reference_lists_every_key() -> None:
    text = render()
    for key in ("device_id", "KASSA_PATHS__STATE_DIR", "KASSA_MQTT__PASSWORD", "KASSA_LIFECYCLE__SHUTDOWN_TIMEOUT_S"):
        assert key in text
