"""The agent.toml lines for simulated hardware, shared by the tests that run a terminal."""

from __future__ import annotations


def hardware_section(
    printer_url: str,
    *,
    drawer_url: str = "printer:?pin=2",
    scanner_url: str | None = None,
    status_poll_s: float = 0.2,
    drawer_sensor_poll_s: float | None = None,
) -> str:
    """A printer "front", a cash drawer "cash" (kicked through the printer unless `drawer_url`
    says otherwise) and, if given, a scanner "hand"."""
    drawer_printer = 'printer = "front"\n' if drawer_url.startswith("printer:") else ""
    if drawer_sensor_poll_s is not None:
        drawer_printer += f"sensor_poll_s = {drawer_sensor_poll_s}\n"
    text = f"""
[hardware]
status_poll_s = {status_poll_s}

[[printers]]
name = "front"
url = "{printer_url}"

[[drawers]]
name = "cash"
url = "{drawer_url}"
{drawer_printer}"""
    if scanner_url is not None:
        text += f"""
[[scanners]]
name = "hand"
url = "{scanner_url}"
"""
    return text
