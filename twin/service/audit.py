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

from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.exc import IntegrityError
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
        prev_id, prev_hash, known = _chain_head(session)
        try:
            next_id, sealed_hash = _insert_sealed(
                session, prev_id, prev_hash, actor, action, target, payload
            )
        except IntegrityError:
            if known:
                raise
            # Another process appended since this one last committed (SQLite ends only
            # the failed statement; the transaction goes on): read the head and reseal.
            prev_id, prev_hash = _read_head(session)
            next_id, sealed_hash = _insert_sealed(
                session, prev_id, prev_hash, actor, action, target, payload
            )
        if not session.in_nested_transaction():
            session.info[_HEAD] = (session.get_transaction(), next_id, sealed_hash)


def _insert_sealed(
    session: Session,
    prev_id: int,
    prev_hash: str,
    actor: str,
    action: str,
    target: str,
    payload: dict[str, Any],
) -> tuple[int, str]:
    """Insert the entry after (prev_id, prev_hash); returns its (id, hash)."""
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
    return next_id, sealed.hash


_HEAD = "hcp_audit_head"
"""``session.info`` key of the chain head this session's open transaction appended:
(transaction, id, hash). A write batch appends many entries in one transaction, and holds
the write lock (SQLite) or the advisory lock (PostgreSQL) throughout, so the head need
not be read back for each one. Inside a savepoint, which may yet be rolled back, the head
is always read."""

_COMMITTED_HEADS: dict[str, tuple[int, str]] = {}
"""SQLite database URL -> the chain head (id, hash) this process last committed there.
The service's one writer appends nearly every entry, so its next transaction starts from
this guess instead of reading the head back. A guess gone stale (another process, e.g.
``run.py keys create``, appended meanwhile) cannot fork the chain: ids are consecutive
and the primary key, so the insert fails and the head is read."""


@event.listens_for(Session, "after_commit")
def _remember_committed_head(session: Session) -> None:
    """Keep the head a committed SQLite transaction appended (see _COMMITTED_HEADS)."""
    appended = session.info.pop(_HEAD, None)
    if appended is not None:
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            _COMMITTED_HEADS[str(bind.engine.url)] = (appended[1], appended[2])


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_head(session: Session) -> None:
    session.info.pop(_HEAD, None)


def _chain_head(session: Session) -> tuple[int, str, bool]:
    """(id, hash) of the chain's last entry ((0, GENESIS) for an empty chain), and whether
    that is known (read, or appended in this transaction) rather than guessed from this
    process's last commit. Takes the cross-process append lock on PostgreSQL the first
    time in a transaction."""
    remembered = session.info.get(_HEAD)
    if (
        remembered is not None
        and remembered[0] is session.get_transaction()
        and not session.in_nested_transaction()
    ):
        return remembered[1], remembered[2], True
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.connection().execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY}
        )
    elif not session.in_nested_transaction():
        guess = _COMMITTED_HEADS.get(str(bind.engine.url))
        if guess is not None:
            return guess[0], guess[1], False
    return (*_read_head(session), True)


def _read_head(session: Session) -> tuple[int, str]:
    """(id, hash) of the chain's last entry as stored, (0, GENESIS) for an empty chain."""
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
