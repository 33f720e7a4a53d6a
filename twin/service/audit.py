"""The service's audit log: every state-changing call appended to a hash chain, and a check
of the whole chain (``python run.py audit verify --db URL``).

Entries are written in the same transaction as the change they record, under a lock (a
thread lock in this process and, on PostgreSQL, a transaction-scoped advisory lock, so
several service processes append to one chain), each sealed over the previous entry's
hash (service.security.audit_chain); the migration makes the table refuse UPDATE and
DELETE. :func:`verify` reads the table in id order and reports the first entry
that was edited, removed or reordered.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from twin.service.db.models import AuditEntry
from twin.service.db.repository import write_transaction
from twin.service.security.audit_chain import GENESIS, ChainReport, seal_record, verify_chain

_LOCK = threading.Lock()
"""Serializes appends in this process (the chain has one head)."""

AUDIT = cast(Table, AuditEntry.__table__)
"""The audit table (appends are Core statements: one per state-changing request)."""

POSTGRES_LOCK_KEY = 0x4843505F41554454
"""PostgreSQL advisory lock id that serializes appends across processes ("HCP_AUDT")."""


def append(session: Session, actor: str, action: str, target: str, payload: dict[str, Any]) -> None:
    """Add the next sealed entry to ``session``'s open transaction."""
    with _LOCK:
        prev_id, prev_hash = _chain_head(session)
        next_id = prev_id + 1
        at = datetime.now(UTC)
        sealed = seal_record(
            prev_hash, id=next_id, at=at, actor=actor, action=action, target=target, payload=payload
        )
        row = {
            "id": next_id,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "payload": payload,
            "prev_hash": prev_hash,
            "hash": sealed.hash,
        }
        session.connection().execute(insert(AUDIT), [row])
        if not session.in_nested_transaction():
            session.info[_HEAD] = (session.get_transaction(), next_id, sealed.hash)


_HEAD = "hcp_audit_head"
"""``session.info`` key of the chain head this session's open transaction appended:
(transaction, id, hash). A write batch appends many entries in one transaction, and holds
the write lock (SQLite) or the advisory lock (PostgreSQL) throughout, so the head need
not be read back for each one. Inside a savepoint, which may yet be rolled back, the head
is always read."""


def _chain_head(session: Session) -> tuple[int, str]:
    """(id, hash) of the chain's last entry, (0, GENESIS) for an empty chain; takes the
    cross-process append lock on PostgreSQL the first time in a transaction."""
    remembered = session.info.get(_HEAD)
    if (
        remembered is not None
        and remembered[0] is session.get_transaction()
        and not session.in_nested_transaction()
    ):
        return remembered[1], remembered[2]
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY}
        )
    last = (
        session.connection()
        .execute(select(AUDIT.c.id, AUDIT.c.hash).order_by(AUDIT.c.id.desc()).limit(1))
        .first()
    )
    return (last.id, last.hash) if last is not None else (0, GENESIS)


def record(session: Session, actor: str, action: str, target: str, payload: dict[str, Any]) -> None:
    """Append one entry in a write transaction (committed on return; in a write batch, in
    the batch's transaction)."""
    with write_transaction(session):
        append(session, actor, action, target, payload)


def verify(session: Session) -> ChainReport:
    """Check the whole chain in id order."""
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    return verify_chain(
        [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "payload": e.payload,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ]
    )
