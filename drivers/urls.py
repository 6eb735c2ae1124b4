"""Device URLs: one string (or dict) says how to reach a device and how to drive it.

``tcp://10.0.0.5:9100?profile=TM-T88V``, ``usb://04b8:0202?serial=X``,
``serial:///dev/ttyS0?baudrate=19200``, ``file:///dev/usb/lp0``,
``hid:///dev/input/event3?layout=de``. Query parameters and dict keys are
the same options; unknown options are an error so typos do not pass silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from drivers.errors import ConfigError

# Turns one option's configured value (text from a URL query, or any value from a dict) into what the
# device class takes: str, to_int, to_bool and the like. A schema maps each known option to one.
OptionConverter = Callable[[Any], Any]
OptionSchema = Mapping[str, OptionConverter]


@dataclass(frozen=True)
class DeviceUrl:
    scheme: str
    netloc: str  # raw "host:port" or "vvvv:pppp" (USB ids are hex, so not parsed as a port)
    host: str | None
    port: int | None
    path: str
    options: dict[str, str]


def parse_url(url: str) -> DeviceUrl:
    try:
        parts = urlsplit(url)
    except ValueError as error:  # "tcp://[::1" (an unclosed IPv6 address)
        raise ConfigError(f"device URL {url!r} cannot be read: {error}") from None
    if not parts.scheme:
        raise ConfigError(f"device URL {url!r} has no scheme (tcp://, usb://, serial://, file://, hid://)")
    try:
        port = parts.port
    except ValueError:
        port = None
    return DeviceUrl(
        scheme=parts.scheme.lower(),
        netloc=parts.netloc,
        host=parts.hostname,
        port=port,
        path=unquote(parts.path),
        options=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )


def merge_spec(spec: str | Mapping[str, Any]) -> tuple[DeviceUrl | None, dict[str, Any]]:
    """A URL string, or a dict with an optional ``url`` plus options that override its query."""
    if isinstance(spec, str):
        from_string = parse_url(spec)
        return from_string, dict(from_string.options)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"device spec must be a URL or a mapping, not {type(spec).__name__}")
    options = dict(spec)
    url = options.pop("url", None)
    parsed = parse_url(url) if url else None
    merged: dict[str, Any] = dict(parsed.options) if parsed else {}
    merged.update(options)
    return parsed, merged


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected a boolean, got {value!r}")


def to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 0)
    except ValueError:
        raise ConfigError(f"expected an integer, got {value!r}") from None


def to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number, got {value!r}") from None


def to_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def to_bytes(value: Any) -> bytes:
    """Prefix/suffix/command bytes: bytes as is, text with \\r \\n \\t \\xNN escapes."""
    if isinstance(value, bytes):
        return value
    try:
        return str(value).encode("latin-1").decode("unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError) as error:
        raise ConfigError(f"cannot read {value!r} as bytes: {error}") from None


def convert_options(options: Mapping[str, Any], schema: OptionSchema, what: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(schema))
    if unknown:
        raise ConfigError(f"unknown {what} option(s): {', '.join(unknown)}; known: {', '.join(sorted(schema))}")
    return {key: schema[key](value) for key, value in options.items()}


def parse_usb_id(text: str) -> tuple[int, int]:
    try:
        vendor, product = text.split(":")
        return int(vendor, 16), int(product, 16)
    except ValueError:
        raise ConfigError(f"USB id must look like 04b8:0202, got {text!r}") from None
