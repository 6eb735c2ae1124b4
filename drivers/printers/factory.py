"""Build a printer from a URL or a config dict.

>>> open_printer("tcp://127.0.0.1:9100?profile=TM-T88V")
>>> open_printer({"url": "usb://04b8:0202?serial=X", "status_timeout": 1})
>>> open_printer("serial:///dev/ttyS0?baudrate=19200&flow=rtscts")
>>> open_printer("file:///dev/usb/lp0?status_check=never")

Opening is lazy: nothing touches the device until the first status query or job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import usb.backend

from drivers.errors import ConfigError
from drivers.identity import DeviceDescriptor, Transport
from drivers.printers.escpos_printer import EscposPrinter
from drivers.printers.file_transport import FileTransport
from drivers.printers.network_transport import DEFAULT_PORT, NetworkTransport
from drivers.printers.profile import load_profile
from drivers.printers.serial_transport import SerialTransport
from drivers.printers.transport import PrinterTransport
from drivers.printers.usb_transport import UsbTransport
from drivers.urls import (
    DeviceUrl,
    OptionConverter,
    convert_options,
    merge_spec,
    parse_usb_id,
    to_bool,
    to_float,
    to_int,
    to_names,
)
from drivers.vendors import DEFAULT_PROFILE_BY_VENDOR

PRINTER_OPTIONS: dict[str, OptionConverter] = {
    "profile": str,
    "paper_mm": to_int,
    "width_px": to_int,
    "columns": to_int,
    "code_pages": to_names,
    "cancel_kanji": to_bool,
    "status_check": str,
    "status_timeout": to_float,
    "drawer_open_level": str,
    "keep_open": to_bool,
    "name": str,
    "write_timeout": to_float,
    "link_bytes_per_s": to_float,
}
TRANSPORT_OPTIONS: dict[str, dict[str, OptionConverter]] = {
    "tcp": {"host": str, "port": to_int, "connect_timeout": to_float},
    "usb": {"vendor_id": to_int, "product_id": to_int, "serial": str, "port": str, "in_ep": to_int, "out_ep": to_int},
    "serial": {"path": str, "baudrate": to_int, "bytesize": to_int, "parity": str, "stopbits": to_float, "flow": str},
    "file": {"path": str},
}
SCHEME_ALIASES = {"socket": "tcp", "network": "tcp", "lp": "file"}


def open_printer(
    spec: str | Mapping[str, Any],
    *,
    identity: str | None = None,
    usb_backend: usb.backend.IBackend | None = None,
    **overrides: Any,
) -> EscposPrinter:
    """A ready-to-use :class:`EscposPrinter` (not yet connected).

    ``spec`` is a URL or a dict (``{"url": ..., **options}`` or
    ``{"transport": "tcp", "host": ..., **options}``); ``overrides`` win over
    both. ``usb_backend`` passes a pyusb backend object through (tests, sims).
    """
    parsed, options = merge_spec(spec)
    options.update(overrides)
    scheme = str(options.pop("transport", None) or (parsed.scheme if parsed else "")).lower()
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    if scheme not in TRANSPORT_OPTIONS:
        raise ConfigError(f"unknown printer transport {scheme!r}; use one of {sorted(TRANSPORT_OPTIONS)}")
    schema = {**PRINTER_OPTIONS, **TRANSPORT_OPTIONS[scheme]}
    values = convert_options(options, schema, f"{scheme} printer")
    transport = _transport(scheme, parsed, values, usb_backend)

    profile_name = values.pop("profile", None)
    if profile_name is None and isinstance(transport, UsbTransport):
        profile_name = DEFAULT_PROFILE_BY_VENDOR.get(transport.vendor_id)
    profile = load_profile(
        profile_name or "default",
        width_px=values.pop("width_px", None),
        paper_mm=values.pop("paper_mm", None),
        columns=values.pop("columns", None),
        code_pages=values.pop("code_pages", ()),
        cancel_kanji=values.pop("cancel_kanji", None),
    )
    printer_kwargs = {
        k: values[k]
        for k in ("status_check", "status_timeout", "drawer_open_level", "keep_open", "name", "link_bytes_per_s")
        if k in values
    }
    return EscposPrinter(transport, profile, identity=identity, **printer_kwargs)


def _transport(
    scheme: str, parsed: DeviceUrl | None, values: dict[str, Any], usb_backend: usb.backend.IBackend | None
) -> PrinterTransport:
    timeouts = {"write_timeout": values.pop("write_timeout")} if "write_timeout" in values else {}
    if scheme == "tcp":
        host = values.pop("host", None) or (parsed.host if parsed else None)
        if not host:
            raise ConfigError("a tcp printer needs a host")
        port = values.pop("port", None) or (parsed.port if parsed else None) or DEFAULT_PORT
        if parsed and parsed.port is None and ":" in parsed.netloc:
            raise ConfigError(f"bad port in {parsed.netloc!r}")
        extra = {"connect_timeout": values.pop("connect_timeout")} if "connect_timeout" in values else {}
        return NetworkTransport(host, port, **timeouts, **extra)
    if scheme == "usb":
        if "vendor_id" in values and "product_id" in values:
            vendor, product = values.pop("vendor_id"), values.pop("product_id")
        elif parsed and parsed.netloc:
            vendor, product = parse_usb_id(parsed.netloc)
        else:
            raise ConfigError("a usb printer needs vendor and product ids: usb://04b8:0202")
        return UsbTransport(
            vendor,
            product,
            serial_number=values.pop("serial", None),
            port_path=values.pop("port", None),
            in_ep=values.pop("in_ep", None),
            out_ep=values.pop("out_ep", None),
            backend=usb_backend,
            **timeouts,
        )
    path = values.pop("path", None) or (parsed.path if parsed else None)
    if not path:
        raise ConfigError(f"a {scheme} printer needs a device path")
    if scheme == "serial":
        serial_options = {
            k: values.pop(k) for k in ("baudrate", "bytesize", "parity", "stopbits", "flow") if k in values
        }
        return SerialTransport(path, **serial_options, **timeouts)
    return FileTransport(path, **timeouts)


def url_for_descriptor(descriptor: DeviceDescriptor) -> str:
    """The URL that reaches a discovered device again (by serial number or port, never bus address)."""
    if descriptor.transport is Transport.USB:
        query = (
            f"?serial={descriptor.serial_number}"
            if descriptor.serial_number
            else (f"?port={descriptor.port_path}" if descriptor.port_path else "")
        )
        return f"usb://{descriptor.vendor_id:04x}:{descriptor.product_id:04x}{query}"
    if descriptor.transport is Transport.TCP:
        return f"tcp://{descriptor.device_path}"
    if descriptor.transport is Transport.SERIAL:
        return f"serial://{descriptor.device_path}"
    if descriptor.transport is Transport.FILE:
        return f"file://{descriptor.device_path}"
    raise ConfigError(f"no printer URL for transport {descriptor.transport.value}")
