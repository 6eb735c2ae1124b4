"""Every level has three grades: admin, manager, viewer.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-14

`users.role` is `<level>_<grade>`: the check `ck_users_role_level` now accepts the nine roles
(owner, partner and company, each as admin, manager or viewer) with the same tenant columns
as before: owner roles no partner or company, partner roles their partner only, company roles
their company only. Every row valid before is valid after. Downgrading refuses while a user
holds a role 0011 does not know (there is no role of that level with the same rights).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_users_role_level"
GRADED_RULE = (
    "(role IN ('owner_admin', 'owner_manager', 'owner_viewer') AND partner_id IS NULL AND company_id IS NULL)"
    " OR (role IN ('partner_admin', 'partner_manager', 'partner_viewer')"
    " AND partner_id IS NOT NULL AND company_id IS NULL)"
    " OR (role IN ('company_admin', 'company_manager', 'company_viewer')"
    " AND partner_id IS NULL AND company_id IS NOT NULL)"
)
OLD_ROLES = ("owner_admin", "partner_admin", "company_admin", "company_viewer")
OLD_RULE = (
    "(role = 'owner_admin' AND partner_id IS NULL AND company_id IS NULL)"
    " OR (role = 'partner_admin' AND partner_id IS NOT NULL AND company_id IS NULL)"
    " OR (role IN ('company_admin', 'company_viewer')"
    " AND partner_id IS NULL AND company_id IS NOT NULL)"
)


def upgrade() -> None:
    _replace_check(GRADED_RULE)


def downgrade() -> None:
    users = sa.table("users", sa.column("id"), sa.column("role"))
    newer = op.get_bind().execute(
        sa.select(users.c.id, users.c.role).where(users.c.role.not_in(OLD_ROLES)).order_by(users.c.id).limit(5)
    ).all()
    if newer:
        listed = ", ".join(f"user {user_id} ({role})" for user_id, role in newer)
        raise RuntimeError(
            f"cannot go back before 0012: some users hold manager or partner/owner viewer roles ({listed}"
            f"{', ...' if len(newer) == 5 else ''}). Give them one of {', '.join(OLD_ROLES)} or delete "
            "them, then downgrade again."
        )
    _replace_check(OLD_RULE)


def _replace_check(rule: str) -> None:
    # On SQLite this rebuilds the table; `schema.migration_transaction` has the foreign keys
    # off meanwhile, so the tokens and links that refer to users do not stop the rebuild.
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(CHECK, type_="check")
        batch.create_check_constraint(CHECK, sa.text(rule))
