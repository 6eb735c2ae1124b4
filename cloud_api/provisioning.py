"""Making configuration QR codes for terminals (the administrator prints or shows them)."""

from __future__ import annotations

from pathlib import Path

import qrcode
from qrcode.constants import ERROR_CORRECT_M

from broker import contract as kc
from cloud_api.signing_keys import SigningKey


def qr_text(settings: kc.Provisioning, key: SigningKey) -> str:
    return kc.make_qr_text(settings, key.private_key, key.key_id)


class QrTooLarge(ValueError):
    """The settings do not fit in one QR code; the message says how far over they are."""


def write_qr_png(text: str, path: Path) -> Path:
    """A PNG of the code; medium error correction survives a crumpled printout."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=6, border=4)
    code.add_data(text)
    try:
        code.make(fit=True)
    except ValueError:  # qrcode: "Invalid version (was 41, expected 1 to 40)"
        raise QrTooLarge(
            f"{len(text)} characters do not fit in one QR code (at most about 2,300 with medium error "
            "correction): give fewer rooms or shorter names"
        ) from None
    code.make_image().save(str(path))
    return path
