"""ORM models of the service database (SQLAlchemy 2, typed ``Mapped[...]`` columns).

Tables: the PRD's ``customers``, ``facilities``, ``resources``, ``workloads`` and
``allocations``, plus ``api_keys``, ``audit_log``, ``usage_records`` and
``idempotency_keys``.

Conventions (the same on SQLite and PostgreSQL):

- **Ids** are strings with a type prefix and a random UUID4 in hex, e.g.
  ``wl_3f2a...`` (35 characters): readable in logs, unguessable, and free of any shared
  counter, so ids can be made before the row is written. Prefixes are in :data:`ID_PREFIXES`.
  Facility and resource ids come from the scenario / inventory (``site_a``,
  ``site_a/h100``) and are stored as given. ``audit_log`` and ``allocations`` use an
  autoincrement integer: their order of insertion is the order that matters.
- **Timestamps** are timezone-aware UTC ``datetime`` values (:class:`UtcDateTime`); naive
  values are refused rather than guessed.
- **Money** is ``Numeric(18, 6)`` USD, read back as ``Decimal``.
- **JSON** columns are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL; Python ``None``
  is stored as SQL ``NULL``.
- **Enumerations** (statuses, roles, units) are short strings guarded by CHECK
  constraints; the allowed values are the tuples below.
- Constraint and index names follow :data:`NAMING_CONVENTION`, so the migrations and the
  models name everything alike on every backend.

The schema itself is created only by the Alembic migrations (``twin/service/db/migrations``);
tests check that these models and the migrated schema do not differ.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from twin.scenario import WORKLOAD_TYPES

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Names of constraints and indexes, identical on SQLite and PostgreSQL."""

ID_PREFIXES: dict[str, str] = {
    "customer": "cus",
    "workload": "wl",
    "api_key": "key",
    "usage_record": "use",
}
"""Prefix of each generated id kind (``wl_<32 hex>``)."""

ID_LENGTH = 40
"""Width of generated id columns [characters]: prefix, underscore and 32 hex digits fit."""

WORKLOAD_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "rejected",
)
"""Lifecycle of a workload: accepted work is ``queued``; the loop starts it (``running``)
and ends it (``completed`` / ``failed``); a customer may cancel it; the twin may reject it
(no capacity can ever serve it)."""

ACTIVE_WORKLOAD_STATUSES: tuple[str, ...] = ("queued", "running")
"""Statuses of work the twin still owes; resumed after a restart."""

TERMINAL_WORKLOAD_STATUSES: tuple[str, ...] = ("completed", "failed", "cancelled", "rejected")
"""Statuses a workload never leaves."""

RESOURCE_TYPES: tuple[str, ...] = ("gpu", "asic")
RESOURCE_STATUSES: tuple[str, ...] = ("online", "offline", "maintenance", "unhealthy")
API_KEY_ROLES: tuple[str, ...] = ("customer", "operator", "admin")
USAGE_UNITS: tuple[str, ...] = ("gpu_s", "requests", "gb_month", "gb_h", "kwh")
"""Units of metered usage: GPU-seconds, inference requests, storage GB-months and
GB-hours, attributed energy kWh."""
PRICING_MODELS: tuple[str, ...] = ("pay_per_use", "reserved", "spot")

USD = Numeric(18, 6)
"""Money column type [USD]: 12 integer digits, 6 decimals."""


def new_id(kind: str) -> str:
    """A fresh random id of the given kind (a key of :data:`ID_PREFIXES`), e.g. ``wl_...``."""
    return f"{ID_PREFIXES[kind]}_{uuid.uuid4().hex}"


def utc_now() -> datetime:
    """The current wall-clock time, timezone-aware UTC (the IO edge: the service only)."""
    return datetime.now(UTC)


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone was given where an absolute instant is needed."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant.

    Writes refuse naive datetimes and convert aware ones to UTC. PostgreSQL stores
    ``timestamptz``; SQLite stores the UTC wall time as text in one fixed-width format,
    so ordering by the column is ordering in time. Reads always return aware UTC values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Check the value is aware and convert it to UTC (naive UTC for SQLite's text)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"datetime {value.isoformat()} has no time zone; pass an aware UTC datetime"
            )
        value_utc = value.astimezone(UTC)
        return value_utc.replace(tzinfo=None) if dialect.name == "sqlite" else value_utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSON_DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON column type: ``JSON`` on SQLite, ``JSONB`` on PostgreSQL; ``None`` is SQL NULL."""


def _in_check(column: str, values: tuple[str, ...]) -> str:
    """SQL text of a CHECK that ``column`` holds one of ``values``."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base: shared metadata (naming convention) and Python -> SQL type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UtcDateTime(),
        dict[str, Any]: JSON_DOCUMENT,
        Decimal: USD,
    }


