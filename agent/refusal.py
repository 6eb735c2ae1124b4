"""One type for every business refusal of the agent: a sale, a login, a drawer, a licence move.

A refusal is not a bug: the agent did what it should and the person has to do something
(log in again, ask an admin, plug the printer in). It carries a stable ``code`` that
clients switch on, a ``message`` for a person, ``details`` (attempts left, the amount
missing, ...) and the HTTP status the POS API answers with. Each door maps it in one
place: the POS API (agent/posapi/handlers.py ``call``), the control socket
(agent/control/server.py) and kassactl (agent/ctl_client.py, from the socket's error).
"""

from __future__ import annotations

from typing import Any

# HTTP status per refusal code, by prefix (the longest matching entry wins).
HTTP_STATUS: dict[str, int] = {
    "session.": 401,
    "permission.": 403,
    "licence.": 403,
    "cashier.": 403,
    "cashier.unknown": 401,
    "cashier.wrong_pin": 401,
    "cashier.no_pin": 403,
    "cashier.point_of_sale": 422,
    "cashiers.load_unavailable": 503,
    "unavailable": 503,
    "sale.request_id_reused": 409,
    "refund.request_id_reused": 409,
    "refund.exceeds_sale": 409,
    "refund.sale_unknown": 404,
    "sale.unknown": 404,
    "refund.cloud_unreachable": 503,
    "print.no_printer": 503,
    "drawer.unknown": 422,
    "drawer.": 503,
    "store.": 503,
    "report.": 409,
    "sale.": 422,
    "refund.": 422,
    "print.": 422,
}


def http_status(code: str) -> int:
    """The HTTP status a refusal with ``code`` is answered with (400 when no entry matches)."""
    best = ""
    for prefix in HTTP_STATUS:
        if code.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return HTTP_STATUS.get(best, 400)


class Refused(Exception):
    """A business refusal: stable ``code``, ``message`` for a person, ``details``, ``http_status``.

    Subclasses name the family (``SalesRefused``, ``PermissionRefused``, ...) and may fix their
    code; ``status`` overrides the table for one refusal.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status or http_status(self.code)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **({"details": self.details} if self.details else {})}
