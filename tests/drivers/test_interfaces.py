"""Every registered driver implements the whole interface of its kind, so the agent can call any of it."""

from __future__ import annotations

import inspect

import pytest

from drivers.identity import DeviceKind
from drivers.interfaces import Drawer, Printer, Scanner
from drivers.registry import default_registry  # importing drivers/ registers every built-in driver

INTERFACES = {DeviceKind.PRINTER: Printer, DeviceKind.SCANNER: Scanner, DeviceKind.DRAWER: Drawer}


def interface_methods(interface: type) -> set[str]:
    return {name for name, member in vars(interface).items() if getattr(member, "__isabstractmethod__", False)}


def registered(kind: DeviceKind) -> list[type]:
    return default_registry.drivers(kind)


def test_the_printer_interface_has_what_the_agent_calls() -> None:
    # agent/hardware and agent/sales render receipts on a driver's printer and queue the bytes
    assert {"status", "render", "print_document", "send_raw", "drawer_status", "close"} <= interface_methods(Printer)


@pytest.mark.parametrize("kind", list(INTERFACES), ids=lambda kind: kind.name.lower())
def test_every_kind_has_a_registered_driver(kind: DeviceKind) -> None:
    assert registered(kind)


@pytest.mark.parametrize(
    "driver_class",
    [driver_class for kind in INTERFACES for driver_class in registered(kind)],
    ids=lambda driver_class: driver_class.__name__,
)
def test_registered_driver_implements_its_interface(driver_class: type) -> None:
    interface = INTERFACES[driver_class.supports.kind]
    assert issubclass(driver_class, interface)
    assert not inspect.isabstract(driver_class), sorted(driver_class.__abstractmethods__)
    for name in interface_methods(interface):
        implementation = getattr(driver_class, name)
        assert not getattr(implementation, "__isabstractmethod__", False), name
        assert list(inspect.signature(implementation).parameters) == list(
            inspect.signature(getattr(interface, name)).parameters
        ), name
