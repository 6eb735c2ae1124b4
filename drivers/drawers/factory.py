"""Build a drawer from a URL or dict.

>>> open_drawer("printer:?pin=2&on_ms=100&settle_time=0.3", printer=my_printer)
>>> open_drawer("serial:///dev/ttyS1?baudrate=9600&kick=\\x07&status_query=\\x06&open_mask=0x40")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.drawers.base import KickableDrawer
from drivers.drawers.printer_drawer import PrinterDrawer
from drivers.drawers.serial_drawer import SerialDrawer
from drivers.errors import ConfigError
from drivers.interfaces import Printer
from drivers.urls import OptionConverter, convert_options, merge_spec, to_bool, to_bytes, to_float, to_int

COMMON: dict[str, OptionConverter] = {"settle_time": to_float, "poll_interval": to_float, "identity": str}
PRINTER_OPTIONS: dict[str, OptionConverter] = {"pin": to_int, "on_ms": to_int, "off_ms": to_int, "realtime": to_bool}
SERIAL_OPTIONS: dict[str, OptionConverter] = {
    "path": str,
    "baudrate": to_int,
    "kick": to_bytes,
    "status_query": to_bytes,
    "open_mask": to_int,
    "open_when_set": to_bool,
    "status_timeout": to_float,
    "write_timeout": to_float,
}


def open_drawer(spec: str | Mapping[str, Any], *, printer: Printer | None = None, **overrides: Any) -> KickableDrawer:
    parsed, options = merge_spec(spec)
    options.update(overrides)
    scheme = str(options.pop("transport", None) or (parsed.scheme if parsed else "")).lower()
    if scheme == "printer":
        if printer is None:
            raise ConfigError("a printer:// drawer needs the printer it hangs on")
        return PrinterDrawer(printer, **convert_options(options, {**COMMON, **PRINTER_OPTIONS}, "printer drawer"))
    if scheme == "serial":
        values = convert_options(options, {**COMMON, **SERIAL_OPTIONS}, "serial drawer")
        path = values.pop("path", None) or (parsed.path if parsed else None)
        if not path:
            raise ConfigError("a serial drawer needs a device path")
        return SerialDrawer(path, **values)
    raise ConfigError(f"unknown drawer transport {scheme!r}; use printer: or serial://")
