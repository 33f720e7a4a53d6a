"""The service's audit log: every state-changing call appended to a hash chain, and a check
of the whole chain (``python run.py audit verify --db URL``).

Entries are written in the same transaction as the change they record, under a lock, each
sealed over the previous entry's hash (service.security.audit_chain); the migration makes
the table refuse UPDATE and DELETE. :func:`verify` reads the table in id order and reports
the first entry that was edited, removed or reordered.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twin.service.db.engine import WRITE_TRANSACTION_OPTION
from twin.service.db.models import AuditEntry
from twin.service.security.audit_chain import GENESIS, ChainReport, seal_record, verify_chain

_LOCK = threading.Lock()
"""Serializes appends in this process (the chain has one head)."""


def append(
    session: Session, actor: str, action: str, target: str, payload: dict[str, Any]
) -> AuditEntry:
    """Add the next sealed entry to ``session``'s open transaction."""
    with _LOCK:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()
        prev_hash = last.hash if last is not None else GENESIS
        next_id = (last.id if last is not None else 0) + 1
        at = datetime.now(UTC)
        sealed = seal_record(
            prev_hash, id=next_id, at=at, actor=actor, action=action, target=target, payload=payload
        )
        entry = AuditEntry(
            id=next_id,
            at=at,
            actor=actor,
            action=action,
            target=target,
            payload=payload,
            prev_hash=prev_hash,
            hash=sealed.hash,
        )
        session.add(entry)
        session.flush()
        return entry


def record(
    session: Session, actor: str, action: str, target: str, payload: dict[str, Any]
) -> AuditEntry:
    """Append one entry in its own write transaction (committed on return)."""
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={WRITE_TRANSACTION_OPTION: True})
    try:
        entry = append(session, actor, action, target, payload)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return entry


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
