"""USB vendor ids of the POS hardware kassa knows by default.

The same table feeds discovery (which devices are interesting), the driver
registry (which driver binds) and the udev rules shipped in ``systemd/``.
"""

from __future__ import annotations

USB_CLASS_PRINTER = 0x07
USB_CLASS_HID = 0x03
USB_CLASS_CDC = 0x02
USB_CLASS_CDC_DATA = 0x0A

PRINTER_VENDORS: dict[int, str] = {
    0x04B8: "Epson",
    0x0519: "Star Micronics",
    0x1D90: "Citizen",
    0x2730: "Citizen",
    0x1504: "Bixolon",
}

SCANNER_VENDORS: dict[int, str] = {
    0x0C2E: "Honeywell (Metrologic)",
    0x05E0: "Zebra (Symbol)",
    0x05F9: "Datalogic",
    0x1EAB: "Newland",
}

# python-escpos capability profile that fits most models of a vendor; a
# device's configuration can always name a more precise one.
DEFAULT_PROFILE_BY_VENDOR: dict[int, str] = {
    0x04B8: "TM-T88V",
    0x0519: "TSP600",
    0x1D90: "CT-S651",
    0x2730: "CT-S651",
}


def vendor_name(vendor_id: int | None) -> str | None:
    if vendor_id is None:
        return None
    return PRINTER_VENDORS.get(vendor_id) or SCANNER_VENDORS.get(vendor_id)
