"""Usage units for storage by the GB-hour (``gb_h``) and attributed energy (``kwh``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_UNITS = ("gpu_s", "requests", "gb_month")
NEW_UNITS = ("gpu_s", "requests", "gb_month", "gb_h", "kwh")


def _replace_unit_check(units: tuple[str, ...]) -> None:
    quoted = ", ".join(f"'{unit}'" for unit in units)
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_constraint(op.f("ck_usage_records_unit"), type_="check")
        batch.create_check_constraint(op.f("ck_usage_records_unit"), f"unit IN ({quoted})")


def upgrade() -> None:
    _replace_unit_check(NEW_UNITS)


def downgrade() -> None:
    _replace_unit_check(OLD_UNITS)
