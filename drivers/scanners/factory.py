"""Build a scanner from a URL or a config dict.

>>> open_scanner("serial:///dev/ttyACM0?baudrate=9600&suffix=\\r\\n&prefix=%02")
>>> open_scanner("hid:///dev/input/by-id/usb-Honeywell_Scanner-event-kbd?layout=de")
>>> open_scanner({"url": "hid://0c2e:0b61?serial=17012B4F5", "layout": "fr", "dedupe_window": 0.5})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.errors import ConfigError
from drivers.scanners.base import ThreadedScanner
from drivers.scanners.hid import HidScanner
from drivers.scanners.serial_scanner import SerialScanner
from drivers.urls import (
    OptionConverter,
    convert_options,
    merge_spec,
    parse_usb_id,
    to_bool,
    to_bytes,
    to_float,
    to_int,
)

COMMON_OPTIONS: dict[str, OptionConverter] = {
    "dedupe_window": to_float,
    "aim_ids": to_bool,
    "reconnect_interval": to_float,
    "identity": str,
    "max_length": to_int,
}
SERIAL_OPTIONS: dict[str, OptionConverter] = {
    "path": str,
    "baudrate": to_int,
    "bytesize": to_int,
    "parity": str,
    "stopbits": to_float,
    "prefix": to_bytes,
    "suffix": to_bytes,
    "frame_gap": to_float,
    "encoding": str,
}
HID_OPTIONS: dict[str, OptionConverter] = {"path": str, "layout": str, "grab": to_bool, "serial": str, "port": str}


def open_scanner(spec: str | Mapping[str, Any], **overrides: Any) -> ThreadedScanner:
    """A scanner, not yet started: call ``start(callback)``."""
    parsed, options = merge_spec(spec)
    options.update(overrides)
    scheme = str(options.pop("transport", None) or (parsed.scheme if parsed else "")).lower()
    if scheme == "serial":
        values = convert_options(options, {**COMMON_OPTIONS, **SERIAL_OPTIONS}, "serial scanner")
        path = values.pop("path", None) or (parsed.path if parsed else None)
        if not path:
            raise ConfigError("a serial scanner needs a device path")
        if "stopbits" in values and values["stopbits"] == int(values["stopbits"]):
            values["stopbits"] = int(values["stopbits"])
        return SerialScanner(path, **values)
    if scheme == "hid":
        values = convert_options(options, {**COMMON_OPTIONS, **HID_OPTIONS}, "HID scanner")
        path = values.pop("path", None) or (parsed.path if parsed and parsed.path else None)
        vendor_id: int | None = None
        product_id: int | None = None
        if not path:
            if not (parsed and parsed.netloc):
                raise ConfigError("a HID scanner needs hid:///dev/input/eventN or hid://vvvv:pppp")
            vendor_id, product_id = parse_usb_id(parsed.netloc)
        return HidScanner(
            path,
            vendor_id=vendor_id,
            product_id=product_id,
            serial_number=values.pop("serial", None),
            port_path=values.pop("port", None),
            **values,
        )
    raise ConfigError(f"unknown scanner transport {scheme!r}; use serial:// or hid://")
