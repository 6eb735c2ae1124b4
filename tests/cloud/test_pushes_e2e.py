"""Pushes end to end: the HTTP API records a change, the publisher in a real `kassa-cloud
worker` process publishes it retained, a real agent process applies it and reports back
through the ingest, and the API shows the device up to date. Also: a device that was
stopped while two changes were made gets the latest one when it starts again, and a
command sent through the API is answered by the agent and shown with its reply."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.launcher import Mosquitto
from cloud_api.app import create_app
from cloud_api.settings import CloudSettings
from tests.support.agent_process import AgentProcess, write_agent_config
from tests.support.cloud import Cloud, company_admin_token

DEVICE = "push-e2e-1"
pytestmark = pytest.mark.slow


@pytest.fixture
def cloud(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Cloud]:
    running = Cloud(tmp_path / "cloud", mosquitto)
    try:
        yield running
    finally:
        running.stop()


def wait(predicate: Callable[[], Any], what: str, logs: Callable[[], str], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{logs()}")


def test_config_and_commands_reach_a_running_and_a_returning_agent(
    tmp_path: Path, mosquitto: Mosquitto, cloud: Cloud
) -> None:
    company_id, token = company_admin_token(cloud.engine, DEVICE)
    path = f"/companies/{company_id}/devices/{DEVICE}"
    headers = {"Authorization": f"Bearer {token}"}
    cloud.start_worker_process("e2e")  # `kassa-cloud worker`: ingest and the push publisher
    agent = AgentProcess(
        write_agent_config(tmp_path / "agent", device_id=DEVICE, host=mosquitto.host, port=mosquitto.port)
    )

    def logs() -> str:
        worker_log = (cloud.workdir / "worker-e2e.log").read_text(errors="replace")
        return f"--- worker ---\n{worker_log[-3000:]}\n--- agent ---\n{agent.log()[-3000:]}"

    def applied() -> int | None:
        return agent.client().call("status")["components"]["cloud"]["state_versions"].get("config")

    with TestClient(create_app(CloudSettings(database_url=cloud.database_url), cloud.engine)) as api:

        def call(method: str, url: str, expect: int, **kw: Any) -> Any:
            reply = api.request(method, url, headers=headers, **kw)
            assert reply.status_code == expect, (method, url, reply.status_code, reply.text)
            return reply.json()

        def up_to_date_at(version: int) -> bool:
            state = call("GET", f"{path}/state", 200)
            config = next(d for d in state["domains"] if d["domain"] == "config")
            return state["up_to_date"] and config["applied_version"] == version

        # a change published before the agent ever connected (no broker session to queue it
        # in): the retained document is what reaches it
        assert call("PUT", f"{path}/state/config", 200, json={"doc": {"language": "en"}})["version"] == 1
        wait(
            lambda: call("GET", f"{path}/state/config", 200)["published_version"] == 1, "v1 published (retained)", logs
        )
        agent.start()
        wait(lambda: applied() == 1, "the agent to apply config v1", logs)
        wait(lambda: up_to_date_at(1), "the API to show the device up to date at v1", logs)
        assert call("GET", f"{path}/state", 200)["presence"] == "online"

        # a change while it runs
        assert (
            call("PUT", f"{path}/state/config", 200, json={"doc": {"language": "en", "footer": "Thanks"}})["version"]
            == 2
        )
        wait(lambda: applied() == 2, "the running agent to apply config v2", logs)
        wait(lambda: up_to_date_at(2), "the API to show the device up to date at v2", logs)

        # two changes while the agent is stopped: it gets the latest when it starts again
        assert agent.stop() == 0
        wait(lambda: call("GET", f"{path}/state", 200)["presence"] == "offline", "the device shown offline", logs)
        assert call("PUT", f"{path}/state/config", 200, json={"doc": {"language": "de"}})["version"] == 3
        assert call("PUT", f"{path}/state/config", 200, json={"doc": {"language": "fr"}})["version"] == 4
        wait(
            lambda: call("GET", f"{path}/state/config", 200)["published_version"] == 4, "v4 published (retained)", logs
        )
        assert not call("GET", f"{path}/state", 200)["up_to_date"]
        agent.start()
        wait(lambda: applied() == 4, "the returning agent to apply config v4", logs)
        wait(lambda: up_to_date_at(4), "the API to show the device up to date at v4", logs)

        # a command through the API is answered by the agent; the reply shows in the API
        command = call("POST", f"{path}/commands", 201, json={"name": "ping"})
        wait(
            lambda: call("GET", f"{path}/commands/{command['id']}", 200)["state"] == "answered",
            "the ping answered",
            logs,
        )
        answered = call("GET", f"{path}/commands/{command['id']}", 200)
        assert answered["attempts"] >= 1 and answered["reply"]["ok"] is True
        assert answered["reply"]["result"]["pong"] is True

    assert agent.stop() == 0
    store = sqlite3.connect(f"file:{tmp_path / 'agent' / 'state' / 'agent.db'}?mode=ro", uri=True)
    try:
        assert store.execute("SELECT version, doc FROM applied_state WHERE domain = 'config'").fetchone() == (
            4,
            '{"language": "fr"}',
        )
    finally:
        store.close()