class Customer(Base):
    """A customer of the platform: owns workloads, usage records and API keys."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class Facility(Base):
    """A data center: power cap and grid settlement point (ids as in the scenario)."""

    __tablename__ = "facilities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    settlement_point: Mapped[str | None] = mapped_column(String(64))
    power_cap_mw: Mapped[float | None] = mapped_column(Float)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    __table_args__ = (
        CheckConstraint("power_cap_mw IS NULL OR power_cap_mw >= 0", name="power_cap_mw"),
    )


class Resource(Base):
    """A compute resource at a facility: a GPU or ASIC device or pool of identical ones.

    ``subtype`` is the hardware model (``H100``, ``S21``); ``capacity`` holds its amounts
    with units in the keys (``{"gpu_count": 8, "power_kw": 5.6}``).
    """

    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    subtype: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="online")
    capacity: Mapped[dict[str, Any] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    __table_args__ = (
        CheckConstraint(_in_check("type", RESOURCE_TYPES), name="type"),
        CheckConstraint(_in_check("status", RESOURCE_STATUSES), name="status"),
    )


class Workload(Base):
    """A unit of customer work accepted by the API and run by the twin.

    ``workload_type`` is the PRD's workload ``type`` (``ai_inference_batch`` ...). GPU work
    asks for ``gpu_count`` (optionally of ``gpu_type``); mining asks for ``hashrate_ths``.
    ``twin_job_row`` is the workload's row in the twin's job table once the loop has taken
    it, so a restarted loop can match the two.
    """

    __tablename__ = "workloads"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    workload_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    status_reason: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    requirements: Mapped[dict[str, Any] | None] = mapped_column()
    gpu_count: Mapped[int | None] = mapped_column(Integer)
    gpu_type: Mapped[str | None] = mapped_column(String(32))
    hashrate_ths: Mapped[float | None] = mapped_column(Float)
    deadline_at: Mapped[datetime | None] = mapped_column()
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    sla: Mapped[dict[str, Any] | None] = mapped_column()
    facility_id: Mapped[str | None] = mapped_column(ForeignKey("facilities.id"))
    twin_job_row: Mapped[int | None] = mapped_column(BigInteger)
    estimated_start_at: Mapped[datetime | None] = mapped_column()
    estimated_cost_usd: Mapped[Decimal | None] = mapped_column()
    cost_usd: Mapped[Decimal | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    __table_args__ = (
        CheckConstraint(_in_check("workload_type", WORKLOAD_TYPES), name="workload_type"),
        CheckConstraint(_in_check("status", WORKLOAD_STATUSES), name="status"),
        CheckConstraint("priority >= 1", name="priority"),
        CheckConstraint("gpu_count IS NULL OR gpu_count >= 1", name="gpu_count"),
        CheckConstraint("hashrate_ths IS NULL OR hashrate_ths > 0", name="hashrate_ths"),
        CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_usd"),
        Index("ix_workloads_customer_created", "customer_id", "created_at", "id"),
        Index("ix_workloads_created", "created_at", "id"),
        Index("ix_workloads_status", "status"),
    )


class Allocation(Base):
    """A workload's hold on a resource from ``allocated_at`` until ``released_at``."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id"), index=True)
    allocated_at: Mapped[datetime] = mapped_column(default=utc_now)
    released_at: Mapped[datetime | None] = mapped_column()
    utilization: Mapped[dict[str, Any] | None] = mapped_column()


class ApiKey(Base):
    """An API credential. Only a hash of the secret is stored; ``key_prefix`` (the first
    8 characters of the key) finds the candidate rows whose hash is then checked."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    totp_secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in_check("role", API_KEY_ROLES), name="role"),
        CheckConstraint(
            "role <> 'customer' OR customer_id IS NOT NULL", name="customer_key_has_customer"
        ),
    )


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log.

    ``hash`` covers the entry and ``prev_hash`` (the previous entry's ``hash``; NULL for
    the first entry); the hashing belongs to the security module. The database refuses
    UPDATE and DELETE on this table (triggers created by the migration).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utc_now)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(256))
    payload: Mapped[dict[str, Any] | None] = mapped_column()
    prev_hash: Mapped[str | None] = mapped_column(String(128))
    hash: Mapped[str] = mapped_column(String(128), unique=True)

    __table_args__ = (Index("ix_audit_log_at", "at"),)


class UsageRecord(Base):
    """Metered, priced usage of one customer over ``[started_at, ended_at)``.

    ``quantity`` is in ``unit``: GPU-seconds (``gpu_s``), inference ``requests`` or
    storage ``gb_month``; ``price_usd`` is what the record costs under ``pricing``.
    """

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    workload_id: Mapped[str | None] = mapped_column(ForeignKey("workloads.id"), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime] = mapped_column()
    price_usd: Mapped[Decimal] = mapped_column()
    pricing: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    __table_args__ = (
        CheckConstraint(_in_check("unit", USAGE_UNITS), name="unit"),
        CheckConstraint(_in_check("pricing", PRICING_MODELS), name="pricing"),
        CheckConstraint("quantity >= 0", name="quantity"),
        CheckConstraint("price_usd >= 0", name="price_usd"),
        CheckConstraint("ended_at >= started_at", name="period"),
        Index("ix_usage_records_customer_started", "customer_id", "started_at"),
    )


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for a workload submission, unique per customer.

    ``request_hash`` is a digest of the request body: a retry with the same key and body
    gets the original workload; the same key with another body is a conflict. The primary
    key ``(customer_id, key)`` makes the key unique per customer.
    """

    __tablename__ = "idempotency_keys"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(128))
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)
