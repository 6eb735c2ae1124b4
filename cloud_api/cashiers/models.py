"""Cashier tables: cashiers, the devices each may use, their details per point of sale, and
the company's operator code registry.

A cashier is never deleted, only marked (`deleted_at`): it leaves every roster, but its
cashier code stays taken (the unique constraint covers deleted rows) and its operator codes
stay in `operator_codes`, whose rows are never deleted either. Each row names the code's
owner: the cashier may use the code again (as its own code, in any of its details sets), no
other cashier of the company ever can. "One owner per code" is the registry's primary key,
which the database enforces under concurrent requests too, not a check the service could
race past; a details set's code must be a registry row of the same cashier (foreign key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, ForeignKeyConstraint, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.db import CODE, DEVICE_ID, Base

OPERATOR_CODE = String(4)  # exactly 4 digits (kc.OperatorCode), checked by the API
PIN_HASH = String(200)  # kc.PinHash: scrypt$logN$r$p$salt$hash
SESSION_LABEL_LENGTH = 100
SESSION_LABEL = String(SESSION_LABEL_LENGTH)  # kc.SessionLabel: free text naming the airline session or counter
JsonList = JSON().with_variant(JSONB(), "postgresql")


class Cashier(Base):
    __tablename__ = "cashiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    code: Mapped[str] = mapped_column(CODE)  # the cashier id people type at login
    name: Mapped[str] = mapped_column(String(200))
    operator_code: Mapped[str] = mapped_column(OPERATOR_CODE)
    pin_hash: Mapped[str | None] = mapped_column(PIN_HASH)  # None until a PIN is set
    pin_set_at: Mapped[datetime | None]
    roles: Mapped[list[Any]] = mapped_column(JsonList)  # kc.CashierRole values, at least one
    enabled: Mapped[bool]
    # True: every device of the company, now and later; False: the cashier_devices rows.
    all_devices: Mapped[bool]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("company_id", "code", name="uq_cashiers_company_code"),)


class CashierDevice(Base):
    """A device a cashier may use (only read while the cashier's `all_devices` is false)."""

    __tablename__ = "cashier_devices"

    cashier_id: Mapped[int] = mapped_column(ForeignKey("cashiers.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(DEVICE_ID, ForeignKey("devices.device_id"), primary_key=True, index=True)


class CashierDetailsSet(Base):
    """One set of details: what the cashier's sales at this point of sale (an airline
    session, a counter) carry."""

    __tablename__ = "cashier_details"

    cashier_id: Mapped[int] = mapped_column(ForeignKey("cashiers.id"), primary_key=True)
    point_of_sale_id: Mapped[int] = mapped_column(ForeignKey("points_of_sale.id"), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(CODE)
    # None: the cashier's own operator code (also after it changes); else one of its codes.
    operator_code: Mapped[str | None] = mapped_column(OPERATOR_CODE)
    session_label: Mapped[str | None] = mapped_column(SESSION_LABEL)

    __table_args__ = (
        ForeignKeyConstraint(
            ["cashier_id", "operator_code"],
            ["operator_codes.cashier_id", "operator_codes.code"],
            name="fk_cashier_details_owned_code",
        ),
    )


class OperatorCodeUse(Base):
    """Every operator code a company has ever used: its owner for ever and its first use.
    Never deleted, never given to another cashier.

    `point_of_sale_id` is where the code was first used: NULL for a cashier's own operator
    code, the point of sale for a code first given in a details set.
    """

    __tablename__ = "operator_codes"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    code: Mapped[str] = mapped_column(OPERATOR_CODE, primary_key=True)
    cashier_id: Mapped[int] = mapped_column(ForeignKey("cashiers.id"))
    point_of_sale_id: Mapped[int | None] = mapped_column(ForeignKey("points_of_sale.id"))
    taken_at: Mapped[datetime]

    # What cashier_details' foreign key points at ((company_id, code) is already unique); its
    # index also serves "the codes of a cashier".
    __table_args__ = (UniqueConstraint("cashier_id", "code", name="uq_operator_codes_cashier_code"),)


class CashierRosterLock(Base):
    """One row per company, updated first by every change to its cashiers or rosters.

    Updating it takes the row lock on PostgreSQL (the database write lock on SQLite), so two
    changes to one company's cashiers run one after the other and each builds its rosters
    from the other's committed result: without it two concurrent changes could each publish
    a roster missing the other's cashier.
    """

    __tablename__ = "cashier_roster_locks"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    changes: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime]
