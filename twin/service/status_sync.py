"""The twin's status changes, written into the service's database: each chunk of changes
in one write (one read, one executemany, the usage records of the workloads that completed),
then the subscribers told (``callback_url``).

Used by the API process for an in-process twin, and by the writer process when the
service runs the twin apart (:mod:`service.twin_process`, :class:`StatusFeed`), so that a
tick's thousands of changes never compete with requests for the API process's core.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from sqlalchemy.orm import Session

from twin.service import metering
from twin.service.callbacks import CallbackSender
from twin.service.db import repository
from twin.service.db.repository import WorkloadRow
from twin.service.db.write_queue import Writes
from twin.service.workload_exchange import JobUpdate

LOG = logging.getLogger("hcp.service")

CALLBACK_SECRET_ENV = "HCP_CALLBACK_SECRET"
"""Environment variable holding the HMAC key of status callbacks."""

UPDATE_CHUNK = 25
"""Status changes of the twin applied per write (one read and one executemany each)."""


def callback_secret() -> bytes:
    """The HMAC key of callbacks: ``$HCP_CALLBACK_SECRET``, else a random key for this run
    (logged as a warning: receivers cannot know it)."""
    from_env = os.environ.get(CALLBACK_SECRET_ENV, "")
    if from_env:
        return from_env.encode()
    LOG.warning("no %s: callbacks are signed with a random key", CALLBACK_SECRET_ENV)
    return secrets.token_bytes(32)


def notify(callbacks: CallbackSender, workload: WorkloadRow) -> None:
    """Tell the workload's subscriber its new status, if it asked to be told."""
    if workload.callback_url:
        callbacks.notify(
            workload.callback_url,
            {
                "workload_id": workload.id,
                "status": workload.status,
                "facility_id": workload.facility_id,
                "cost_usd": float(workload.cost_usd) if workload.cost_usd is not None else None,
                "at": datetime.now(UTC).isoformat(),
            },
        )


def apply_updates(writes: Writes, updates: list[JobUpdate], callbacks: CallbackSender) -> None:
    """Write the twin's status changes into the database in chunks, as background writes
    (requests' writes go first), then notify subscribers. A completed workload is metered
    and charged at the rate quoted when it was submitted. A change that does not apply
    (e.g. the workload was cancelled meanwhile) is logged and the others land."""
    chunks = [updates[i : i + UPDATE_CHUNK] for i in range(0, len(updates), UPDATE_CHUNK)]
    pending = [writes.submit(status_write(chunk), background=True) for chunk in chunks]
    for future in pending:
        applied, refused = future.result()
        for change, error in refused:
            LOG.warning(
                "status %s for %s not applied: %s", change.status, change.workload_id, error
            )
        for workload in applied:
            notify(callbacks, workload)


def status_write(updates: list[JobUpdate]) -> Callable[[Session], repository.AppliedChanges]:
    """The write that applies a chunk of the twin's status changes and meters the
    workloads that completed (picklable, for the writer process)."""
    return functools.partial(apply_job_updates, updates)


def apply_job_updates(updates: list[JobUpdate], session: Session) -> repository.AppliedChanges:
    """Apply a chunk of the twin's status changes in ``session``'s write transaction and
    add the usage records of the workloads that completed."""
    stored = repository.get_workloads(session, [u.workload_id for u in updates])
    known = [u for u in updates if u.workload_id in stored]
    gpu_costs = {u.workload_id: metering.gpu_cost_usd(stored[u.workload_id], u) for u in known}
    charges = {
        u.workload_id: metering.charged_usd(
            metering.usage_records(stored[u.workload_id], u, gpu_costs[u.workload_id])
        )
        for u in known
        if u.status == "completed"
    }
    changes = [
        repository.StatusChange(
            u.workload_id,
            u.status,
            reason=u.reason or None,
            facility_id=u.facility_id,
            cost_usd=charges.get(u.workload_id, u.revenue_usd),
        )
        for u in known
    ]
    applied, refused = repository.apply_status_changes(session, changes)
    by_id = {u.workload_id: u for u in known}
    records = [
        record
        for workload in applied
        if workload.status == "completed"
        for record in metering.usage_records(workload, by_id[workload.id], gpu_costs[workload.id])
    ]
    if records:
        repository.add_usage_records(session, records)
    return applied, refused


@dataclass(frozen=True, slots=True)
class StatusFeed:
    """Where a twin running in its own process sends its status changes: a pipe to the
    service's writer process (:mod:`service.db.writer_process`), which applies them with
    :func:`feed_handler`, so the API process spends nothing on them.

    Attributes:
        connection: the sending end of the pipe.
    """

    connection: Connection

    def open(self) -> Callable[[list[JobUpdate]], None]:
        """A function that sends one tick's changes down the pipe."""

        def send(updates: list[JobUpdate]) -> None:
            if updates:
                self.connection.send(updates)

        return send


class StatusFeedHandler:
    """In the writer process: what it does with each tick's changes from a
    :class:`StatusFeed` (write them, then tell subscribers, signing with ``secret``).
    Pass ``functools.partial(StatusFeedHandler, secret)`` as the writer's feed handler."""

    def __init__(self, secret: bytes, writes: Writes) -> None:
        self._writes = writes
        self._callbacks = CallbackSender(secret)

    def __call__(self, updates: list[JobUpdate]) -> None:
        apply_updates(self._writes, updates, self._callbacks)

    def close(self) -> None:
        """Send the notices still queued, then stop."""
        self._callbacks.close()
