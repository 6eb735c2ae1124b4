"""The POS API's messages in the terminal's language (``site.language``, read for every answer).

A refusal keeps its stable ``code``; its ``message`` is for the person at the till:

- in English, the component's own message (it says the most: which line, which drawer);
- in another language, the code's sentence below (or the licence advice of ``licence.*``
  codes), filled from the refusal's details (attempts left, locked until); the component's
  English message then goes along as ``detail`` for support and logs;
- codes without a sentence (``http.*``, ``permission.unknown_action``: for developers) keep
  the English message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.i18n import N_, SOURCE_LANGUAGE, Language
from agent.licence.lease import advice

_NOT_READABLE = N_("The POS app sent a request the terminal cannot read. Update the app or call support.")
_REQUEST_REUSED = N_("This request number was already used for something else. The POS app must send a new one.")
_PAYMENT = N_("A payment is not valid.")
_CURRENCY = N_("This till works in another currency.")

SENTENCES: dict[str, str] = {
    "pos.token_missing": N_("This POS app is not connected to the terminal. Ask a technician for a POS token."),
    "pos.token_invalid": N_("The POS app's access token is unknown or revoked. Ask a technician for a new one."),
    "session.missing": N_("No cashier is logged in. Log in first."),
    "session.invalid": N_("The cashier session has ended. Log in again."),
    "session.expired": N_("The session ended after a while without use. Log in again."),
    "request.invalid": _NOT_READABLE,
    "request.too_large": N_("The request is too large for the terminal."),
    "cashier.unknown": N_("No cashier with this code may work on this terminal. Check the code."),
    "cashier.not_allowed": N_("This cashier may not work on this terminal. Ask an admin, then press Load."),
    "cashier.disabled": N_("This cashier is disabled. Ask an admin."),
    "cashier.no_pin": N_("This cashier has no PIN yet. Ask an admin to set one, then press Load."),
    "cashier.wrong_pin": N_("Wrong PIN. Try again."),
    "cashier.locked": N_("Too many wrong PINs: this cashier is locked for a while."),
    "cashier.point_of_sale": N_("Choose the point of sale this cashier works at."),
    "cashiers.load_unavailable": N_("The cashier list cannot be loaded now. Check the network and try again."),
    "permission.denied": N_("You may not do this. Ask an admin."),
    "sale.invalid_request": _NOT_READABLE,
    "sale.invalid_lines": N_("A line of the sale is not valid."),
    "sale.invalid_discount": N_("The discount is larger than the sale."),
    "sale.invalid_payments": _PAYMENT,
    "sale.underpaid": N_("Not enough was paid: add a payment."),
    "sale.overpaid_non_cash": N_("Card and other payments are more than the total; only cash gives change."),
    "sale.currency": _CURRENCY,
    "sale.request_id_reused": _REQUEST_REUSED,
    "sale.unknown": N_("This sale is not on this terminal."),
    "refund.invalid_request": _NOT_READABLE,
    "refund.invalid_lines": N_("A refunded line is not valid."),
    "refund.invalid_payments": _PAYMENT,
    "refund.exceeds_sale": N_("This is more than is left to refund on the sale."),
    "refund.nothing_to_refund": N_("These lines were free: there is no money to give back."),
    "refund.payments_mismatch": N_("The refund payments do not add up to the refund."),
    "refund.currency": _CURRENCY,
    "refund.request_id_reused": _REQUEST_REUSED,
    "refund.sale_unknown": N_("This sale is not known here nor in the cloud."),
    "refund.cloud_unreachable": N_("The cloud cannot be reached to find this sale. Try again later."),
    "refund.concurrent": N_("The sale was refunded at the same moment. Look at it again."),
    "report.concurrent": N_("A sale came in meanwhile. Close the till again."),
    "store.busy": N_("The terminal is busy. Try again."),
    "store.disk_full": N_("The terminal's disk is full: nothing was saved. Ask a technician to free space."),
    "store.unavailable": N_("The terminal could not save this. Try again; if it goes on, call a technician."),
    "drawer.unknown": N_("There is no such cash drawer."),
    "drawer.none": N_("This terminal has no cash drawer."),
    "drawer.failed": N_("The cash drawer did not open. Check its cable."),
    "print.no_printer": N_("No receipt printer is set up."),
    "print.invalid_document": N_("The document to print is not valid."),
    "unavailable": N_("This is not available on the terminal now. Try again later."),
    "internal": N_("Something went wrong in the terminal. Ask a technician to look at its log."),
}


def _with_details(lang: Language, code: str, details: dict[str, Any]) -> str | None:
    """Sentences that say more when the refusal's details allow it."""
    if code == "cashier.wrong_pin" and isinstance(details.get("attempts_left"), int):
        count = details["attempts_left"]
        return lang.ngettext("Wrong PIN: {count} attempt left.", "Wrong PIN: {count} attempts left.", count).format(
            count=count
        )
    if code == "cashier.locked" and isinstance(details.get("locked_until"), str):
        try:
            until = datetime.fromisoformat(details["locked_until"]).timestamp()
        except ValueError:
            return None
        return lang.gettext("Too many wrong PINs: this cashier is locked until {time}.").format(
            time=lang.datetime(until)
        )
    return None


def localize(lang: Language, code: str, message: str, details: dict[str, Any]) -> tuple[str, str | None]:
    """(message in ``lang``, the English message when it was replaced, else None)."""
    if lang.code == SOURCE_LANGUAGE:
        return message, None
    sentence = advice(code) if code.startswith("licence.") else SENTENCES.get(code)
    if sentence is None:
        return message, None
    local = _with_details(lang, code, details) or lang.gettext(sentence)
    return local, message
