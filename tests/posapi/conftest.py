"""Fixtures of the POS API tests: a real agent process with simulated hardware, a real
Mosquitto (tests/conftest.py), MqttPeer pushing the roster and lease, and a real cloud worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.launcher import Mosquitto
from tests.support.terminal import Terminal, make_terminal


@pytest.fixture
def terminal(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Terminal]:
    yield from make_terminal(tmp_path, mosquitto, extra="[cashiers]\nlockout_attempts = 3\n")


@pytest.fixture
def selling(terminal: Terminal) -> Terminal:
    """A terminal with the roster and a valid lease."""
    terminal.ready_to_sell()
    return terminal
