"""Operator codes belong to their cashier; details sets get a session label.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

- operator_codes: unique (cashier_id, code) (replaces the index on cashier_id), so a details
  set can point at a code of its own cashier. Every row stays as it is: its owner
  (`cashier_id`), where it was first used and when (`taken_at`).
- cashier_details: `operator_code` may be NULL (the set carries the cashier's own code),
  a foreign key (cashier_id, operator_code) -> operator_codes (cashier_id, code) (a set
  uses only codes of its cashier), and `session_label` (free text: airline session, counter).
Existing details keep their code. Codes in use that never reached the registry (only
possible for rows written outside the service) are registered to the cashier using them;
a code used by two cashiers stops the upgrade with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPERATOR_CODE = sa.String(4)
SESSION_LABEL = sa.String(100)

# Every operator code in use, with the cashier using it: own codes and details codes.
_IN_USE = """
    SELECT c.company_id, c.operator_code AS code, c.id AS cashier_id, NULL AS point_of_sale_id
      FROM cashiers c
    UNION
    SELECT c.company_id, d.operator_code, c.id, d.point_of_sale_id
      FROM cashier_details d JOIN cashiers c ON c.id = d.cashier_id
"""


def upgrade() -> None:
    bind = op.get_bind()
    _refuse_shared_codes(bind)
    _register_missing_codes(bind)
    with op.batch_alter_table("operator_codes") as batch:
        batch.drop_index("ix_operator_codes_cashier_id")
        batch.create_unique_constraint("uq_operator_codes_cashier_code", ["cashier_id", "code"])
    with op.batch_alter_table("cashier_details") as batch:
        batch.alter_column("operator_code", existing_type=OPERATOR_CODE, nullable=True)
        batch.add_column(sa.Column("session_label", SESSION_LABEL, nullable=True))
        batch.create_foreign_key("fk_cashier_details_owned_code", "operator_codes",
                                 ["cashier_id", "operator_code"], ["cashier_id", "code"])


def downgrade() -> None:
    # Before 0009 every details set names its code: write the cashier's own where it has none.
    op.execute("UPDATE cashier_details SET operator_code = (SELECT c.operator_code FROM cashiers c "
               "WHERE c.id = cashier_details.cashier_id) WHERE operator_code IS NULL")
    with op.batch_alter_table("cashier_details") as batch:
        batch.drop_constraint("fk_cashier_details_owned_code", type_="foreignkey")
        batch.drop_column("session_label")
        batch.alter_column("operator_code", existing_type=OPERATOR_CODE, nullable=False)
    with op.batch_alter_table("operator_codes") as batch:
        batch.drop_constraint("uq_operator_codes_cashier_code", type_="unique")
        batch.create_index("ix_operator_codes_cashier_id", ["cashier_id"])


def _refuse_shared_codes(bind: sa.Connection) -> None:
    """Stop when one code is used by, or registered to, two cashiers of a company: the
    service never allowed it, so the data was changed by hand, and who keeps the code is for
    a person to decide."""
    shared = bind.execute(sa.text(
        f"SELECT u.company_id, u.code FROM ({_IN_USE} UNION "
        "SELECT company_id, code, cashier_id, point_of_sale_id FROM operator_codes) u "
        "GROUP BY u.company_id, u.code HAVING COUNT(DISTINCT u.cashier_id) > 1 "
        "ORDER BY u.company_id, u.code LIMIT 5")).all()
    if shared:
        listed = ", ".join(f"company {company} code {code}" for company, code in shared)
        raise RuntimeError(
            "cannot give every operator code one owner: some are used by several cashiers "
            f"({listed}{', ...' if len(shared) == 5 else ''}). Give each of those cashiers or "
            "details sets another code in the tables cashiers / cashier_details (the owner is "
            "operator_codes.cashier_id), then start again.")


def _register_missing_codes(bind: sa.Connection) -> None:
    """Register to its cashier each code in use that has no registry row (first use: now)."""
    bind.execute(sa.text(
        "INSERT INTO operator_codes (company_id, code, cashier_id, point_of_sale_id, taken_at) "
        f"SELECT u.company_id, u.code, MIN(u.cashier_id), MIN(u.point_of_sale_id), CURRENT_TIMESTAMP "
        f"FROM ({_IN_USE}) u WHERE NOT EXISTS (SELECT 1 FROM operator_codes o "
        "WHERE o.company_id = u.company_id AND o.code = u.code) GROUP BY u.company_id, u.code"))
