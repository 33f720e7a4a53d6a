"""An append-only SHA-256 hash chain over audit records.

Each record stores ``prev_hash`` (the previous record's ``hash``, `GENESIS` for the first)
and ``hash = chain_hash(prev_hash, record)``, where `chain_hash` is

    sha256( prev_hash + canonical_json({id, at, actor, action, target, payload}) )

as lowercase hex. Canonical JSON has sorted keys, no whitespace, UTF-8, and datetimes as
ISO 8601 UTC (``2025-01-31T12:00:00.000000Z``). Editing any field of a row breaks that row's
hash; deleting or reordering rows breaks the link (``prev_hash``) of the row after the gap.

What a chain alone cannot show: that rows were cut off the *end*. Pass the last known head
hash (kept elsewhere, e.g. in metrics or a signed export) as `expected_head` to catch that.

The ``id`` is part of the hashed content, so it must be known before hashing (assign it in
the application, or take it from the sequence before computing the hash).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

GENESIS = "0" * 64
"""``prev_hash`` of the first record in a chain."""
CHAINED_FIELDS = ("id", "at", "actor", "action", "target", "payload")
"""The record fields covered by the hash; other keys or attributes are ignored."""
HASH_HEX_CHARS = 64

REASON_OK = "ok"
REASON_HASH_MISMATCH = "hash mismatch"
"""A row's stored hash does not match its content: the row was edited."""
REASON_BROKEN_LINK = "broken link"
"""A row's prev_hash is not the previous row's hash: a row was deleted, inserted or moved."""
REASON_MALFORMED = "malformed record"
"""A row lacks a chained field or holds a value that has no canonical JSON form."""
REASON_HEAD_MISMATCH = "head mismatch"
"""The chain verified but does not end at `expected_head`: rows were cut off the end."""


class AuditRecordError(ValueError):
    """An audit record cannot be hashed: a field is missing or has no canonical JSON form."""


class AuditRecordLike(Protocol):
    """What `verify_chain` reads from a row (read-only; an ORM object works, so does a Mapping)."""

    @property
    def id(self) -> Any: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def payload(self) -> Any: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def _utc_iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with microseconds; a naive datetime is taken to be UTC already.

    Naive values are accepted because SQLite returns stored UTC datetimes without tzinfo.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return _utc_iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def canonical_json(content: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8 text, datetimes as ISO 8601 UTC, no NaN/Infinity."""
    try:
        return json.dumps(
            content,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as error:
        raise AuditRecordError(f"audit record has no canonical JSON form: {error}") from error


def _field(record: object, name: str) -> Any:
    if isinstance(record, Mapping):
        if name not in record:
            raise AuditRecordError(f"audit record lacks field {name!r}")
        return record[name]
    if not hasattr(record, name):
        raise AuditRecordError(f"audit record lacks field {name!r}")
    return getattr(record, name)


def _check_hash_text(value: object, name: str) -> str:
    if not (
        isinstance(value, str)
        and len(value) == HASH_HEX_CHARS
        and all(char in "0123456789abcdef" for char in value)
    ):
        raise AuditRecordError(f"{name} must be {HASH_HEX_CHARS} lowercase hex characters")
    return value


def chain_hash(prev_hash: str, record: Mapping[str, Any] | AuditRecordLike) -> str:
    """SHA-256 hex over `prev_hash` + canonical JSON of the record's `CHAINED_FIELDS`.

    Raises `AuditRecordError` if `prev_hash` is not 64 lowercase hex characters, a chained
    field is missing, or a value cannot be written as canonical JSON.
    """
    _check_hash_text(prev_hash, "prev_hash")
    content = {name: _field(record, name) for name in CHAINED_FIELDS}
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SealedAuditRecord:
    """One audit row with its link and hash filled in; satisfies `AuditRecordLike`."""

    id: Any
    at: dt.datetime
    actor: str
    action: str
    target: str
    payload: Any
    prev_hash: str
    hash: str


def seal_record(
    prev_hash: str,
    *,
    id: Any,
    at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    payload: Any,
) -> SealedAuditRecord:
    """Build the next row of a chain whose current head hash is `prev_hash`."""
    content = {
        "id": id,
        "at": at,
        "actor": actor,
        "action": action,
        "target": target,
        "payload": payload,
    }
    return SealedAuditRecord(**content, prev_hash=prev_hash, hash=chain_hash(prev_hash, content))


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of `verify_chain`.

    `count` is the number of records read (all of them, even after a fault);
    `first_bad_index` (0-based) and `first_bad_id` locate the first fault, None if `ok`.
    `reason` is one of the ``REASON_*`` constants; `head_hash` is the last verified hash.
    """

    ok: bool
    count: int
    first_bad_index: int | None
    first_bad_id: Any
    reason: str
    head_hash: str


def verify_chain(
    records: Iterable[Mapping[str, Any] | AuditRecordLike],
    *,
    start_prev_hash: str = GENESIS,
    expected_head: str | None = None,
) -> ChainReport:
    """Walk the records in chain order and report the first one that does not verify.

    For each row: recompute its hash from its own ``prev_hash`` and content (mismatch means
    the row was edited, including its ``prev_hash`` or ``hash``), then check that its
    ``prev_hash`` equals the previous row's hash (otherwise a row was deleted, inserted or
    moved). `start_prev_hash` lets a caller verify a tail from a trusted checkpoint; with
    `expected_head`, a chain that verifies but ends elsewhere is reported as
    `REASON_HEAD_MISMATCH` at index `count` (where the missing rows would be). Never raises
    for bad rows: a row that cannot be hashed is reported as `REASON_MALFORMED`.
    """
    expected_prev = start_prev_hash
    count = 0
    fault: tuple[int, Any, str] | None = None
    for index, record in enumerate(records):
        count += 1
        if fault is not None:
            continue
        try:
            record_id = _field(record, "id")
            stored_prev = _field(record, "prev_hash")
            stored_hash = _field(record, "hash")
            recomputed = chain_hash(_check_hash_text(stored_prev, "prev_hash"), record)
        except AuditRecordError:
            fault = (index, _safe_id(record), REASON_MALFORMED)
            continue
        if recomputed != stored_hash:
            fault = (index, record_id, REASON_HASH_MISMATCH)
        elif stored_prev != expected_prev:
            fault = (index, record_id, REASON_BROKEN_LINK)
        else:
            expected_prev = stored_hash
    if fault is not None:
        index, record_id, reason = fault
        return ChainReport(False, count, index, record_id, reason, expected_prev)
    if expected_head is not None and expected_prev != expected_head:
        return ChainReport(False, count, count, None, REASON_HEAD_MISMATCH, expected_prev)
    return ChainReport(True, count, None, None, REASON_OK, expected_prev)


def _safe_id(record: object) -> Any:
    try:
        return _field(record, "id")
    except AuditRecordError:
        return None
