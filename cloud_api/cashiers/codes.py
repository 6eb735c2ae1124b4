"""Codes of cashiers: format checks, the operator code registry, and what a unique-key
conflict meant.

Every operator code a company uses (a cashier's own and each details set's) is inserted into
`operator_codes` when first used and never deleted, so its primary key refuses a code that
is in use or was ever used, also when two requests race. The service does not look first:
it inserts, and when the database refuses (IntegrityError) it rolls back and asks
`explain_conflict` which code was taken, to answer with a precise error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloud_api.api.errors import ApiError
from cloud_api.cashiers.models import Cashier, CashierDetailsSet, OperatorCodeUse

OPERATOR_CODE_RE = re.compile(r"[0-9]{4}")
# kc.Code: what the roster carries as cashier_id and terminal_id.
CODE_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,64}")


def check_operator_code(code: str) -> str:
    if not isinstance(code, str) or not OPERATOR_CODE_RE.fullmatch(code):
        raise ApiError(422, "cashier.operator_code_format", "an operator code is exactly 4 digits (0-9), e.g. \"0427\"")
    return code


def check_code(code: str, what: str = "cashier code", error: str = "cashier.code_format") -> str:
    if not isinstance(code, str) or not CODE_RE.fullmatch(code) or not encodable(code):
        raise ApiError(422, error, f"a {what} is 1 to 64 characters without spaces or control characters")
    return code


def encodable(value: str) -> bool:
    """False for text holding lone surrogates, which no database column can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def take_operator_code(session: Session, company_id: int, code: str, cashier_id: int,
                       point_of_sale_id: int | None = None) -> None:
    """Record the first use of `code`; raises IntegrityError at once if the company used it
    before (the caller's transaction is then unusable: roll back, then `explain_conflict`)."""
    session.execute(insert(OperatorCodeUse).values(company_id=company_id, code=check_operator_code(code),
                                                   cashier_id=cashier_id, point_of_sale_id=point_of_sale_id,
                                                   taken_at=datetime.now(timezone.utc)))


def holder_of(session: Session, company_id: int, code: str) -> Cashier | None:
    """The live cashier using `code` now, as its own operator code or in a details set."""
    own = session.scalar(select(Cashier).where(Cashier.company_id == company_id, Cashier.operator_code == code,
                                               Cashier.deleted_at.is_(None)))
    if own is not None:
        return own
    return session.scalar(select(Cashier).join(CashierDetailsSet, CashierDetailsSet.cashier_id == Cashier.id)
                          .where(Cashier.company_id == company_id, CashierDetailsSet.operator_code == code,
                                 Cashier.deleted_at.is_(None)).limit(1))


def explain_conflict(session: Session, company_id: int, operator_codes: Iterable[str],
                     cashier_code: str | None = None) -> ApiError:
    """The 409 for a refused write that tried to take `operator_codes` (and `cashier_code`),
    read after the rollback: by then the request that got there first has committed."""
    if cashier_code is not None and session.scalar(
            select(Cashier.id).where(Cashier.company_id == company_id, Cashier.code == cashier_code)) is not None:
        return ApiError(409, "cashier.code_taken",
                        f"cashier code {cashier_code} is taken in this company (codes of deleted cashiers stay taken)")
    for code in operator_codes:
        if session.get(OperatorCodeUse, (company_id, code)) is None:
            continue
        holder = holder_of(session, company_id, code)
        if holder is not None:
            return ApiError(409, "cashier.operator_code_taken",
                            f"operator code {code} is in use by cashier {holder.code}; choose another")
        return ApiError(409, "cashier.operator_code_used_before",
                        f"operator code {code} was used before in this company; an operator code is never reused")
    return ApiError(409, "conflict", "conflicts with a concurrent change; read and retry")
