"""Control-socket methods of the licence component (``kassactl licence ...``).

Registered at import time (agent/licence/component.py imports this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.control.methods import Method, MethodError, register, str_param
from agent.control.permissions import Role

if TYPE_CHECKING:
    from agent.daemon import Agent


def _licence(agent: Agent) -> Any:
    try:
        return agent.component("licence")
    except LookupError:
        raise MethodError("the licence component is not running; check `kassactl status` and the agent log") from None


def _status(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    return _licence(agent).status()


def _check(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    verdict = _licence(agent).sale_verdict()
    return {
        "ok": verdict.ok,
        "code": verdict.code,
        "message": verdict.message,
        "licence_id": verdict.licence_id,
        "expires_at": verdict.expires_at,
    }


def _enter(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from broker.contract import LicenceKeyError

    typed = str_param(params, "key", required=True)
    try:
        return _licence(agent).enter_key(typed)
    except LicenceKeyError as exc:
        raise MethodError(str(exc)) from None


def _release_file(agent: Agent, params: dict[str, Any]) -> dict[str, Any]:
    from agent.hardware.component import HardwareError
    from agent.hardware.print_queue import PrintQueueError
    from agent.licence.release import LicenceNotHeld

    licence = _licence(agent)
    printer = str_param(params, "printer")
    try:
        result = licence.releaser.release_file(str_param(params, "licence_id"))
    except LicenceNotHeld as exc:
        raise MethodError(str(exc)) from None
    if printer is not None:
        try:
            hardware = agent.component("hardware")
            name = printer or hardware.receipt_printer
            if name is None:
                raise MethodError("no printer is configured; copy the file or show the QR code instead")
            slip = _release_slip(agent.config.device_id, result, agent.config.site.language)
            result["job_id"] = hardware.queue.submit_document(name, slip, kind="licence")
        except (HardwareError, PrintQueueError, LookupError) as exc:
            raise MethodError(f"released and written to {result['path']}, but not printed: {exc}") from None
    return result


def _release_slip(device_id: str, result: dict[str, Any], language_tag: str) -> Any:
    """The printed release file, in the terminal's language (``site.language``)."""
    from agent.i18n import language
    from drivers import ReceiptBuilder

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


for _method in (
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
):
    register(_method)
