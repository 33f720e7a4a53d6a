"""Typed data access for the API and the live loop: one function, one transaction.

Every function here opens its own transaction on the given session and ends it (commit,
or rollback on error) before returning, so what a writer returns is durable (committed,
and on SQLite fsynced) when the caller sees it: the API may acknowledge it. Pass a
session that holds no pending work of its own. Writers take SQLite's write lock up front
(``BEGIN IMMEDIATE``) and PostgreSQL row locks (``SELECT ... FOR UPDATE``) where they
read before writing. Returned objects stay readable after the commit (the session
factory disables expiry) and every query refreshes objects already in the session.

Bad input raises a :class:`RepositoryError` (a ``ValueError``) whose ``field`` names the
offending argument; the API maps :class:`WorkloadNotFound` to 404,
:class:`IdempotencyConflict` and :class:`InvalidTransition` to 409, and the others to 422.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.workload_types import TYPE_NAMES, WORKLOAD_SPECS
from twin.service.db.engine import BATCHED, WRITE_TRANSACTION_OPTION
from twin.service.db.models import (
    ACTIVE_WORKLOAD_STATUSES,
    API_KEY_ROLES,
    PRICING_MODELS,
    RESOURCE_STATUSES,
    RESOURCE_TYPES,
    TERMINAL_WORKLOAD_STATUSES,
    USAGE_UNITS,
    WORKLOAD_STATUSES,
    Allocation,
    ApiKey,
    Customer,
    Facility,
    IdempotencyKey,
    Resource,
    UsageRecord,
    Workload,
    new_id,
    utc_now,
)

WORKLOADS = cast(Table, Workload.__table__)
"""The workloads table, for the Core statements of the hot paths."""


@dataclass(slots=True)
class WorkloadRow:
    """A workload as stored: a plain copy of its row (one field per column of
    :class:`~service.db.models.Workload`). The repository returns these rather than ORM
    objects: the API and the twin's status changes handle thousands a second, and an ORM
    instance costs several times more to build. Changing one changes nothing stored."""

    id: str
    customer_id: str
    workload_type: str
    status: str
    status_reason: str | None
    priority: int
    requirements: dict[str, Any] | None
    gpu_count: int | None
    gpu_type: str | None
    hashrate_ths: float | None
    deadline_at: datetime | None
    callback_url: str | None
    sla: dict[str, Any] | None
    facility_id: str | None
    twin_job_row: int | None
    estimated_start_at: datetime | None
    estimated_cost_usd: Decimal | None
    cost_usd: Decimal | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


def _rows(result: Any) -> list[WorkloadRow]:
    """The workload rows of a Core result over :data:`WORKLOADS`."""
    return [WorkloadRow(**row) for row in result.mappings()]


IDEMPOTENCY_KEYS = cast(Table, IdempotencyKey.__table__)
USAGE_RECORDS = cast(Table, UsageRecord.__table__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
"""Most workloads one :func:`list_workloads` page may return."""

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed", "rejected"}),
    "running": frozenset({"completed", "failed", "cancelled", "queued"}),
}
"""Status changes :func:`set_status` accepts; terminal statuses have none. ``running ->
queued`` is a preemption with requeue."""

_MAX_USD = Decimal("999999999999.999999")
_USD_QUANTUM = Decimal("0.000001")
_REFRESH = {"populate_existing": True}

_InventoryRow = TypeVar("_InventoryRow", Facility, Resource)


# --------------------------------------------------------------------------- errors


class RepositoryError(ValueError):
    """Bad input to a repository function; ``field`` names the argument at fault."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its fields (it crosses from the writer process to the API's)."""
        return type(self), (self.field, self.reason), self.__dict__


class InvalidField(RepositoryError):
    """A value of the wrong type, out of range, or not one of the allowed values."""


class InvalidCursor(InvalidField):
    """A pagination cursor that this module did not make."""


class UnknownReference(RepositoryError):
    """An id that should name an existing row (customer, facility, resource) does not."""


class WorkloadNotFound(RepositoryError):
    """No such workload, or it belongs to another customer (the two are not told apart)."""


class InvalidTransition(RepositoryError):
    """A status change the workload lifecycle does not allow (e.g. cancel a completed one)."""


class IdempotencyConflict(RepositoryError):
    """An idempotency key reused with a different request body.

    Attributes:
        workload_id: the workload the key was first used for.
    """

    def __init__(self, field: str, reason: str, workload_id: str) -> None:
        super().__init__(field, reason)
        self.workload_id = workload_id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.field, self.reason, self.workload_id)


# --------------------------------------------------------------------------- transactions


