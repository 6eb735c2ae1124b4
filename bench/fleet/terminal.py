"""One simulated terminal: the agent's own store, outbox, licence, roster and cloud link.

Built from the real pieces of ``agent.daemon.Agent`` (an ``Agent`` object that is never
``run()``): the SQLite store with the agent's migrations, ``Agent.outbox``, the ``Licence``
component (identity key, lease checks, lease reports), the ``Cashiers`` component (the
roster state handler and ``catch_up``), and the ``CloudLink`` (outbox drain with its ack
window and batching, inbound state documents, acks, settling) whose ``MqttLink`` runs on the
swarm's loop (``bench.fleet.link``). Left out: hardware, the sales component and its cashier
sessions, pairing, the POS API and the control socket. A sale here is what
``Sales._commit_sale`` does around the cloud, without the pricing and cashier checks: the
licence's ``sale_verdict()``, the sale drafted by ``Outbox.draft`` before the transaction, one
store transaction that enqueues it, then a kick of a simulated drawer (``drivers.sim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from agent import meta
from agent.cashiers.component import Cashiers
from agent.clock import kernel_clock_synchronized
from agent.cloud.inbound import Inbound
from agent.cloud.link import CloudLink
from agent.cloud.outbox import Outbox
from agent.cloud.port import CloudPort
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.licence.component import Licence
from agent.runtime import Runtime
from agent.store import Store
from bench.fleet.link import LoopMqttLink
from bench.fleet.mqtt_loop import PahoOnLoop
from broker import contract as kc
from drivers.sim.drawer import VirtualDrawer
from tests.support.sales import make_sale

DRAWER_PIN = 2
DRAWER_PULSE_MS = 100


def terminal_config(device_id: str, state_root: Path, mqtt: dict[str, Any], cloud_keys: dict[str, str]) -> AgentConfig:
    state = state_root / device_id
    return AgentConfig(
        device_id=device_id,
        paths={"state_dir": state, "run_dir": state / "run"},
        mqtt=mqtt,
        trust={"cloud_keys": cloud_keys},
        pos_api={"enabled": False},
    )


class SimTerminal:
    def __init__(self, config: AgentConfig, driver: PahoOnLoop) -> None:
        self.config = config
        self.device_id = config.device_id
        self.driver = driver
        self.agent = Agent(config)
        self.licence: Licence | None = None
        self.cashiers: Cashiers | None = None
        self.link: CloudLink | None = None
        self.drawer = VirtualDrawer()
        self.receipt_no = 0
        self.sold = 0
        self.refused = 0
        self.first_sale_at: float | None = None
        self.licensed_at: float | None = None
        self.roster_times: list[tuple[int, float]] = []  # (roster version in use, time.monotonic())

    # ---------------------------------------------------------------- lifecycle
    async def build(self) -> None:
        """Open the store and start the components the way ``Agent._start`` does (no link yet)."""
        agent = self.agent
        agent._loop = asyncio.get_running_loop()
        agent.store = Store.open(self.config.paths.store_path)
        agent.boot_count = meta.claim_for_device(agent.store, self.device_id)
        self.runtime = runtime = Runtime(
            config=self.config,
            config_path=None,
            store=agent.store,
            outbox=Outbox(agent.store, self.device_id, agent.boot_id, kernel_clock_synchronized),
            events=agent.events,
            scheduler=agent.scheduler,
            boot_id=agent.boot_id,
            call_from_thread=agent.call_from_thread,
            run_on_loop=agent.run_on_loop,
            reload_config=agent.reload_config,
        )
        cloud = CloudPort(Inbound(agent.store, runtime.outbox, self.device_id))
        self.licence = Licence(runtime, cloud)
        self.cashiers = Cashiers(runtime, cloud, self.licence.sale_verdict)
        agent.components = [self.licence, self.cashiers]
        await self.licence.start()
        await self.cashiers.start()
        link = CloudLink(runtime, cloud.inbound, connect_listeners=cloud.connect_listeners, peripherals=list)
        link.mqtt = LoopMqttLink(link.mqtt, self.driver)  # the agent's MqttLink, run on this loop
        cloud.link = link
        self.link = link
        agent.state = "running"

    async def connect(self) -> None:
        """Start the cloud link (the licence and cashier handlers are on its inbound already), then connect."""
        assert self.link is not None
        self.agent.components.append(self.link)
        await self.link.start()
        # After the components' own listeners: they have applied the document when this runs.
        self.link.inbound.state_listeners.append(self._state_applied)

    async def stop(self) -> None:
        link = self.link
        if link is not None and link._task is not None:
            link._task.cancel()
            await asyncio.gather(link._task, return_exceptions=True)
            link._flush_settled()
            mqtt: LoopMqttLink = link.mqtt  # type: ignore[assignment]
            mqtt.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mqtt.stopped(), 2.0)
            self.driver.detach(mqtt.client)
        if self.cashiers is not None:
            await self.cashiers.stop()
        if self.licence is not None:
            await self.licence.stop()
        self.agent.scheduler.shutdown()
        if self.agent.store is not None:
            self.agent.store.close()

    # --------------------------------------------------------------------- work
    def _state_applied(self, domain: str, version: int) -> None:
        now = time.monotonic()
        if domain == kc.StateDomain.LICENCE.value:
            if self.licensed_at is None and self.licence is not None and self.licence.sale_verdict().ok:
                self.licensed_at = now
        elif domain == kc.StateDomain.CASHIERS.value and self.cashiers is not None:
            self.roster_times.append((self.cashiers.roster.version, now))

    def enter_licence_key(self, key: str) -> None:
        """What a technician typing the key does (``kassactl licence key``): a BindRequest."""
        assert self.licence is not None
        self.licence.enter_key(key)

    def sell_one(self) -> bool:
        """One sale: the licence check, the message drafted, one store transaction, the drawer."""
        assert self.licence is not None
        if not self.licence.sale_verdict().ok:
            self.refused += 1
            return False
        store = self.agent.store
        assert store is not None
        outbox = self.runtime.outbox
        self.receipt_no += 1
        sale = make_sale(self.receipt_no)
        draft = outbox.draft(sale)  # before BEGIN, as the sales component does
        with store.transaction() as conn:
            outbox.enqueue(conn, draft)
        if self.first_sale_at is None:
            self.first_sale_at = time.monotonic()
        if any(p.method is kc.PaymentMethod.CASH for p in sale.payments):
            self.drawer.kick(DRAWER_PIN, DRAWER_PULSE_MS)
            self.drawer.close()
        self.sold += 1
        return True

    # ------------------------------------------------------------------- status
    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.mqtt.connected

    @property
    def licensed(self) -> bool:
        return self.licence is not None and self.licence.sale_verdict().ok

    @property
    def roster_version(self) -> int:
        return self.cashiers.roster.version if self.cashiers is not None else 0

    def outbox_depth(self) -> int:
        return self.runtime.outbox.stats().depth
