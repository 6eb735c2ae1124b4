from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

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


# Property tests (tests/fuzz and others): `make test` replays the same examples on every run
# (derandomized, no example database), so a red CI run is reproducible and never a coin toss.
# `make fuzz` explores with fresh random examples: run it to look for new inputs that break us.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("KASSA_HYPOTHESIS_PROFILE", "ci"))
