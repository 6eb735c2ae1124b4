"""Control-socket methods of the licence component (``kassactl licence ...``).

Their target is the ``LicenceDesk``: the licence component and the hardware its release slip
prints on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.control.methods import Method, MethodError, Params, required_str, str_param
from agent.control.permissions import Role
from agent.hardware.facade import TillHardware
from agent.i18n import language
from agent.licence.component import Licence
from agent.refusal import Refused
from broker.contract import LicenceKeyError
from drivers import Receipt, ReceiptBuilder


@dataclass(frozen=True)
class LicenceDesk:
    licence: Licence
    hardware: TillHardware


def _status(desk: LicenceDesk, params: Params) -> dict[str, Any]:
    return desk.licence.status()


def _check(desk: LicenceDesk, params: Params) -> dict[str, Any]:
    verdict = desk.licence.sale_verdict()
    return {
        "ok": verdict.ok,
        "code": verdict.code,
        "message": verdict.message,
        "licence_id": verdict.licence_id,
        "expires_at": verdict.expires_at,
    }


def _enter(desk: LicenceDesk, params: Params) -> dict[str, Any]:
    try:
        return desk.licence.enter_key(required_str(params, "key"))
    except LicenceKeyError as exc:
        raise MethodError(str(exc)) from None


def _release_file(desk: LicenceDesk, params: Params) -> dict[str, Any]:
    licence = desk.licence
    printer = str_param(params, "printer")
    assert licence.releaser is not None, "the licence component loads its keys at start"
    result = licence.releaser.release_file(str_param(params, "licence_id"))
    if printer is not None:
        if not printer and desk.hardware.receipt_printer is None:
            raise MethodError("no printer is configured; copy the file or show the QR code instead")
        slip = _release_slip(licence.device_id, result, licence.config.site.language)
        try:
            result["job_id"] = desk.hardware.queue_receipt(slip, kind="licence", printer=printer or None).job_id
        except Refused as exc:
            raise MethodError(f"released and written to {result['path']}, but not printed: {exc}") from None
    return result


def _release_slip(device_id: str, result: dict[str, Any], language_tag: str) -> Receipt:
    """The printed release file, in the terminal's language (``site.language``)."""
    _ = language(language_tag).gettext
    return (
        ReceiptBuilder()
        .text(_("kassa licence release"), bold=True, align="center")
        .feed(1)
        .columns(_("Device"), device_id)
        .columns(_("Licence"), result["licence_id"])
        .columns(_("Epoch"), str(result["epoch"]))
        .rule()
        .qr(result["text"], error_correction="L")
        .text(_("Scan or upload this code in the kassa cloud to move the licence to another terminal."))
        .cut()
        .build()
    )


METHODS: tuple[Method[LicenceDesk], ...] = (
    Method(
        "licence.status",
        Role.READ,
        "Licence: lease in use, expiry, sale verdict, pending key (never keys or tokens).",
        _status,
    ),
    Method("licence.check", Role.READ, "May this terminal sell now? The sale verdict: ok, code, message.", _check),
    Method(
        "licence.enter",
        Role.ADMIN,
        "Send a licence key to the cloud to bind it to this terminal (params: key).",
        _enter,
    ),
    Method(
        "licence.release_file",
        Role.ADMIN,
        "Release the licence here for good and write a release file + QR for the cloud (params: licence_id, printer).",
        _release_file,
    ),
)
