"""The cloud link as the other components see it, before and after it runs.

The link may start long after the components (pairing starts it once the terminal has a
broker certificate), so components are not handed the link itself. They get this port at
construction and register their handlers for pushed state and commands on its ``inbound``
right away; the link, once it runs, dispatches into that same ``Inbound``. Until then the
port answers "not connected".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.cloud.inbound import Inbound
from broker import contract as kc

if TYPE_CHECKING:
    from agent.cloud.link import CloudLink


class CloudPort:
    def __init__(self, inbound: Inbound) -> None:
        self.inbound = inbound
        self.connect_listeners: list[Callable[[], None]] = []  # run on the loop after every (re)connect
        self.link: CloudLink | None = None  # set by the wiring once it builds the link

    @property
    def attached(self) -> bool:
        """True once the link runs (the terminal is paired), connected or not."""
        return self.link is not None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.mqtt.connected

    @property
    def last_error(self) -> str | None:
        return None if self.link is None else self.link.mqtt.last_error

    def report_state(self) -> bool:
        """Queue the device's state report (what it runs and holds); False without a link."""
        if self.link is None:
            return False
        self.link.report_state()
        return True

    async def refresh_state(self, domain: kc.StateDomain, timeout_s: float) -> bool:
        """Have the broker send ``domain``'s retained document again; True when one arrived."""
        return False if self.link is None else await self.link.refresh_state(domain, timeout_s)

    def reload_certificate(self) -> None:
        """A renewed client certificate is on disk: the running link uses it from its next connect."""
        if self.link is not None:
            self.link.mqtt.reload_certificate()

    def refresh_retained(self, domain: kc.StateDomain) -> bool:
        """Ask for ``domain``'s retained document again without waiting for it."""
        if self.link is None:
            return False
        return self.link.mqtt.refresh_retained(kc.state_topic(self.link.device_id, domain))