@contextmanager
def write_transaction(session: Session) -> Iterator[None]:
    """One write transaction: takes SQLite's write lock first (``BEGIN IMMEDIATE``);
    commits at the end of the block, or rolls back on any error and re-raises.

    For other service modules that write (the audit log) so they get the same locking.
    If the session already has a transaction open, that one is used and committed. In a
    :class:`~twin.service.db.write_queue.WriteQueue` batch the block runs in the batch's
    transaction, inside the savepoint the queue gives each write, and the batch commits.
    """
    if session.info.get(BATCHED):
        yield
        return
    if not session.in_transaction():
        session.connection(execution_options={WRITE_TRANSACTION_OPTION: True})
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


@contextmanager
def read_transaction(session: Session) -> Iterator[None]:
    """One read transaction, ended (committed) when the block ends so no lock or snapshot
    lingers; rolled back on error. In a write batch it reads inside the batch's
    transaction and leaves it open."""
    if session.info.get(BATCHED):
        yield
        return
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


# --------------------------------------------------------------------------- validation


def _aware(field: str, value: datetime | None) -> datetime | None:
    """``value`` if it is None or a timezone-aware datetime; InvalidField otherwise."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidField(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidField(field, f"{value.isoformat()} has no time zone; give UTC")
    return value


def _now_or(field: str, value: datetime | None) -> datetime:
    """An aware ``value``, or the current UTC time when None."""
    return _aware(field, value) or utc_now()


def _one_of(field: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``; InvalidField listing them otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidField(field, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _text(field: str, value: object, max_length: int, *, optional: bool = False) -> str | None:
    """A non-empty string of at most ``max_length`` characters (or None if optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidField(field, f"expected a string of 1 to {max_length} characters")
    return value


def _positive_int(field: str, value: object, *, optional: bool = False) -> int | None:
    """An integer >= 1 (or None if optional)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidField(field, f"expected an integer >= 1, got {value!r}")
    return value


def _non_negative_number(field: str, value: object, *, strictly_positive: bool = False) -> float:
    """A finite real number >= 0 (> 0 when ``strictly_positive``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidField(field, f"expected a finite number, got {value!r}")
    if value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise InvalidField(field, f"must be {bound}, got {value!r}")
    return float(value)


def _usd(field: str, value: object, *, optional: bool = False) -> Decimal | None:
    """An amount in USD >= 0 as a Decimal with 6 decimals (floats go through ``str``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise InvalidField(field, f"expected an amount in USD, got {value!r}")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise InvalidField(field, f"{value!r} is not a number") from None
    if not amount.is_finite() or amount < 0 or amount > _MAX_USD:
        raise InvalidField(field, f"must be between 0 and {_MAX_USD} USD, got {value!r}")
    return amount.quantize(_USD_QUANTUM)


def _json_object(field: str, value: object) -> dict[str, Any] | None:
    """A JSON-serializable dict (or None)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidField(field, f"expected a JSON object, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidField(field, f"not serializable as JSON: {exc}") from None
    return dict(value)


def _require_customer(session: Session, customer_id: str, field: str = "customer_id") -> None:
    """UnknownReference unless the customer exists."""
    found = session.connection().execute(select(Customer.id).where(Customer.id == customer_id))
    if found.first() is None:
        raise UnknownReference(field, f"no customer {customer_id!r}")


def _require_facility(session: Session, facility_id: str | None, field: str) -> None:
    """UnknownReference unless ``facility_id`` is None or an existing facility."""
    if facility_id is None:
        return
    found = session.connection().execute(select(Facility.id).where(Facility.id == facility_id))
    if found.first() is None:
        raise UnknownReference(field, f"no facility {facility_id!r}")


# --------------------------------------------------------------------------- customers


def create_customer(
    session: Session, name: str, *, email: str | None = None, customer_id: str | None = None
) -> Customer:
    """Create a customer; its id is ``customer_id`` or a new ``cus_...`` id."""
    name = _text("name", name, 200) or ""
    email = _text("email", email, 320, optional=True)
    customer_id = _text("customer_id", customer_id, 40, optional=True) or new_id("customer")
    with write_transaction(session):
        if session.get(Customer, customer_id) is not None:
            raise InvalidField("customer_id", f"customer {customer_id!r} already exists")
        customer = Customer(id=customer_id, name=name, email=email)
        session.add(customer)
    return customer


def get_customer(session: Session, customer_id: str) -> Customer | None:
    """The customer with this id, or None."""
    with read_transaction(session):
        return session.get(Customer, customer_id, populate_existing=True)


# --------------------------------------------------------------------------- workloads


def create_workload(
    session: Session,
    customer_id: str,
    *,
    workload_type: str,
    gpu_count: int | None = None,
    gpu_type: str | None = None,
    hashrate_ths: float | None = None,
    priority: int | None = None,
    requirements: Mapping[str, Any] | None = None,
    deadline_at: datetime | None = None,
    callback_url: str | None = None,
    sla: Mapping[str, Any] | None = None,
    facility_id: str | None = None,
    estimated_start_at: datetime | None = None,
    estimated_cost_usd: Decimal | float | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    created_at: datetime | None = None,
    customer_known: bool = False,
) -> tuple[WorkloadRow, bool]:
    """Persist a new queued workload for ``customer_id``; returns ``(workload, created)``.

    ``customer_known`` skips the check that the customer exists, for callers that took
    the id from a row that references it (an API key; customers are never deleted); the
    foreign key still guards it.

    GPU types need ``gpu_count`` (>= 1 GPUs, optionally of ``gpu_type``); bitcoin_mining
    needs ``hashrate_ths`` [TH/s] > 0. ``priority`` defaults to the type's PRD priority.
    With an ``idempotency_key`` (and the ``request_hash`` of the request body), a repeat
    of the same key and hash returns the first workload with ``created=False``; the same
    key with another hash raises :class:`IdempotencyConflict`. Keys are per customer.

    Raises:
        InvalidField, UnknownReference, IdempotencyConflict.
    """
    spec = WORKLOAD_SPECS[TYPE_NAMES.index(_one_of("workload_type", workload_type, TYPE_NAMES))]
    if spec.on_asic:
        hashrate_ths = _non_negative_number("hashrate_ths", hashrate_ths, strictly_positive=True)
        for field, value in (("gpu_count", gpu_count), ("gpu_type", gpu_type)):
            if value is not None:
                raise InvalidField(field, f"{workload_type} runs on ASICs; give hashrate_ths")
    else:
        gpu_count = _positive_int("gpu_count", gpu_count)
        if hashrate_ths is not None:
            raise InvalidField("hashrate_ths", f"{workload_type} runs on GPUs; give gpu_count")
    if idempotency_key is not None:
        _text("idempotency_key", idempotency_key, 255)
        _text("request_hash", request_hash, 128)
    row: dict[str, Any] = {
        "id": new_id("workload"),
        "customer_id": customer_id,
        "workload_type": workload_type,
        "status": "queued",
        "status_reason": None,
        "priority": _positive_int("priority", priority, optional=True) or spec.priority,
        "requirements": _json_object("requirements", requirements),
        "gpu_count": gpu_count,
        "gpu_type": _text("gpu_type", gpu_type, 32, optional=True),
        "hashrate_ths": hashrate_ths,
        "deadline_at": _aware("deadline_at", deadline_at),
        "callback_url": _text("callback_url", callback_url, 2048, optional=True),
        "sla": _json_object("sla", sla),
        "facility_id": facility_id,
        "twin_job_row": None,
        "estimated_start_at": _aware("estimated_start_at", estimated_start_at),
        "estimated_cost_usd": _usd("estimated_cost_usd", estimated_cost_usd, optional=True),
        "cost_usd": None,
        "created_at": _now_or("created_at", created_at),
        "started_at": None,
        "completed_at": None,
    }
    row["updated_at"] = row["created_at"]
    try:
        with write_transaction(session):
            if not customer_known:
                _require_customer(session, customer_id)
            _require_facility(session, facility_id, "facility_id")
            # Core statements: the hot path of every submit (the ORM's unit of work costs
            # several times more per row and nothing here needs it).
            if idempotency_key is None:
                session.connection().execute(insert(WORKLOADS), [row])
            else:
                earlier = _replay(session, customer_id, idempotency_key, request_hash)
                if earlier is not None:
                    return earlier, False
                # A savepoint, so that losing a race for the key (IntegrityError below)
                # leaves the transaction usable for the replay.
                with session.begin_nested():
                    session.connection().execute(insert(WORKLOADS), [row])
                    session.connection().execute(
                        insert(IDEMPOTENCY_KEYS),
                        [
                            {
                                "customer_id": customer_id,
                                "key": idempotency_key,
                                "request_hash": request_hash,
                                "workload_id": row["id"],
                                "created_at": row["created_at"],
                            }
                        ],
                    )
        return WorkloadRow(**row), True
    except IntegrityError:
        # Another request committed the same key between our lookup and insert
        # (PostgreSQL, READ COMMITTED): answer as its retry would be answered.
        if idempotency_key is None:
            raise
        with read_transaction(session):
            earlier = _replay(session, customer_id, idempotency_key, request_hash)
        if earlier is None:
            raise
        return earlier, False


def _replay(
    session: Session, customer_id: str, key: str, request_hash: str | None
) -> WorkloadRow | None:
    """The workload a previous use of ``key`` created, or None if the key is new."""
    keys = IDEMPOTENCY_KEYS
    stored = (
        session.connection()
        .execute(
            select(keys.c.request_hash, keys.c.workload_id).where(
                keys.c.customer_id == customer_id, keys.c.key == key
            )
        )
        .first()
    )
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(
            "idempotency_key",
            f"key {key!r} was used for workload {stored.workload_id} with another request body",
            stored.workload_id,
        )
    return _workload_copy(session, stored.workload_id, lock=False)


def get_workload(
    session: Session, workload_id: str, customer_id: str | None = None
) -> WorkloadRow | None:
    """The workload, or None if it does not exist or (with ``customer_id``) belongs to
    another customer."""
    with read_transaction(session):
        workload = _workload_copy(session, workload_id, lock=False)
    if workload is None or (customer_id is not None and workload.customer_id != customer_id):
        return None
    return workload


def get_workloads(session: Session, workload_ids: Sequence[str]) -> dict[str, WorkloadRow]:
    """Detached copies of the workloads with these ids that exist, by id (one query)."""
    query = select(WORKLOADS).where(WORKLOADS.c.id.in_(list(set(workload_ids))))
    with read_transaction(session):
        return {row.id: row for row in _rows(session.connection().execute(query))}


def _workload_copy(session: Session, workload_id: str, *, lock: bool) -> WorkloadRow | None:
    """A detached copy of the workload's row (row-locked for this transaction when
    ``lock``), read with one Core statement: the status read and every status change go
    through here, so they skip the ORM's identity map and unit of work."""
    query = select(WORKLOADS).where(WORKLOADS.c.id == workload_id)
    if lock:
        query = query.with_for_update()
    rows = _rows(session.connection().execute(query))
    return rows[0] if rows else None


def _save_changes(session: Session, before: WorkloadRow, after: WorkloadRow) -> None:
    """Write the columns in which the detached copy ``after`` differs from ``before``."""
    changes = {
        column.name: getattr(after, column.name)
        for column in WORKLOADS.columns
        if getattr(after, column.name) != getattr(before, column.name)
    }
    if changes:
        changes["updated_at"] = utc_now()
        after.updated_at = changes["updated_at"]
        statement = update(WORKLOADS).where(WORKLOADS.c.id == after.id).values(changes)
        session.connection().execute(statement)


def list_workloads(
    session: Session,
    customer_id: str | None,
    *,
    status: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[list[WorkloadRow], str | None]:
    """One page of workloads, newest first; ``(items, next_cursor)``.

    Ordered by ``(created_at, id)`` descending (keyset pagination): pass ``next_cursor``
    back to get the next page; it is None after the last page. Every workload that exists
    when the listing starts appears exactly once, even if others are added meanwhile.
    ``customer_id=None`` lists all customers (operators).
    """
    limit = _positive_int("limit", limit) or DEFAULT_PAGE_SIZE
    if limit > MAX_PAGE_SIZE:
        raise InvalidField("limit", f"at most {MAX_PAGE_SIZE}, got {limit}")
    query = select(WORKLOADS)
    if customer_id is not None:
        query = query.where(Workload.customer_id == customer_id)
    if status is not None:
        query = query.where(Workload.status == _one_of("status", status, WORKLOAD_STATUSES))
    if cursor is not None:
        after_created_at, after_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Workload.created_at < after_created_at,
                and_(Workload.created_at == after_created_at, Workload.id < after_id),
            )
        )
    query = query.order_by(Workload.created_at.desc(), Workload.id.desc()).limit(limit + 1)
    with read_transaction(session):
        rows = _rows(session.connection().execute(query))
    items = rows[:limit]
    next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
    return items, next_cursor


def _encode_cursor(last: WorkloadRow) -> str:
    """An opaque cursor naming the last workload of a page."""
    raw = json.dumps([last.created_at.isoformat(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor names; InvalidCursor if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at_text, workload_id = json.loads(raw)
        created_at = datetime.fromisoformat(created_at_text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidCursor("cursor", "not a cursor returned by list_workloads") from None
    if created_at.tzinfo is None or not isinstance(workload_id, str):
        raise InvalidCursor("cursor", "not a cursor returned by list_workloads")
    return created_at, workload_id


def _locked_workload(session: Session, workload_id: str, customer_id: str | None) -> WorkloadRow:
    """The workload, row-locked for this transaction; WorkloadNotFound if missing or
    another customer's."""
    workload = _workload_copy(session, workload_id, lock=True)
    if workload is None or (customer_id is not None and workload.customer_id != customer_id):
        raise WorkloadNotFound("workload_id", f"no workload {workload_id!r}")
    return workload


def cancel_workload(
    session: Session,
    workload_id: str,
    *,
    customer_id: str | None = None,
    at: datetime | None = None,
    reason: str = "cancelled by request",
) -> WorkloadRow:
    """Cancel a queued or running workload (scoped to ``customer_id`` when given).

    Cancelling a cancelled workload returns it unchanged (a retried cancel succeeds).

    Raises:
        WorkloadNotFound: no such workload for this customer.
        InvalidTransition: it already completed, failed or was rejected.
    """
    at = _now_or("at", at)
    with write_transaction(session):
        before = _locked_workload(session, workload_id, customer_id)
        workload = replace(before)
        if workload.status != "cancelled":
            _apply_status(workload, "cancelled", at, reason)
        _save_changes(session, before, workload)
    return workload


def set_status(
    session: Session,
    workload_id: str,
    status: str,
    *,
    at: datetime | None = None,
    reason: str | None = None,
    cost_usd: Decimal | float | None = None,
    facility_id: str | None = None,
    twin_job_row: int | None = None,
    estimated_start_at: datetime | None = None,
    estimated_cost_usd: Decimal | float | None = None,
) -> WorkloadRow:
    """Move a workload to ``status`` at time ``at`` (UTC; default now) along
    :data:`ALLOWED_TRANSITIONS`, and record what the loop learned about it.

    ``running`` sets ``started_at`` (first start only); a terminal status sets
    ``completed_at``. Setting the current status again is allowed and only updates the
    other given fields (e.g. ``twin_job_row`` once the loop has taken a queued workload).

    Raises:
        WorkloadNotFound, InvalidTransition, InvalidField, UnknownReference.
    """
    status = _one_of("status", status, WORKLOAD_STATUSES)
    at = _now_or("at", at)
    cost = _usd("cost_usd", cost_usd, optional=True)
    estimated_cost = _usd("estimated_cost_usd", estimated_cost_usd, optional=True)
    estimated_start_at = _aware("estimated_start_at", estimated_start_at)
    if twin_job_row is not None and (
        isinstance(twin_job_row, bool) or not isinstance(twin_job_row, int) or twin_job_row < 0
    ):
        raise InvalidField("twin_job_row", f"expected an integer >= 0, got {twin_job_row!r}")
    change = StatusChange(
        workload_id,
        status,
        reason=reason,
        cost_usd=cost,
        facility_id=facility_id,
        twin_job_row=twin_job_row,
        estimated_start_at=estimated_start_at,
        estimated_cost_usd=estimated_cost,
    )
    with write_transaction(session):
        _require_facility(session, facility_id, "facility_id")
        before = _locked_workload(session, workload_id, None)
        workload = _changed_copy(before, change, at)
        _save_changes(session, before, workload)
    return workload


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status change for :func:`set_status` / :func:`apply_status_changes`; fields left
    None are not changed."""

    workload_id: str
    status: str
    reason: str | None = None
    cost_usd: Decimal | float | None = None
    facility_id: str | None = None
    twin_job_row: int | None = None
    estimated_start_at: datetime | None = None
    estimated_cost_usd: Decimal | float | None = None


def _valid_change(field: str, change: StatusChange) -> StatusChange:
    """``change`` with its amounts as Decimal; InvalidField naming what is wrong."""
    _one_of(f"{field}.status", change.status, WORKLOAD_STATUSES)
    _aware(f"{field}.estimated_start_at", change.estimated_start_at)
    return replace(
        change,
        cost_usd=_usd(f"{field}.cost_usd", change.cost_usd, optional=True),
        estimated_cost_usd=_usd(
            f"{field}.estimated_cost_usd", change.estimated_cost_usd, optional=True
        ),
    )


def _changed_copy(before: WorkloadRow, change: StatusChange, at: datetime) -> WorkloadRow:
    """A copy of ``before`` with ``change`` applied (InvalidTransition if the lifecycle
    forbids it)."""
    workload = replace(before)
    if change.status != workload.status:
        _apply_status(workload, change.status, at, change.reason)
    elif change.reason is not None:
        workload.status_reason = change.reason
    for name in (
        "cost_usd",
        "facility_id",
        "twin_job_row",
        "estimated_start_at",
        "estimated_cost_usd",
    ):
        value = getattr(change, name)
        if value is not None:
            setattr(workload, name, value)
    return workload


_CHANGING_COLUMNS = (
    "status",
    "status_reason",
    "started_at",
    "completed_at",
    "cost_usd",
    "facility_id",
    "twin_job_row",
    "estimated_start_at",
    "estimated_cost_usd",
    "updated_at",
)
"""The workload columns a status change may write."""


AppliedChanges = tuple[list[WorkloadRow], list[tuple[StatusChange, RepositoryError]]]
"""What :func:`apply_status_changes` returns: the changed workloads and the refused
changes with their reasons."""


def apply_status_changes(
    session: Session, changes: Sequence[StatusChange], *, at: datetime | None = None
) -> AppliedChanges:
    """Apply many status changes at once (the twin's changes of one tick): one read of the
    rows, one executemany UPDATE. Changes that cannot apply (unknown workload or facility,
    a transition the lifecycle forbids, e.g. a workload cancelled meanwhile) are returned
    with their reason instead of raising, and the others land.

    Returns:
        (the changed workloads, in the order of ``changes``; the refused changes).
    """
    at = _now_or("at", at)
    applied: list[WorkloadRow] = []
    refused: list[tuple[StatusChange, RepositoryError]] = []
    valid: list[StatusChange] = []
    for index, change in enumerate(changes):
        try:
            valid.append(_valid_change(f"changes[{index}]", change))
        except InvalidField as error:
            refused.append((change, error))
    changes = valid
    with write_transaction(session):
        ids = list({change.workload_id for change in changes})
        query = select(WORKLOADS).where(WORKLOADS.c.id.in_(ids)).with_for_update()
        current = {row.id: row for row in _rows(session.connection().execute(query))}
        wanted = {c.facility_id for c in changes if c.facility_id is not None}
        facilities = set(
            session.scalars(select(Facility.id).where(Facility.id.in_(wanted))) if wanted else []
        )
        for change in changes:
            before = current.get(change.workload_id)
            if before is None:
                refused.append(
                    (change, WorkloadNotFound("workload_id", f"no workload {change.workload_id!r}"))
                )
                continue
            if change.facility_id is not None and change.facility_id not in facilities:
                refused.append(
                    (change, UnknownReference("facility_id", f"no facility {change.facility_id!r}"))
                )
                continue
            try:
                after = _changed_copy(before, change, at)
            except InvalidTransition as error:
                refused.append((change, error))
                continue
            after.updated_at = at
            current[change.workload_id] = after
            applied.append(after)
        if applied:
            statement = (
                update(WORKLOADS)
                .where(WORKLOADS.c.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in _CHANGING_COLUMNS})
            )
            latest = {w.id: w for w in applied}  # several changes of one workload: the last
            session.connection().execute(
                statement,
                [
                    {"b_id": w.id, **{f"b_{n}": getattr(w, n) for n in _CHANGING_COLUMNS}}
                    for w in latest.values()
                ],
            )
    return applied, refused


def _apply_status(workload: WorkloadRow, status: str, at: datetime, reason: str | None) -> None:
    """Change the status if the lifecycle allows it, stamping start / completion times."""
    if status not in ALLOWED_TRANSITIONS.get(workload.status, frozenset()):
        raise InvalidTransition(
            "status", f"workload {workload.id} is {workload.status}; cannot become {status}"
        )
    workload.status = status
    workload.status_reason = reason
    if status == "running" and workload.started_at is None:
        workload.started_at = at
    if status in TERMINAL_WORKLOAD_STATUSES:
        workload.completed_at = at


def active_workloads(session: Session) -> list[WorkloadRow]:
    """Every queued or running workload, oldest first: the work to resume after a restart."""
    query = (
        select(WORKLOADS)
        .where(Workload.status.in_(ACTIVE_WORKLOAD_STATUSES))
        .order_by(Workload.created_at, Workload.id)
    )
    with read_transaction(session):
        return _rows(session.connection().execute(query))


def status_counts(session: Session, customer_id: str | None = None) -> dict[str, int]:
    """Number of workloads per status (every status, zeros included), for one customer or
    all; e.g. for a Prometheus gauge."""
    query = select(Workload.status, func.count()).group_by(Workload.status)
    if customer_id is not None:
        query = query.where(Workload.customer_id == customer_id)
    with read_transaction(session):
        rows = session.execute(query).all()
    counts = dict.fromkeys(WORKLOAD_STATUSES, 0)
    counts.update({status: int(count) for status, count in rows})
    return counts


# --------------------------------------------------------------------------- allocations


def allocate(
    session: Session,
    workload_id: str,
    resource_id: str,
    *,
    at: datetime | None = None,
    utilization: Mapping[str, Any] | None = None,
) -> Allocation:
    """Record that a workload holds a resource from ``at`` (default now)."""
    allocation = Allocation(
        workload_id=workload_id,
        resource_id=resource_id,
        allocated_at=_now_or("at", at),
        utilization=_json_object("utilization", utilization),
    )
    with write_transaction(session):
        if session.get(Workload, workload_id) is None:
            raise WorkloadNotFound("workload_id", f"no workload {workload_id!r}")
        if session.get(Resource, resource_id) is None:
            raise UnknownReference("resource_id", f"no resource {resource_id!r}")
        session.add(allocation)
    return allocation


def release_allocations(session: Session, workload_id: str, *, at: datetime | None = None) -> int:
    """Release every open allocation of a workload at ``at``; returns how many."""
    at = _now_or("at", at)
    query = (
        select(Allocation)
        .where(Allocation.workload_id == workload_id, Allocation.released_at.is_(None))
        .with_for_update()
    )
    with write_transaction(session):
        open_allocations = list(session.scalars(query.execution_options(**_REFRESH)))
        for allocation in open_allocations:
            allocation.released_at = at
    return len(open_allocations)


# --------------------------------------------------------------------------- usage


@dataclass(frozen=True, slots=True)
class NewUsageRecord:
    """One priced usage interval to store (see :class:`service.db.models.UsageRecord`).

    ``quantity`` is in ``unit`` (``gpu_s``, ``requests``, ``gb_month``); ``price_usd`` is
    its price under ``pricing`` (``pay_per_use``, ``reserved``, ``spot``).
    """

    customer_id: str
    resource_type: str
    quantity: float
    unit: str
    started_at: datetime
    ended_at: datetime
    price_usd: Decimal | float
    pricing: str
    workload_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """Summed usage of one customer for one (resource_type, unit, pricing) in a period."""

    resource_type: str
    unit: str
    pricing: str
    quantity: float
    price_usd: Decimal
    records: int


def add_usage_records(session: Session, records: Sequence[NewUsageRecord]) -> list[UsageRecord]:
    """Store usage records, all or none; errors name the record (``records[3].unit``)."""
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        field = f"records[{index}]"
        started_at = _aware(f"{field}.started_at", record.started_at)
        ended_at = _aware(f"{field}.ended_at", record.ended_at)
        if started_at is None or ended_at is None or ended_at < started_at:
            raise InvalidField(f"{field}.ended_at", "needs started_at <= ended_at, both given")
        rows.append(
            {
                "id": new_id("usage_record"),
                "customer_id": record.customer_id,
                "workload_id": record.workload_id,
                "resource_type": _text(f"{field}.resource_type", record.resource_type, 32),
                "quantity": _non_negative_number(f"{field}.quantity", record.quantity),
                "unit": _one_of(f"{field}.unit", record.unit, USAGE_UNITS),
                "started_at": started_at,
                "ended_at": ended_at,
                "price_usd": _usd(f"{field}.price_usd", record.price_usd),
                "pricing": _one_of(f"{field}.pricing", record.pricing, PRICING_MODELS),
            }
        )
    with write_transaction(session):
        customers = {row["customer_id"] for row in rows}
        workloads = {row["workload_id"] for row in rows if row["workload_id"] is not None}
        known_customers = set(
            session.scalars(select(Customer.id).where(Customer.id.in_(customers)))
        )
        known_workloads = set(
            session.scalars(select(WORKLOADS.c.id).where(WORKLOADS.c.id.in_(workloads)))
        )
        for index, row in enumerate(rows):
            if row["customer_id"] not in known_customers:
                raise UnknownReference(
                    f"records[{index}].customer_id", f"no customer {row['customer_id']!r}"
                )
            if row["workload_id"] is not None and row["workload_id"] not in known_workloads:
                raise UnknownReference(
                    f"records[{index}].workload_id", f"no workload {row['workload_id']!r}"
                )
        if rows:
            session.connection().execute(insert(USAGE_RECORDS), rows)
    return [UsageRecord(**row) for row in rows]


def usage_for(
    session: Session, customer_id: str, period_start: datetime, period_end: datetime
) -> list[UsageRecord]:
    """A customer's usage records that started in ``[period_start, period_end)``, in
    order of start."""
    start, end = _period(period_start, period_end)
    query = (
        select(UsageRecord)
        .where(
            UsageRecord.customer_id == customer_id,
            UsageRecord.started_at >= start,
            UsageRecord.started_at < end,
        )
        .order_by(UsageRecord.started_at, UsageRecord.id)
    )
    with read_transaction(session):
        return list(session.scalars(query.execution_options(**_REFRESH)))


def usage_totals(
    session: Session, customer_id: str, period_start: datetime, period_end: datetime
) -> list[UsageTotal]:
    """The records of :func:`usage_for` summed per (resource_type, unit, pricing)."""
    start, end = _period(period_start, period_end)
    group = (UsageRecord.resource_type, UsageRecord.unit, UsageRecord.pricing)
    query = (
        select(
            *group,
            func.sum(UsageRecord.quantity),
            func.sum(UsageRecord.price_usd),
            func.count(),
        )
        .where(
            UsageRecord.customer_id == customer_id,
            UsageRecord.started_at >= start,
            UsageRecord.started_at < end,
        )
        .group_by(*group)
        .order_by(*group)
    )
    with read_transaction(session):
        rows = session.execute(query).all()
    return [
        UsageTotal(
            resource_type=resource_type,
            unit=unit,
            pricing=pricing,
            quantity=float(quantity),
            price_usd=Decimal(str(price_usd)).quantize(_USD_QUANTUM),
            records=int(count),
        )
        for resource_type, unit, pricing, quantity, price_usd, count in rows
    ]


def _period(period_start: datetime, period_end: datetime) -> tuple[datetime, datetime]:
    """A validated half-open period ``[start, end)``."""
    start = _aware("period_start", period_start)
    end = _aware("period_end", period_end)
    if start is None or end is None or end <= start:
        raise InvalidField("period_end", "needs period_start < period_end, both given")
    return start, end


# --------------------------------------------------------------------------- inventory


@dataclass(frozen=True, slots=True)
class FacilityInfo:
    """A facility as the scenario / inventory describes it (``power_cap_mw`` [MW])."""

    id: str
    name: str
    settlement_point: str | None = None
    power_cap_mw: float | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """A resource as the inventory describes it; ``capacity`` keys carry units."""

    id: str
    facility_id: str
    type: str
    subtype: str
    status: str = "online"
    capacity: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None


def upsert_facilities(session: Session, facilities: Sequence[FacilityInfo]) -> list[Facility]:
    """Insert new facilities and overwrite existing ones (matched by id), all or none."""
    values = []
    for index, info in enumerate(facilities):
        field = f"facilities[{index}]"
        values.append(
            {
                "id": _text(f"{field}.id", info.id, 64),
                "name": _text(f"{field}.name", info.name, 200),
                "settlement_point": _text(
                    f"{field}.settlement_point", info.settlement_point, 64, optional=True
                ),
                "power_cap_mw": None
                if info.power_cap_mw is None
                else _non_negative_number(f"{field}.power_cap_mw", info.power_cap_mw),
                "metadata_": _json_object(f"{field}.metadata", info.metadata),
            }
        )
    with write_transaction(session):
        return _upsert(session, Facility, values)


def list_resources(session: Session, status: str | None = None) -> list[Resource]:
    """Every resource in id order, or those in ``status`` (InvalidField if unknown)."""
    statement = select(Resource).order_by(Resource.id)
    if status is not None:
        statement = statement.where(Resource.status == _one_of("status", status, RESOURCE_STATUSES))
    return list(session.scalars(statement))


def upsert_resources(session: Session, resources: Sequence[ResourceInfo]) -> list[Resource]:
    """Insert new resources and overwrite existing ones (matched by id), all or none.

    Raises:
        UnknownReference: a resource names a facility that does not exist.
    """
    values = []
    for index, info in enumerate(resources):
        field = f"resources[{index}]"
        values.append(
            {
                "id": _text(f"{field}.id", info.id, 128),
                "facility_id": _text(f"{field}.facility_id", info.facility_id, 64),
                "type": _one_of(f"{field}.type", info.type, RESOURCE_TYPES),
                "subtype": _text(f"{field}.subtype", info.subtype, 64),
                "status": _one_of(f"{field}.status", info.status, RESOURCE_STATUSES),
                "capacity": _json_object(f"{field}.capacity", info.capacity),
                "metadata_": _json_object(f"{field}.metadata", info.metadata),
            }
        )
    with write_transaction(session):
        known = set(session.scalars(select(Facility.id)))
        for index, row in enumerate(values):
            if row["facility_id"] not in known:
                raise UnknownReference(
                    f"resources[{index}].facility_id", f"no facility {row['facility_id']!r}"
                )
        return _upsert(session, Resource, values)


def _upsert(
    session: Session, model: type[_InventoryRow], values: list[dict[str, Any]]
) -> list[_InventoryRow]:
    """Update rows whose id exists, insert the others; the caller holds the transaction."""
    ids = [row["id"] for row in values]
    query = select(model).where(model.id.in_(ids)).with_for_update()
    existing = {obj.id: obj for obj in session.scalars(query.execution_options(**_REFRESH))}
    written: list[_InventoryRow] = []
    for row in values:
        obj = existing.get(row["id"])
        if obj is None:
            obj = model(**row)
            session.add(obj)
            existing[row["id"]] = obj
        else:
            for name, value in row.items():
                setattr(obj, name, value)
        written.append(obj)
    return written


# --------------------------------------------------------------------------- API keys


def add_api_key(
    session: Session,
    *,
    key_prefix: str,
    key_hash: str,
    role: str,
    customer_id: str | None = None,
    totp_secret: str | None = None,
) -> ApiKey:
    """Store a new API key (its hash only); ``customer`` keys need a ``customer_id``."""
    if not isinstance(key_prefix, str) or len(key_prefix) != 8:
        raise InvalidField("key_prefix", "expected the first 8 characters of the key")
    role = _one_of("role", role, API_KEY_ROLES)
    if role == "customer" and customer_id is None:
        raise InvalidField("customer_id", "a customer key needs a customer_id")
    key = ApiKey(
        id=new_id("api_key"),
        key_prefix=key_prefix,
        key_hash=_text("key_hash", key_hash, 255),
        role=role,
        customer_id=customer_id,
        totp_secret=_text("totp_secret", totp_secret, 128, optional=True),
    )
    with write_transaction(session):
        if customer_id is not None:
            _require_customer(session, customer_id)
        session.add(key)
    return key


def active_api_keys(session: Session, key_prefix: str) -> list[ApiKey]:
    """The keys not revoked whose prefix is ``key_prefix`` (check each one's hash)."""
    query = select(ApiKey).where(ApiKey.key_prefix == key_prefix, ApiKey.revoked_at.is_(None))
    with read_transaction(session):
        return list(session.scalars(query.execution_options(**_REFRESH)))


def revoke_api_key(session: Session, key_id: str, *, at: datetime | None = None) -> ApiKey:
    """Revoke a key at ``at`` (default now); revoking twice keeps the first time."""
    at = _now_or("at", at)
    with write_transaction(session):
        key = session.get(ApiKey, key_id, populate_existing=True, with_for_update=True)
        if key is None:
            raise UnknownReference("key_id", f"no API key {key_id!r}")
        if key.revoked_at is None:
            key.revoked_at = at
    return key
