"""Control-socket methods of pairing (``kassactl pairing``)."""

from __future__ import annotations

from typing import Any

from agent.control.methods import Method, Params, str_param
from agent.control.permissions import Role
from agent.pairing.component import Pairing


def _pairing(pairing: Pairing, params: Params) -> dict[str, Any]:
    return pairing.status()


def _pairing_print(pairing: Pairing, params: Params) -> dict[str, Any]:
    return {"job_id": pairing.print_code(str_param(params, "printer"))}


METHODS: tuple[Method[Pairing], ...] = (
    Method(
        "pairing",
        Role.READ,
        "Pairing with the cloud: stage (unpaired, waiting, paired), the code to claim, last error.",
        _pairing,
    ),
    Method(
        "pairing.print", Role.ADMIN, "Print the pairing code on a receipt printer (params: printer).", _pairing_print
    ),
)
