"""Shared by the fuzz modules: one in-process agent (a cloud key pinned, no broker reachable)
that takes what the cloud pushes (test_fuzz_mqtt.py) and scanned configuration codes
(test_fuzz_qr.py). Started once: each agent start costs about a second of the time budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.contract.examples import DEVICE_ID
from tests.support.agent_process import write_agent_config
from tests.support.inprocess import InProcessAgent
from tests.support.licence import trust_section


@pytest.fixture(scope="session")
def inprocess_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgent]:
    config = write_agent_config(tmp_path_factory.mktemp("agent"), device_id=DEVICE_ID, extra=trust_section())
    agent = InProcessAgent(config).start()
    try:
        yield agent
    finally:
        agent.stop()
