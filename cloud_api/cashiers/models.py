"""Cashier tables: cashiers, the devices each may use, their details per point of sale, and
the company's operator code registry.

A cashier is never deleted, only marked (`deleted_at`): it leaves every roster, but its
cashier code stays taken (the unique constraint covers deleted rows) and its operator codes
stay in `operator_codes`, whose rows are never deleted either. So "an operator code is never
used twice in a company" is a primary key the database enforces, under concurrent requests
too, not a check the service could race past.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cloud_api.models import CODE, DEVICE_ID, Base

OPERATOR_CODE = String(4)  # exactly 4 digits (kc.OperatorCode), checked by the API
PIN_HASH = String(200)  # kc.PinHash: scrypt$logN$r$p$salt$hash
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
    """One set of details: what the cashier's sales at this point of sale carry."""

    __tablename__ = "cashier_details"

    cashier_id: Mapped[int] = mapped_column(ForeignKey("cashiers.id"), primary_key=True)
    point_of_sale_id: Mapped[int] = mapped_column(ForeignKey("points_of_sale.id"), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(CODE)
    operator_code: Mapped[str] = mapped_column(OPERATOR_CODE)


class OperatorCodeUse(Base):
    """Every operator code a company has ever used, with its first use. Never deleted.

    `point_of_sale_id` is NULL for a cashier's own operator code and names the point of sale
    for the code of a details set.
    """

    __tablename__ = "operator_codes"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    code: Mapped[str] = mapped_column(OPERATOR_CODE, primary_key=True)
    cashier_id: Mapped[int] = mapped_column(ForeignKey("cashiers.id"), index=True)
    point_of_sale_id: Mapped[int | None] = mapped_column(ForeignKey("points_of_sale.id"))
    taken_at: Mapped[datetime]


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
