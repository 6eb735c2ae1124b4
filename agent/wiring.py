"""The one place that builds the agent: every component with the typed collaborators it needs.

This is the only module that builds components (and only agent/daemon.py imports it); other
modules name a component only as a type or a protocol. Each component gets the
``Runtime`` (agent/runtime.py) and exactly the parts it works with: sales get the permission
gate and the till hardware, the gate gets the licence's sale verdict, the components that
take pushed state get the cloud port. Nothing looks another component up by name. The
control socket's table is joined here from the methods each package declares.

Start order is the list order (they stop in reverse): hardware first (sales print on it),
the licence before the cashiers (the gate asks it), the cloud link once the terminal holds
a broker certificate (else pairing starts it later), the POS API last (it serves them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agent import diagnostics
from agent.cashiers import control as cashiers_control
from agent.cashiers.component import Cashiers
from agent.cloud.inbound import Inbound
from agent.cloud.link import CloudLink
from agent.cloud.port import CloudPort
from agent.control import core
from agent.control.methods import LISTING, BoundMethod, Method, bind_all, method_table
from agent.hardware import control as hardware_control
from agent.hardware.component import Hardware
from agent.licence import control as licence_control
from agent.licence.component import Licence
from agent.pairing import control as pairing_control
from agent.pairing.component import Pairing
from agent.posapi import control as posapi_control
from agent.posapi.component import PosApi
from agent.posapi.service import PosParts
from agent.provisioning import Provisioner
from agent.runtime import Component, ComponentKey, Runtime
from agent.sales.component import Sales

HARDWARE = ComponentKey("hardware", Hardware)
LICENCE = ComponentKey("licence", Licence)
CASHIERS = ComponentKey("cashiers", Cashiers)
SALES = ComponentKey("sales", Sales)
CLOUD = ComponentKey("cloud", CloudLink)
PAIRING = ComponentKey("pairing", Pairing)
PROVISIONING = ComponentKey("provisioning", Provisioner)
POS_API = ComponentKey("pos_api", PosApi)

# Every control method the agent serves, by name (the running table binds each to its target).
_DECLARED: tuple[Method[Any], ...] = (
    *core.METHODS,
    LISTING,
    *hardware_control.METHODS,
    *licence_control.METHODS,
    *cashiers_control.METHODS,
    *pairing_control.METHODS,
    *diagnostics.METHODS,
    *posapi_control.METHODS,
)
CONTROL_METHODS: dict[str, Method[Any]] = {method.name: method for method in _DECLARED}


class Host(core.Host, diagnostics.Host, Protocol):
    """The agent process as the wiring sees it (agent/daemon.py ``Agent``)."""

    state: str

    async def add_component(self, component: Component) -> None: ...


@dataclass(frozen=True)
class Wired:
    """The built agent: its components in start order and its control-socket table."""

    components: list[Component]
    control_methods: dict[str, BoundMethod]
    cloud: CloudPort


def wire(runtime: Runtime, host: Host) -> Wired:
    cloud = CloudPort(Inbound(runtime.store, runtime.outbox, runtime.device_id))
    hardware = Hardware(runtime)
    licence = Licence(runtime, cloud)
    cashiers = Cashiers(runtime, cloud, licence.sale_verdict)
    sales = Sales(runtime, cashiers.gate, hardware)

    def new_link() -> CloudLink:
        link = CloudLink(
            runtime, cloud.inbound, connect_listeners=cloud.connect_listeners, peripherals=hardware.peripherals
        )
        cloud.link = link
        return link

    async def start_link() -> None:
        link = new_link()
        try:
            await host.add_component(link)
        except BaseException:
            cloud.link = None
            raise

    pairing = Pairing(runtime, hardware, cloud, start_link)
    # Without a broker certificate yet, the link is started by pairing once it has one.
    link: list[Component] = [] if pairing.needed else [new_link()]
    provisioning = Provisioner(runtime)
    pos_api = PosApi(runtime, PosParts(host, cashiers, sales, licence, hardware, cloud))
    components: list[Component] = [hardware, licence, cashiers, sales, *link, pairing, provisioning, pos_api]
    methods = method_table(
        [
            *bind_all(core.METHODS, host),
            *bind_all(hardware_control.METHODS, hardware),
            *bind_all(licence_control.METHODS, licence_control.LicenceDesk(licence, hardware)),
            *bind_all(cashiers_control.METHODS, cashiers),
            *bind_all(pairing_control.METHODS, pairing),
            *bind_all(diagnostics.METHODS, diagnostics.Diagnostics(host, runtime.store.path, hardware)),
            *bind_all(posapi_control.METHODS, pos_api),
        ]
    )
    return Wired(components, methods, cloud)
