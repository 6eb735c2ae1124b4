"""Codes of cashiers: format checks, the operator code registry, and what a unique-key
conflict meant.

An operator code is a cashier's personal number: the first time a cashier uses a code (as
its own operator code or in a details set) it goes into `operator_codes` with that cashier
as its owner, for ever: the row is never deleted or given to anyone else. The owner may use
the code again anywhere (several details sets, back as its own code); every other cashier of
the company is refused, also after the owner is deleted. The service does not look first:
`take_operator_code` inserts (doing nothing when the row exists) and then reads the row's
owner, so the registry's primary key decides, also when two requests race: one code never
gets two owners. A cashier code conflict still surfaces as an IntegrityError: the service
rolls back and asks `explain_conflict` which code was taken.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api.api.errors import ApiError
from cloud_api.cashiers.models import Cashier, CashierDetailsSet, OperatorCodeUse
from cloud_api.db import table_of, upsert_insert

OPERATOR_CODE_RE = re.compile(r"[0-9]{4}")
# kc.Code: what the roster carries as cashier_id and terminal_id.
CODE_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,64}")


def check_operator_code(code: str) -> str:
    if not isinstance(code, str) or not OPERATOR_CODE_RE.fullmatch(code):
        raise ApiError(422, "cashier.operator_code_format", 'an operator code is exactly 4 digits (0-9), e.g. "0427"')
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


def take_operator_code(
    session: Session, company_id: int, code: str, cashier_id: int, point_of_sale_id: int | None = None
) -> None:
    """Make `code` the cashier's, or confirm it is already: registers a new code with the
    cashier as owner (`point_of_sale_id`: where it is first used, None for the cashier's own
    code); raises the precise 409 when the code belongs to another cashier.

    A concurrent insert of the same code waits for the other transaction (the primary key)
    and then does nothing; the owner read afterwards is the one that committed."""
    table = table_of(OperatorCodeUse)
    session.execute(
        upsert_insert(session, table)
        .values(
            company_id=company_id,
            code=check_operator_code(code),
            cashier_id=cashier_id,
            point_of_sale_id=point_of_sale_id,
            taken_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=[table.c.company_id, table.c.code])
    )
    owner = session.scalar(
        select(OperatorCodeUse.cashier_id).where(OperatorCodeUse.company_id == company_id, OperatorCodeUse.code == code)
    )
    if owner != cashier_id:
        raise refusal(session, code, owner)


def refusal(session: Session, code: str, owner_id: int | None) -> ApiError:
    """The 409 for using `code`, which belongs to the cashier `owner_id`, for another cashier."""
    owner = session.get(Cashier, owner_id, populate_existing=True) if owner_id is not None else None
    if owner is None or owner.deleted_at is not None:
        return ApiError(
            409,
            "cashier.operator_code_used_before",
            f"operator code {code} belonged to a cashier since deleted; an operator code is "
            "never reused: choose a new one",
        )
    if in_use(session, owner, code):
        return ApiError(
            409,
            "cashier.operator_code_taken",
            f"operator code {code} is in use by cashier {owner.code}; choose another",
        )
    return ApiError(
        409,
        "cashier.operator_code_used_before",
        f"operator code {code} was used before by cashier {owner.code} and stays theirs; an "
        "operator code is never reused: choose a new one",
    )


def in_use(session: Session, cashier: Cashier, code: str) -> bool:
    """True when `code` is the cashier's operator code now or the code of one of its details sets."""
    if cashier.operator_code == code:
        return True
    return (
        session.scalar(
            select(CashierDetailsSet.point_of_sale_id)
            .where(CashierDetailsSet.cashier_id == cashier.id, CashierDetailsSet.operator_code == code)
            .limit(1)
        )
        is not None
    )


def explain_conflict(session: Session, company_id: int, cashier_code: str | None = None) -> ApiError:
    """The 409 for a write refused by a unique key, read after the rollback (by then the
    request that got there first has committed): the cashier code, else a concurrent change."""
    if (
        cashier_code is not None
        and session.scalar(select(Cashier.id).where(Cashier.company_id == company_id, Cashier.code == cashier_code))
        is not None
    ):
        return ApiError(
            409,
            "cashier.code_taken",
            f"cashier code {cashier_code} is taken in this company (codes of deleted cashiers stay taken)",
        )
    return ApiError(409, "conflict", "conflicts with a concurrent change; read and retry")
