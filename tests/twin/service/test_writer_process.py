"""Writes committed in a process of their own (service.db.writer_process), on SQLite and
PostgreSQL: results and exceptions cross the pipe, a failing write fails alone, writes
that cannot cross are refused up front, and a dead writer fails its waiting writes."""

from __future__ import annotations

import functools
import os
import signal
import time
from concurrent.futures import Future

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from twin.service import audit
from twin.service.api.app import ServiceConfig, create_app
from twin.service.db import repository as repo
from twin.service.db.engine import session_factory
from twin.service.db.models import AuditEntry, Workload
from twin.service.db.repository import WorkloadRow
from twin.service.db.write_queue import WriteQueueClosedError
from twin.service.db.writer_process import WriterProcess, WriterProcessError
from twin.service.keys import create_key


def submit_write(customer_id: str, session: Session) -> WorkloadRow:
    """A write like the API's submit: a workload and its audit entry."""
    workload, _ = repo.create_workload(
        session, customer_id, workload_type="ai_inference_batch", gpu_count=1
    )
    audit.append(session, "key", "submit_workload", workload.id, {})
    return workload


def slow_write(seconds: float, session: Session) -> None:
    """Holds the writer for ``seconds``."""
    time.sleep(seconds)


def unpicklable_result(session: Session) -> object:
    """A result that cannot cross back to the caller (a lock does not pickle)."""
    import threading

    return threading.Lock()


def _count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def customer(engine: Engine) -> str:
    with session_factory(engine)() as session:
        return repo.create_customer(session, "Acme").id


def test_writes_commit_in_the_child_and_their_results_come_back(
    engine: Engine, customer: str
) -> None:
    """100 writes handed over at once all land, each future holding its own workload as
    the child committed it, and the audit chain the child sealed verifies."""
    writes = WriterProcess(_url(engine))
    try:
        futures = [writes.submit(functools.partial(submit_write, customer)) for _ in range(100)]
        workloads = [future.result(30) for future in futures]
    finally:
        writes.close()
    assert len({w.id for w in workloads}) == 100
    assert all(w.customer_id == customer and w.status == "queued" for w in workloads)
    assert _count(engine, Workload) == 100
    with session_factory(engine)() as session:
        assert audit.verify(session).ok


def test_a_failing_write_fails_alone_with_its_own_exception(engine: Engine, customer: str) -> None:
    """The caller gets the repository's exception, type and field intact; the writes
    queued with it commit."""
    writes = WriterProcess(_url(engine))
    try:
        hold = writes.submit(functools.partial(slow_write, 0.5))
        good = writes.submit(functools.partial(submit_write, customer))
        bad = writes.submit(functools.partial(submit_write, "cus_nobody"))
        also_good = writes.submit(functools.partial(submit_write, customer))
        hold.result(10)
        assert good.result(10).customer_id == customer
        assert also_good.result(10).customer_id == customer
        with pytest.raises(repo.UnknownReference, match="cus_nobody") as raised:
            bad.result(10)
        assert raised.value.field == "customer_id"
    finally:
        writes.close()
    assert _count(engine, Workload) == 2
    assert _count(engine, AuditEntry) == 2


def test_writes_that_cannot_cross_are_refused_and_the_writer_goes_on(
    engine: Engine, customer: str
) -> None:
    """A closure cannot be pickled: TypeError before anything is sent. A result that
    cannot be pickled back: WriterProcessError for that caller only."""
    writes = WriterProcess(_url(engine))
    try:
        with pytest.raises(TypeError, match="must pickle"):
            writes.submit(lambda session: submit_write(customer, session))
        with pytest.raises(WriterProcessError, match="could not be sent"):
            writes.submit(unpicklable_result).result(10)
        assert writes.submit(functools.partial(submit_write, customer)).result(10).id
        assert writes.alive
    finally:
        writes.close()
    assert _count(engine, Workload) == 1


def test_close_commits_what_is_queued_then_refuses(engine: Engine, customer: str) -> None:
    writes = WriterProcess(_url(engine))
    pending = [writes.submit(functools.partial(submit_write, customer)) for _ in range(20)]
    writes.close()
    assert all(future.done() and future.exception() is None for future in pending)
    assert _count(engine, Workload) == 20
    with pytest.raises(WriteQueueClosedError):
        writes.submit(functools.partial(submit_write, customer))


def test_a_killed_writer_fails_the_writes_waiting_on_it(engine: Engine, customer: str) -> None:
    """SIGKILL the child while it holds a write: every waiting caller gets
    WriterProcessError (none waits forever), ``alive`` turns False, new writes are
    refused."""
    writes = WriterProcess(_url(engine))
    try:
        held = writes.submit(functools.partial(slow_write, 30.0))
        waiting: list[Future[WorkloadRow]] = [
            writes.submit(functools.partial(submit_write, customer)) for _ in range(5)
        ]
        time.sleep(0.3)
        assert writes.pid is not None
        os.kill(writes.pid, signal.SIGKILL)
        for future in [held, *waiting]:
            with pytest.raises(WriterProcessError, match="stopped before committing"):
                future.result(10)
        assert not writes.alive
        with pytest.raises(WriteQueueClosedError):
            writes.submit(functools.partial(submit_write, customer))
    finally:
        writes.close()


def test_a_database_it_cannot_open_is_reported_at_start(tmp_path) -> None:
    missing_dir_file = tmp_path / "no" / "such" / "dir" / "hcp.db"
    (tmp_path / "no").write_text("a file where a folder should be")
    with pytest.raises(WriterProcessError, match="did not start"):
        WriterProcess(f"sqlite:///{missing_dir_file}")


def test_the_api_answers_503_once_its_writer_process_has_died(db_url: str) -> None:
    """With the writer process dead, /healthz says so and a submit gets a 503 problem
    (not a 500, not a hang); reads still work."""
    key = create_key(db_url, "customer", "Ines").key
    app = create_app(ServiceConfig(db_url=db_url, writer_process=True))
    with TestClient(app) as client:
        body = {"requirements": {"gpu_count": 1, "estimated_duration_s": 600}}
        first = client.post("/v1/workloads/submit", json=body, headers={"X-API-Key": key})
        assert first.status_code == 201
        writer = app.state.writes
        os.kill(writer.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while writer.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "writer stopped"
        refused = client.post("/v1/workloads/submit", json=body, headers={"X-API-Key": key})
        assert refused.status_code == 503
        assert "writer has stopped" in refused.json()["title"]
        workload_id = first.json()["workload_id"]
        status = client.get(f"/v1/workloads/{workload_id}/status", headers={"X-API-Key": key})
        assert status.status_code == 200 and status.json()["status"] == "queued"
