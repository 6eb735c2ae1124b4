from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import Mosquitto
from tests.support.agent_process import AgentProcess, write_agent_config


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto on a free port, killed at the end of the test."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def agent_config(tmp_path: Path) -> Path:
    return write_agent_config(tmp_path / "agent")


@pytest.fixture
def agent_process(agent_config: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(agent_config)
    try:
        yield process
    finally:
        process.kill()
