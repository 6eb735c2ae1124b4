"""One terminal under test and everything around it: a real agent process with simulated
hardware, a real Mosquitto, MqttPeer pushing the roster and lease, and a real cloud worker.
Shared by the POS API tests, the fault matrix and the soak run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.launcher import Mosquitto
from drivers.sim.printer import VirtualPrinter
from drivers.sim.scanner import VirtualSerialScanner
from tests.posapi.support import Pos, api_url, create_pos_token, push_roster_and_lease, terminal_config, wait_for
from tests.support.agent_process import AgentProcess
from tests.support.cloud import Cloud
from tests.support.mqtt_peer import MqttPeer


@dataclass
class Terminal:
    """One terminal under test and everything around it."""

    tmp: Path
    mosquitto: Mosquitto
    printer: VirtualPrinter
    peer: MqttPeer
    cloud: Cloud
    config: Path
    process: AgentProcess
    pos_token: str = ""
    clients: list[Pos] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.config.parent / "state"

    @property
    def socket(self) -> Path:
        return self.process.socket_path

    def start(self) -> Terminal:
        self.process.start()
        wait_for(
            lambda: self.process.client().call("status")["components"]["cloud"]["connected"], 20, "broker connection"
        )
        return self

    def restart(self) -> None:
        self.process = AgentProcess(self.config, env=self.env)
        self.start()

    def pos(self) -> Pos:
        client = Pos(api_url(self.socket), self.pos_token)
        self.clients.append(client)
        return client

    def roster_version(self) -> int:
        return self.process.client().call("status")["components"]["cashiers"]["roster_version"]

    def ready_to_sell(self, **lease: Any) -> None:
        push_roster_and_lease(self.peer, self.state_dir, **lease)
        wait_for(lambda: self.roster_version() >= 1, 20, "roster applied")
        wait_for(lambda: self.process.client().call("licence.status")["held"], 20, "lease held")


def make_terminal(
    tmp_path: Path,
    mosquitto: Mosquitto,
    *,
    extra: str = "",
    with_worker: bool = True,
    scanner: VirtualSerialScanner | None = None,
    cors: list[str] = (),
    env: dict[str, str] | None = None,
    before_start: Callable[[Path], None] | None = None,
    printer_link: Callable[[VirtualPrinter], str] | None = None,
    **mqtt: Any,
) -> Iterator[Terminal]:
    """`mqtt` overrides the agent's [mqtt] keys (a fault test points `port` at its proxy);
    `before_start(agent_dir)` runs before the first start (a fault test mounts a small disk there);
    `printer_link(printer)` returns the URL the agent prints to (a slow link to that printer)."""
    printer = VirtualPrinter(preview_dir=tmp_path / "previews").start()
    peer = MqttPeer(mosquitto, "test-cloud-pushes")
    cloud = Cloud(tmp_path / "cloud", mosquitto)
    if with_worker:
        cloud.start_worker("w1")
    mqtt.setdefault("ack_timeout_s", 3.0)
    printer_url = printer_link(printer) if printer_link is not None else None
    config = terminal_config(
        tmp_path / "agent", mosquitto, printer, scanner, cors=cors, extra=extra, printer_url=printer_url, **mqtt
    )
    if before_start is not None:
        before_start(config.parent)
    terminal = Terminal(
        tmp_path, mosquitto, printer, peer, cloud, config, AgentProcess(config, env=env), env=dict(env or {})
    )
    try:
        terminal.start()
        terminal.pos_token = create_pos_token(terminal.socket)
        yield terminal
    finally:
        for client in terminal.clients:
            client.close()
        terminal.process.kill()
        cloud.stop()
        peer.close()
        printer.stop()
