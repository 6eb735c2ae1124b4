"""The slip a technician prints to read the pairing code away from the screen (`kassactl pairing --print`)."""

from __future__ import annotations

from datetime import datetime

from agent.i18n import language
from drivers import Receipt, ReceiptBuilder


def pairing_slip(device_id: str, shown_code: str, expires_at: datetime | None, language_tag: str = "en") -> Receipt:
    """The slip in the terminal's language (``site.language``)."""
    lang = language(language_tag)
    _ = lang.gettext
    builder = (
        ReceiptBuilder()
        .text(_("kassa pairing"), bold=True, width=2, height=2, align="center")
        .feed(1)
        .columns(_("Device"), device_id)
        .rule()
        .text(_("pairing code"), align="center")
        .text(shown_code, bold=True, width=2, height=2, align="center")
        .rule()
        .text(_("A company admin enters this code to claim the terminal into a point of sale."))
    )
    if expires_at is not None:
        builder = builder.columns(_("Valid until"), lang.datetime(expires_at.timestamp(), seconds=False))  # local time
    return builder.cut().build()
