"""The status route's SQLite read through the driver (service.db.workload_reader): the same
rows as the repository's session read, scoped by customer, and never stale."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from twin.service.db import repository as repo
from twin.service.db.engine import make_engine, session_factory
from twin.service.db.migrate import upgrade
from twin.service.db.workload_reader import WorkloadReader

T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'hcp.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_reads_the_same_row_as_the_repository(sqlite_engine: Engine) -> None:
    """Every column, typed values included (aware datetimes, Decimal costs, JSON), equals
    what repository.get_workload returns, for a workload that ran and completed."""
    sessions = session_factory(sqlite_engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
        repo.upsert_facilities(session, [repo.FacilityInfo("houston", "Houston")])
        workload, _ = repo.create_workload(
            session,
            customer,
            workload_type="ai_inference_batch",
            gpu_count=2,
            gpu_type="H100",
            requirements={"gpu_count": 2, "nested": {"a": [1, 2.5, None]}},
            sla={"priority": 3, "deadline": None},
            deadline_at=T0 + timedelta(days=1),
            callback_url="https://example.com/hook",
            estimated_start_at=T0 + timedelta(minutes=5),
            estimated_cost_usd=12.345678,
            created_at=T0,
        )
        repo.set_status(
            session,
            workload.id,
            "running",
            at=T0 + timedelta(minutes=6),
            facility_id="houston",
            twin_job_row=7,
        )
        repo.set_status(session, workload.id, "completed", at=T0 + timedelta(hours=1), cost_usd=3.5)
        expected = repo.get_workload(session, workload.id)
    reader = WorkloadReader(sqlite_engine)
    try:
        got = reader.get(workload.id)
    finally:
        reader.close()
    assert expected is not None and got == expected
    assert got.completed_at is not None and got.completed_at.tzinfo is not None
    assert got.cost_usd == expected.cost_usd and type(got.cost_usd) is type(expected.cost_usd)
    assert got.requirements == {"gpu_count": 2, "nested": {"a": [1, 2.5, None]}}


def test_scoped_to_the_customer_and_unknown_ids_are_none(sqlite_engine: Engine) -> None:
    sessions = session_factory(sqlite_engine)
    with sessions() as session:
        acme = repo.create_customer(session, "Acme").id
        other = repo.create_customer(session, "Other").id
        workload, _ = repo.create_workload(
            session, acme, workload_type="ai_inference_batch", gpu_count=1
        )
    reader = WorkloadReader(sqlite_engine)
    try:
        assert reader.get(workload.id, acme) is not None
        assert reader.get(workload.id, other) is None
        assert reader.get("wl_missing") is None
    finally:
        reader.close()


def test_sees_every_commit_made_after_its_first_read(sqlite_engine: Engine) -> None:
    """The reader's connection holds no snapshot between reads: a status change committed
    by another connection shows at the next read."""
    sessions = session_factory(sqlite_engine)
    with sessions() as session:
        customer = repo.create_customer(session, "Acme").id
        workload, _ = repo.create_workload(
            session, customer, workload_type="ai_inference_batch", gpu_count=1
        )
    reader = WorkloadReader(sqlite_engine)
    try:
        first = reader.get(workload.id)
        assert first is not None and first.status == "queued"
        with sessions() as session:
            repo.set_status(session, workload.id, "running")
        second = reader.get(workload.id)
        assert second is not None and second.status == "running"
    finally:
        reader.close()


def test_refuses_a_database_other_than_sqlite(postgres_database_url: str) -> None:
    engine = make_engine(postgres_database_url)
    try:
        with pytest.raises(ValueError, match="SQLite only"):
            WorkloadReader(engine)
    finally:
        engine.dispose()
