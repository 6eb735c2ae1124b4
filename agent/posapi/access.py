"""Who may read the terminal's read-only pages (status, metrics): the terminal itself, by address."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and 127.x mapped into IPv6; False for anything else, names included."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
