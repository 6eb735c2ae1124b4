"""Telling a keyboard-wedge scanner from a keyboard.

Both are HID keyboards to the kernel. Kassa grabs a device exclusively,
so a wrong guess would steal the cashier's keyboard. The rules, in order:

1. ``deny`` (vendor[:product]) -> keyboard, whatever else is true.
2. ``allow`` (vendor[:product]) -> scanner.
3. A vendor that only makes scanners (Honeywell, Zebra/Symbol, Datalogic,
   Newland) -> scanner, unless the device also has a pointer (EV_REL/EV_ABS):
   combo receivers are keyboards with mice.
4. With ``name_heuristic`` on (default): a name containing "barcode" or
   "scanner", no pointer and no lock-key LEDs -> scanner.
5. Anything else is a keyboard and is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import evdev
from evdev import ecodes

from drivers.vendors import SCANNER_VENDORS

# (vendor, product) pairs; product None stands for every product of the vendor
IdList = Iterable[tuple[int, int | None]]
SCANNER_WORDS = ("barcode", "scanner", "bar code")


@dataclass(frozen=True)
class InputDeviceFacts:
    name: str
    vendor: int
    product: int
    path: str = ""
    phys: str = ""
    uniq: str = ""
    has_enter: bool = True
    has_digits: bool = True
    has_pointer: bool = False
    has_leds: bool = False


def facts_from_evdev(device: evdev.InputDevice[Any]) -> InputDeviceFacts:
    capabilities = device.capabilities()
    keys = set(capabilities.get(ecodes.EV_KEY, ()))
    return InputDeviceFacts(
        name=device.name or "",
        vendor=device.info.vendor,
        product=device.info.product,
        path=os.fsdecode(device.path),  # evdev keeps the path it was given, str or bytes
        phys=device.phys or "",
        uniq=device.uniq or "",
        has_enter=ecodes.KEY_ENTER in keys or ecodes.KEY_KPENTER in keys,
        has_digits=ecodes.KEY_1 in keys or ecodes.KEY_KP1 in keys,
        has_pointer=ecodes.EV_REL in capabilities or ecodes.EV_ABS in capabilities,
        has_leds=ecodes.EV_LED in capabilities,
    )


def _listed(facts: InputDeviceFacts, entries: IdList) -> bool:
    return any(vendor == facts.vendor and (product is None or product == facts.product) for vendor, product in entries)


def parse_id_list(text: str) -> tuple[tuple[int, int | None], ...]:
    """ "0c2e,05e0:1200" -> ((0x0c2e, None), (0x05e0, 0x1200))."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        vendor, _, product = item.partition(":")
        entries.append((int(vendor, 16), int(product, 16) if product else None))
    return tuple(entries)


def is_scanner(
    facts: InputDeviceFacts,
    *,
    allow: IdList = (),
    deny: IdList = (),
    known_vendors: Iterable[int] = tuple(SCANNER_VENDORS),
    name_heuristic: bool = True,
) -> tuple[bool, str]:
    """(verdict, reason) — the reason is logged so a technician can see why."""
    if _listed(facts, deny):
        return False, "on the deny list"
    if _listed(facts, allow):
        return True, "on the allow list"
    if not (facts.has_enter and facts.has_digits):
        return False, "cannot type digits and Enter"
    if facts.vendor in known_vendors:
        if facts.has_pointer:
            return False, "scanner vendor, but the device also has a pointer"
        return True, f"vendor {facts.vendor:04x} makes scanners"
    lowered = facts.name.lower()
    if name_heuristic and any(word in lowered for word in SCANNER_WORDS):
        if facts.has_pointer or facts.has_leds:
            return False, "named like a scanner but has a pointer or lock-key LEDs"
        return True, f"named {facts.name!r}"
    return False, "no scanner signal: treated as a keyboard"
