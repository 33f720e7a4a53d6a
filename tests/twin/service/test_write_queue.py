"""Group commit (service.db.write_queue) and bulk status changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from twin.service import audit
from twin.service.db import repository as repo
from twin.service.db.engine import session_factory
from twin.service.db.models import AuditEntry, Workload
from twin.service.db.write_queue import WriteQueue, WriteQueueClosedError

ROOT = Path(__file__).resolve().parents[3]


def _submit_write(customer_id: str, gpus: int = 1):
    """A write like the API's submit: a workload and its audit entry."""

    def write(session: Session) -> Workload:
        workload, _ = repo.create_workload(
            session, customer_id, workload_type="ai_inference_batch", gpu_count=gpus
        )
        audit.append(session, "key", "submit_workload", workload.id, {})
        return workload

    return write


def _count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_concurrent_writes_share_transactions_and_all_land(engine: Engine) -> None:
    """200 writes handed over at once commit in far fewer transactions than writes, every
    future resolves to its own workload, and the audit chain stays valid."""
    sessions = session_factory(engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
    writes = WriteQueue(sessions)
    gate = threading.Event()
    blocker = writes.submit(lambda _session: gate.wait(10))  # holds the writer meanwhile
    futures = [writes.submit(_submit_write(customer)) for _ in range(200)]
    gate.set()
    blocker.result(10)
    ids = {future.result(30).id for future in futures}
    writes.close()
    assert len(ids) == 200
    assert _count(engine, Workload) == 200
    assert writes.writes == 201 and writes.batches <= 3
    with sessions() as session:
        assert audit.verify(session).ok


def test_a_failing_write_rolls_back_alone(engine: Engine) -> None:
    """In one batch, a write that fails (unknown customer, after the workload row would have
    been written by a valid neighbour) gets its exception; its neighbours commit."""
    sessions = session_factory(engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
    writes = WriteQueue(sessions)
    gate = threading.Event()
    writes.submit(lambda _session: gate.wait(10))

    def half_then_fail(session: Session) -> None:
        _submit_write(customer)(session)  # lands in the savepoint...
        raise RuntimeError("then the write fails")  # ...which is rolled back

    good_before = writes.submit(_submit_write(customer))
    bad = writes.submit(_submit_write("cus_nobody"))
    half = writes.submit(half_then_fail)
    good_after = writes.submit(_submit_write(customer))
    gate.set()
    assert good_before.result(10).customer_id == customer
    assert good_after.result(10).customer_id == customer
    with pytest.raises(repo.UnknownReference, match="cus_nobody"):
        bad.result(10)
    with pytest.raises(RuntimeError, match="then the write fails"):
        half.result(10)
    writes.close()
    assert _count(engine, Workload) == 2
    assert _count(engine, AuditEntry) == 2
    with sessions() as session:
        assert audit.verify(session).ok


def test_background_writes_take_turns_with_requests_one_per_transaction(engine: Engine) -> None:
    """Background writes (the twin's status changes) never share a transaction with
    request writes, and take turns with them: after each batch of request writes, one
    background write. So a request's write waits for at most one background write, and
    background writes are not starved by a steady stream of requests."""
    sessions = session_factory(engine)
    writes = WriteQueue(sessions)
    running, gate = threading.Event(), threading.Event()
    ran: list[tuple[str, int]] = []  # (write, transactions committed before it)

    def hold(_session: Session) -> None:
        running.set()
        gate.wait(10)

    writes.submit(hold)
    assert running.wait(10)
    background: list[Future[None]] = [
        writes.submit(lambda _s, i=i: ran.append((f"b{i}", writes.batches)), background=True)
        for i in range(3)
    ]
    urgent = [
        writes.submit(lambda _s, i=i: ran.append((f"u{i}", writes.batches))) for i in range(3)
    ]
    gate.set()
    for future in background + urgent:
        future.result(10)
    writes.close()
    assert ran == [("b0", 1), ("u0", 2), ("u1", 2), ("u2", 2), ("b1", 3), ("b2", 4)]


def test_a_closed_queue_refuses_writes_and_commits_what_it_held(engine: Engine) -> None:
    """close() commits what was queued; later writes raise WriteQueueClosedError."""
    sessions = session_factory(engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
    writes = WriteQueue(sessions)
    pending = [writes.submit(_submit_write(customer)) for _ in range(5)]
    writes.close()
    assert all(future.done() and future.exception() is None for future in pending)
    with pytest.raises(WriteQueueClosedError):
        writes.submit(_submit_write(customer))


def test_bulk_status_changes_match_one_by_one_and_refuse_what_cannot_apply(
    engine: Engine,
) -> None:
    """apply_status_changes moves workloads along the lifecycle like set_status does, one
    by one, and returns (not raises) the changes it refuses: an unknown workload, an
    unknown facility, a forbidden transition and a negative cost."""
    sessions = session_factory(engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
        ids = [
            repo.create_workload(
                session, customer, workload_type="ai_inference_batch", gpu_count=1
            )[0].id
            for _ in range(4)
        ]
        repo.cancel_workload(session, ids[3])
        changes = [
            repo.StatusChange(ids[0], "running"),
            repo.StatusChange(ids[1], "running"),
            repo.StatusChange(ids[1], "completed", cost_usd=1.25),
            repo.StatusChange(ids[2], "running", facility_id="nowhere"),
            repo.StatusChange(ids[3], "running"),
            repo.StatusChange("wl_missing", "running"),
            repo.StatusChange(ids[2], "running", cost_usd=-1.0),
        ]
        applied, refused = repo.apply_status_changes(session, changes)
    assert [w.id for w in applied] == [ids[0], ids[1], ids[1]]
    refused_reasons = {(c.workload_id, type(e).__name__) for c, e in refused}
    assert refused_reasons == {
        (ids[2], "UnknownReference"),
        (ids[3], "InvalidTransition"),
        ("wl_missing", "WorkloadNotFound"),
        (ids[2], "InvalidField"),
    }
    with sessions() as session:
        stored = {w.id: w for w in session.scalars(select(Workload))}
    assert stored[ids[0]].status == "running" and stored[ids[0]].started_at is not None
    assert stored[ids[1]].status == "completed" and float(stored[ids[1]].cost_usd) == 1.25
    assert stored[ids[1]].started_at is not None and stored[ids[1]].completed_at is not None
    assert stored[ids[2]].status == "queued"
    assert stored[ids[3]].status == "cancelled"
    with sessions() as session:
        repo.set_status(session, ids[2], "running")
        one_by_one = repo.get_workload(session, ids[2])
    assert one_by_one is not None and one_by_one.status == stored[ids[0]].status


def test_the_chain_stays_one_when_another_process_appends_between_commits(
    engine: Engine, db_url: str
) -> None:
    """This process appends, ``run.py keys create`` (another process) appends, this
    process appends again: the later entry follows the other process's, though this
    process last committed the one before (a stale head is caught, not forked)."""
    sessions = session_factory(engine)
    with sessions() as session:
        audit.record(session, "key", "first", "t1", {})
    created = subprocess.run(
        [sys.executable, "run.py", "keys", "create", "--role", "operator", "--db", db_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    with sessions() as session:
        audit.record(session, "key", "after the other process", "t2", {})
        report = audit.verify(session)
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert report.ok, report
    assert actions == ["first", "create_key", "after the other process"]
