"""Initial schema: customers, facilities, resources, workloads, allocations, api_keys,
audit_log, usage_records, idempotency_keys.

Self-contained on purpose (no import of the models, which will move on): types, checks
and names are written out as they were at this revision. Works on SQLite and PostgreSQL.
The audit log is made append-only by triggers that refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
UTC_TIMESTAMP = sa.DateTime(timezone=True)
USD = sa.Numeric(precision=18, scale=6)

WORKLOAD_TYPES = ("ai_inference_realtime", "ai_inference_batch", "model_training", "bitcoin_mining")
WORKLOAD_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "rejected")
RESOURCE_TYPES = ("gpu", "asic")
RESOURCE_STATUSES = ("online", "offline", "maintenance", "unhealthy")
API_KEY_ROLES = ("customer", "operator", "admin")
USAGE_UNITS = ("gpu_s", "requests", "gb_month")
PRICING_MODELS = ("pay_per_use", "reserved", "spot")

SQLITE_AUDIT_TRIGGERS = (
    """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
)
POSTGRESQL_AUDIT_TRIGGERS = (
    """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
)


def _in_check(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    """A CHECK that ``column`` holds one of ``values``."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=op.f(name))


def _timestamps() -> list[sa.Column]:
    """``created_at`` and ``updated_at`` columns (UTC)."""
    return [
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
    ]


def upgrade() -> None:
    """Create every table, index, constraint and the audit-log triggers."""
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "facilities",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("settlement_point", sa.String(length=64), nullable=True),
        sa.Column("power_cap_mw", sa.Float(), nullable=True),
        sa.Column("metadata", JSON_DOCUMENT, nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "power_cap_mw IS NULL OR power_cap_mw >= 0", name=op.f("ck_facilities_power_cap_mw")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("subtype", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("capacity", JSON_DOCUMENT, nullable=True),
        sa.Column("metadata", JSON_DOCUMENT, nullable=True),
        *_timestamps(),
        _in_check("type", RESOURCE_TYPES, "ck_resources_type"),
        _in_check("status", RESOURCE_STATUSES, "ck_resources_status"),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_resources_facility_id_facilities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    op.create_index(op.f("ix_resources_facility_id"), "resources", ["facility_id"])

    op.create_table(
        "workloads",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("workload_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("requirements", JSON_DOCUMENT, nullable=True),
        sa.Column("gpu_count", sa.Integer(), nullable=True),
        sa.Column("gpu_type", sa.String(length=32), nullable=True),
        sa.Column("hashrate_ths", sa.Float(), nullable=True),
        sa.Column("deadline_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        sa.Column("sla", JSON_DOCUMENT, nullable=True),
        sa.Column("facility_id", sa.String(length=64), nullable=True),
        sa.Column("twin_job_row", sa.BigInteger(), nullable=True),
        sa.Column("estimated_start_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("estimated_cost_usd", USD, nullable=True),
        sa.Column("cost_usd", USD, nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("completed_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        _in_check("workload_type", WORKLOAD_TYPES, "ck_workloads_workload_type"),
        _in_check("status", WORKLOAD_STATUSES, "ck_workloads_status"),
        sa.CheckConstraint("priority >= 1", name=op.f("ck_workloads_priority")),
        sa.CheckConstraint(
            "gpu_count IS NULL OR gpu_count >= 1", name=op.f("ck_workloads_gpu_count")
        ),
        sa.CheckConstraint(
            "hashrate_ths IS NULL OR hashrate_ths > 0", name=op.f("ck_workloads_hashrate_ths")
        ),
        sa.CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name=op.f("ck_workloads_cost_usd")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_workloads_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_workloads_facility_id_facilities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workloads")),
    )
    op.create_index(
        "ix_workloads_customer_created", "workloads", ["customer_id", "created_at", "id"]
    )
    op.create_index("ix_workloads_created", "workloads", ["created_at", "id"])
    op.create_index("ix_workloads_status", "workloads", ["status"])

    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload_id", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=128), nullable=False),
        sa.Column("allocated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("released_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("utilization", JSON_DOCUMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resources.id"], name=op.f("fk_allocations_resource_id_resources")
        ),
        sa.ForeignKeyConstraint(
            ["workload_id"], ["workloads.id"], name=op.f("fk_allocations_workload_id_workloads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index(op.f("ix_allocations_workload_id"), "allocations", ["workload_id"])
    op.create_index(op.f("ix_allocations_resource_id"), "allocations", ["resource_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("totp_secret", sa.String(length=128), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("revoked_at", UTC_TIMESTAMP, nullable=True),
        _in_check("role", API_KEY_ROLES, "ck_api_keys_role"),
        sa.CheckConstraint(
            "role <> 'customer' OR customer_id IS NOT NULL",
            name=op.f("ck_api_keys_customer_key_has_customer"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_api_keys_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_key_prefix"), "api_keys", ["key_prefix"])
    op.create_index(op.f("ix_api_keys_customer_id"), "api_keys", ["customer_id"])

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", UTC_TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=256), nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=True),
        sa.Column("prev_hash", sa.String(length=128), nullable=True),
        sa.Column("hash", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("workload_id", sa.String(length=40), nullable=True),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("ended_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("price_usd", USD, nullable=False),
        sa.Column("pricing", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        _in_check("unit", USAGE_UNITS, "ck_usage_records_unit"),
        _in_check("pricing", PRICING_MODELS, "ck_usage_records_pricing"),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_usage_records_quantity")),
        sa.CheckConstraint("price_usd >= 0", name=op.f("ck_usage_records_price_usd")),
        sa.CheckConstraint("ended_at >= started_at", name=op.f("ck_usage_records_period")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_usage_records_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["workload_id"], ["workloads.id"], name=op.f("fk_usage_records_workload_id_workloads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(
        "ix_usage_records_customer_started", "usage_records", ["customer_id", "started_at"]
    )
    op.create_index(op.f("ix_usage_records_workload_id"), "usage_records", ["workload_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=128), nullable=False),
        sa.Column("workload_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_idempotency_keys_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["workload_id"],
            ["workloads.id"],
            name=op.f("fk_idempotency_keys_workload_id_workloads"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_workload_id"), "idempotency_keys", ["workload_id"])
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])

    dialect = op.get_bind().dialect.name
    triggers = SQLITE_AUDIT_TRIGGERS if dialect == "sqlite" else POSTGRESQL_AUDIT_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    """Drop everything :func:`upgrade` created (the triggers go with their table)."""
    for table in (
        "idempotency_keys",
        "usage_records",
        "audit_log",
        "api_keys",
        "allocations",
        "workloads",
        "resources",
        "facilities",
        "customers",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
