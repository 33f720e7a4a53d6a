"""Service database: migrations, schema, repository behaviour and durability.

Every test that takes ``db_url``, ``engine`` or ``session`` runs twice: on a SQLite file
and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, func, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from twin.service.db import repository as repo
from twin.service.db.engine import (
    DATABASE_URL_ENV,
    SQLITE_BUSY_TIMEOUT_MS,
    make_engine,
    session_factory,
)
from twin.service.db.migrate import current_revision, head_revision, upgrade
from twin.service.db.models import AuditEntry, Base, Workload

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


def _customer(session: Session, name: str = "Acme AI") -> str:
    """Create a customer and return its id."""
    return repo.create_customer(session, name).id


def _gpu_workload(session: Session, customer_id: str, **fields: Any) -> Workload:
    """Create a one-GPU batch inference workload (fields override the defaults)."""
    arguments: dict[str, Any] = {"workload_type": "ai_inference_batch", "gpu_count": 1}
    arguments.update(fields)
    workload, created = repo.create_workload(session, customer_id, **arguments)
    assert created
    return workload


def _status(session: Session, workload_id: str) -> str | None:
    """The stored status of a workload (None if missing)."""
    workload = repo.get_workload(session, workload_id)
    return None if workload is None else workload.status


def _workload_count(session: Session) -> int:
    """Rows in the workloads table."""
    count = session.scalar(select(func.count()).select_from(Workload)) or 0
    session.commit()
    return count


# --------------------------------------------------------------------------- schema


def test_upgrade_reaches_head_and_is_repeatable(db_url: str) -> None:
    """An empty database has no revision; upgrade creates every model table at head, and
    a second upgrade changes nothing."""
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_models_match_migrated_schema(engine: Engine) -> None:
    """Alembic's autogenerate comparison of the models with the migrated schema finds no
    difference (types, nullability, indexes, unique and foreign keys), and it does find
    one when the models gain a column, so the check can fail."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        changed = MetaData(naming_convention=Base.metadata.naming_convention)
        for table in Base.metadata.tables.values():
            table.to_metadata(changed)
        changed.tables["workloads"].append_column(Column("extra_column", Integer))
        diff = compare_metadata(context, changed)
    assert [(op[0], op[3].name) for op in diff] == [("add_column", "extra_column")]


def test_sqlite_connection_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A default engine is a SQLite file under results/service/ (folder created) with WAL,
    synchronous=FULL, foreign keys and a busy timeout on every connection."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    engine = make_engine()
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert (tmp_path / "results" / "service" / "hcp.db").is_file()
    full_sync = 2  # SQLite's code for synchronous=FULL
    assert (pragma["journal_mode"], pragma["synchronous"], pragma["foreign_keys"]) == (
        "wal",
        full_sync,
        1,
    )
    assert pragma["busy_timeout"] == SQLITE_BUSY_TIMEOUT_MS


def test_audit_log_refuses_update_and_delete(engine: Engine, session: Session) -> None:
    """Audit entries can be appended, but the database itself refuses to change or delete
    them."""
    session.add_all(
        [
            AuditEntry(actor="system", action="start", prev_hash=None, hash="h1"),
            AuditEntry(actor="key_1", action="cancel", target="wl_x", prev_hash="h1", hash="h2"),
        ]
    )
    session.commit()
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    actors = session.scalars(select(AuditEntry.actor).order_by(AuditEntry.id)).all()
    assert actors == ["system", "key_1"]


# --------------------------------------------------------------------------- workloads


def test_create_and_get_round_trip(engine: Engine, session: Session) -> None:
    """Every field of a created workload reads back equal from a fresh session, with
    timestamps as aware UTC and money as Decimal."""
    customer_id = _customer(session)
    repo.upsert_facilities(session, [repo.FacilityInfo(id="site_a", name="Site A")])
    deadline = datetime(2025, 7, 2, 8, 30, tzinfo=timezone(timedelta(hours=-5)))
    workload = _gpu_workload(
        session,
        customer_id,
        workload_type="model_training",
        gpu_count=8,
        gpu_type="H100",
        requirements={"memory_gb": 80, "tags": ["llm"]},
        deadline_at=deadline,
        callback_url="https://example.com/hook",
        sla={"max_latency_s": 5.0},
        facility_id="site_a",
        estimated_cost_usd=123.4567891,
    )
    with session_factory(engine)() as fresh:
        loaded = repo.get_workload(fresh, workload.id)
    assert loaded is not None
    assert loaded.id.startswith("wl_")
    assert (loaded.status, loaded.priority, loaded.gpu_count) == ("queued", 2, 8)
    assert loaded.requirements == {"memory_gb": 80, "tags": ["llm"]}
    assert loaded.sla == {"max_latency_s": 5.0}
    assert loaded.deadline_at == deadline
    assert loaded.deadline_at.utcoffset() == timedelta(0)
    assert loaded.created_at.tzinfo is not None
    assert loaded.estimated_cost_usd == Decimal("123.456789")
    assert loaded.hashrate_ths is None
    assert loaded.started_at is None


def test_customer_scoping(session: Session) -> None:
    """A customer can neither read, list nor cancel another customer's workload."""
    alice, bob = _customer(session, "Alice"), _customer(session, "Bob")
    workload = _gpu_workload(session, alice)
    assert repo.get_workload(session, workload.id, customer_id=alice) is not None
    assert repo.get_workload(session, workload.id, customer_id=bob) is None
    assert repo.list_workloads(session, bob) == ([], None)
    with pytest.raises(repo.WorkloadNotFound) as raised:
        repo.cancel_workload(session, workload.id, customer_id=bob)
    assert raised.value.field == "workload_id"
    assert _status(session, workload.id) == "queued"


def test_list_pagination_is_ordered_and_complete(session: Session) -> None:
    """Paging through a customer's workloads (with tied creation times, another
    customer's rows interleaved and a workload added mid-listing) yields each workload
    that existed at the start exactly once, newest first by (created_at, id)."""
    alice, bob = _customer(session, "Alice"), _customer(session, "Bob")
    expected = []
    for index in range(23):
        created_at = T0 + timedelta(seconds=index // 3)  # groups of three share a time
        expected.append(_gpu_workload(session, alice, created_at=created_at))
        if index % 6 == 0:
            _gpu_workload(session, bob, created_at=created_at)
    expected.sort(key=lambda w: (w.created_at, w.id), reverse=True)

    seen: list[str] = []
    page_sizes: list[int] = []
    cursor = None
    while True:
        page, cursor = repo.list_workloads(session, alice, limit=5, cursor=cursor)
        seen += [w.id for w in page]
        page_sizes.append(len(page))
        if len(seen) == 5:
            _gpu_workload(session, alice, created_at=T0 + timedelta(days=1))
        if cursor is None:
            break
    assert seen == [w.id for w in expected]
    assert page_sizes == [5, 5, 5, 5, 3]

    all_customers, _ = repo.list_workloads(session, None, limit=500)
    assert len(all_customers) == 23 + 1 + 4


def test_list_filters_by_status(session: Session) -> None:
    """The status filter returns exactly the workloads in that status, and the counts per
    status agree."""
    customer_id = _customer(session)
    workloads = [_gpu_workload(session, customer_id) for _ in range(4)]
    for workload in workloads[:2]:
        repo.set_status(session, workload.id, "running")
    running, cursor = repo.list_workloads(session, customer_id, status="running")
    assert {w.id for w in running} == {w.id for w in workloads[:2]}
    assert cursor is None
    counts = repo.status_counts(session, customer_id)
    assert (counts["running"], counts["queued"], sum(counts.values())) == (2, 2, 4)


def test_bad_list_arguments_name_the_field(session: Session) -> None:
    """A forged cursor, a page size out of range and an unknown status are refused with
    the argument named."""
    customer_id = _customer(session)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": repo.MAX_PAGE_SIZE + 1}, "limit"),
        ({"status": "sleeping"}, "status"),
    ]
    for arguments, field in cases:
        with pytest.raises(repo.InvalidField) as raised:
            repo.list_workloads(session, customer_id, **arguments)
        assert raised.value.field == field


def test_idempotent_retry_returns_the_first_workload(session: Session) -> None:
    """The same key and body twice creates one workload and returns it both times; the
    same key from another customer is a different key."""
    alice, bob = _customer(session, "Alice"), _customer(session, "Bob")
    first, created_first = repo.create_workload(
        session,
        alice,
        workload_type="bitcoin_mining",
        hashrate_ths=500.0,
        idempotency_key="retry-1",
        request_hash="h1",
    )
    again, created_again = repo.create_workload(
        session,
        alice,
        workload_type="bitcoin_mining",
        hashrate_ths=500.0,
        idempotency_key="retry-1",
        request_hash="h1",
    )
    assert (created_first, created_again) == (True, False)
    assert again.id == first.id
    other, created_other = repo.create_workload(
        session,
        bob,
        workload_type="bitcoin_mining",
        hashrate_ths=500.0,
        idempotency_key="retry-1",
        request_hash="h1",
    )
    assert created_other and other.id != first.id
    assert _workload_count(session) == 2


def test_idempotency_key_with_another_body_conflicts(session: Session) -> None:
    """Reusing a key with a different body raises IdempotencyConflict naming the first
    workload, and stores nothing."""
    customer_id = _customer(session)
    first, _ = repo.create_workload(
        session,
        customer_id,
        workload_type="ai_inference_realtime",
        gpu_count=1,
        idempotency_key="k",
        request_hash="body-a",
    )
    with pytest.raises(repo.IdempotencyConflict) as raised:
        repo.create_workload(
            session,
            customer_id,
            workload_type="ai_inference_realtime",
            gpu_count=2,
            idempotency_key="k",
            request_hash="body-b",
        )
    assert (raised.value.field, raised.value.workload_id) == ("idempotency_key", first.id)
    assert _workload_count(session) == 1


def test_concurrent_retries_create_one_workload_per_key(engine: Engine) -> None:
    """Threads released together to submit the same key (each with its own session) get
    the same workload, and exactly one row per key exists: no duplicate, no error."""
    make_session = session_factory(engine)
    with make_session() as session:
        customer_id = _customer(session)
    keys = [f"key-{index}" for index in range(6)]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    thread_count = 4
    start_together = threading.Barrier(thread_count, timeout=30)

    def submit(thread_index: int) -> None:
        ids = []
        try:
            with make_session() as session:
                for key in keys:
                    start_together.wait()
                    workload, _ = repo.create_workload(
                        session,
                        customer_id,
                        workload_type="ai_inference_batch",
                        gpu_count=1,
                        idempotency_key=key,
                        request_hash="same",
                    )
                    ids.append(workload.id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
            start_together.abort()
        results[thread_index] = ids

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(ids == results[0] for ids in results.values())
    with make_session() as session:
        assert _workload_count(session) == len(keys)


def test_cancel_rules(session: Session) -> None:
    """Queued and running workloads can be cancelled (twice is harmless); a completed one
    cannot."""
    customer_id = _customer(session)
    queued, running, done = (_gpu_workload(session, customer_id) for _ in range(3))
    repo.set_status(session, running.id, "running")
    repo.set_status(session, done.id, "running")
    repo.set_status(session, done.id, "completed")

    cancelled = repo.cancel_workload(session, queued.id, customer_id=customer_id, at=T0)
    assert (cancelled.status, cancelled.completed_at) == ("cancelled", T0)
    again = repo.cancel_workload(session, queued.id, at=T0 + timedelta(hours=1))
    assert (again.status, again.completed_at) == ("cancelled", T0)
    assert repo.cancel_workload(session, running.id).status == "cancelled"
    with pytest.raises(repo.InvalidTransition) as raised:
        repo.cancel_workload(session, done.id)
    assert raised.value.field == "status"
    assert _status(session, done.id) == "completed"


def test_status_lifecycle_stamps_times(session: Session) -> None:
    """Start stamps started_at once (a requeue keeps it), completion stamps completed_at
    and cost, the loop's job row can be attached without a status change, and a
    completed workload cannot run again."""
    workload = _gpu_workload(session, _customer(session))
    repo.set_status(session, workload.id, "queued", twin_job_row=42)
    started = repo.set_status(session, workload.id, "running", at=T0)
    assert (started.started_at, started.twin_job_row) == (T0, 42)
    requeued = repo.set_status(session, workload.id, "queued", at=T0 + timedelta(minutes=5))
    assert requeued.started_at == T0
    repo.set_status(session, workload.id, "running", at=T0 + timedelta(minutes=6))
    done = repo.set_status(
        session, workload.id, "completed", at=T0 + timedelta(hours=1), cost_usd=2.5
    )
    assert (done.started_at, done.completed_at) == (T0, T0 + timedelta(hours=1))
    assert done.cost_usd == Decimal("2.5")
    with pytest.raises(repo.InvalidTransition):
        repo.set_status(session, workload.id, "running")
    with pytest.raises(repo.WorkloadNotFound):
        repo.set_status(session, "wl_missing", "running")


def test_active_workloads_are_queued_and_running_oldest_first(session: Session) -> None:
    """After a restart the loop resumes exactly the queued and running workloads, in
    submission order."""
    customer_id = _customer(session)
    workloads = [
        _gpu_workload(session, customer_id, created_at=T0 + timedelta(seconds=s))
        for s in (30, 10, 20, 40)
    ]
    repo.set_status(session, workloads[0].id, "running")
    repo.cancel_workload(session, workloads[3].id)
    active = repo.active_workloads(session)
    assert [w.id for w in active] == [workloads[1].id, workloads[2].id, workloads[0].id]


def test_bad_workload_input_names_the_field(session: Session) -> None:
    """Each kind of bad submission raises a ValueError subclass naming the field, and
    nothing is stored."""
    customer_id = _customer(session)
    good: dict[str, Any] = {"workload_type": "ai_inference_batch", "gpu_count": 1}
    cases: list[tuple[str, dict[str, Any], str]] = [
        (customer_id, {"workload_type": "quantum"}, "workload_type"),
        (customer_id, {"gpu_count": 0}, "gpu_count"),
        (customer_id, {"gpu_count": None}, "gpu_count"),
        (customer_id, {"workload_type": "bitcoin_mining", "gpu_count": None}, "hashrate_ths"),
        (customer_id, {"priority": 0}, "priority"),
        (customer_id, {"deadline_at": datetime(2025, 7, 1)}, "deadline_at"),
        (customer_id, {"requirements": {"s": {1, 2}}}, "requirements"),
        (customer_id, {"estimated_cost_usd": -1}, "estimated_cost_usd"),
        (customer_id, {"idempotency_key": "k", "request_hash": None}, "request_hash"),
        (customer_id, {"facility_id": "nowhere"}, "facility_id"),
        ("cus_nobody", {}, "customer_id"),
    ]
    for owner, overrides, field in cases:
        with pytest.raises(ValueError) as raised:
            repo.create_workload(session, owner, **(good | overrides))
        assert isinstance(raised.value, repo.RepositoryError)
        assert raised.value.field == field
    assert _workload_count(session) == 0


# --------------------------------------------------------------------------- other tables


def test_usage_records_and_totals(session: Session) -> None:
    """Usage in a period is the records that started in it; totals sum them per
    (resource type, unit, pricing); a bad record stores nothing and is named."""
    alice, bob = _customer(session, "Alice"), _customer(session, "Bob")
    workload = _gpu_workload(session, alice)

    def record(customer: str, start_h: float, quantity: float, price: str, **kw: Any) -> Any:
        fields: dict[str, Any] = {
            "customer_id": customer,
            "resource_type": "gpu",
            "quantity": quantity,
            "unit": "gpu_s",
            "started_at": T0 + timedelta(hours=start_h),
            "ended_at": T0 + timedelta(hours=start_h + 1),
            "price_usd": Decimal(price),
            "pricing": "pay_per_use",
            "workload_id": workload.id if customer == alice else None,
        }
        return repo.NewUsageRecord(**(fields | kw))

    inside = [record(alice, 0, 3600.0, "2.5"), record(alice, 2, 7200.0, "5.0")]
    spot = record(alice, 1, 1800.0, "0.75", pricing="spot")
    outside = [record(alice, 30, 3600.0, "2.5"), record(bob, 0, 3600.0, "2.5")]
    repo.add_usage_records(session, [*inside, spot, *outside])

    records = repo.usage_for(session, alice, T0, T0 + timedelta(days=1))
    assert [r.started_at for r in records] == sorted(r.started_at for r in [*inside, spot])
    totals = {t.pricing: t for t in repo.usage_totals(session, alice, T0, T0 + timedelta(days=1))}
    assert totals["pay_per_use"].quantity == sum(r.quantity for r in inside)
    assert totals["pay_per_use"].price_usd == sum(Decimal(r.price_usd) for r in inside)
    assert (totals["spot"].records, totals["pay_per_use"].records) == (1, 2)

    with pytest.raises(repo.InvalidField) as raised:
        repo.add_usage_records(
            session, [record(bob, 5, 1.0, "1"), record(bob, 6, 1, "1", unit="x")]
        )
    assert raised.value.field == "records[1].unit"
    assert repo.usage_for(session, bob, T0, T0 + timedelta(days=1))[0].started_at == T0


def test_upsert_facilities_and_resources(session: Session) -> None:
    """Upserts insert new rows and overwrite existing ones by id; a resource at an
    unknown facility is refused with its position named."""
    repo.upsert_facilities(
        session,
        [
            repo.FacilityInfo(id="site_a", name="Site A", power_cap_mw=100.0),
            repo.FacilityInfo(id="site_b", name="Site B", settlement_point="LZ_WEST"),
        ],
    )
    pools = [
        repo.ResourceInfo(id="site_a/h100", facility_id="site_a", type="gpu", subtype="H100"),
        repo.ResourceInfo(id="site_a/s21", facility_id="site_a", type="asic", subtype="S21"),
    ]
    repo.upsert_resources(session, pools)
    updated = repo.upsert_resources(
        session,
        [
            repo.ResourceInfo(
                id="site_a/h100",
                facility_id="site_a",
                type="gpu",
                subtype="H100",
                status="maintenance",
                capacity={"gpu_count": 512},
            )
        ],
    )
    assert (updated[0].status, updated[0].capacity) == ("maintenance", {"gpu_count": 512})
    assert session.scalar(select(func.count()).select_from(repo.Resource)) == 2
    session.commit()
    with pytest.raises(repo.UnknownReference) as raised:
        repo.upsert_resources(
            session, [repo.ResourceInfo(id="x", facility_id="site_z", type="gpu", subtype="A100")]
        )
    assert raised.value.field == "resources[0].facility_id"


def test_api_keys_and_allocations(session: Session) -> None:
    """Active keys are found by prefix until revoked; a customer key needs a customer;
    allocations open and close."""
    customer_id = _customer(session)
    key = repo.add_api_key(
        session, key_prefix="hcp_abcd", key_hash="hash", role="customer", customer_id=customer_id
    )
    assert [k.id for k in repo.active_api_keys(session, "hcp_abcd")] == [key.id]
    repo.revoke_api_key(session, key.id)
    assert repo.active_api_keys(session, "hcp_abcd") == []
    with pytest.raises(repo.InvalidField) as raised:
        repo.add_api_key(session, key_prefix="hcp_efgh", key_hash="h", role="customer")
    assert raised.value.field == "customer_id"

    repo.upsert_facilities(session, [repo.FacilityInfo(id="site_a", name="Site A")])
    repo.upsert_resources(
        session, [repo.ResourceInfo(id="gpu-0", facility_id="site_a", type="gpu", subtype="H100")]
    )
    workload = _gpu_workload(session, customer_id)
    repo.allocate(session, workload.id, "gpu-0", utilization={"gpu_util": 0.9})
    assert repo.release_allocations(session, workload.id) == 1
    assert repo.release_allocations(session, workload.id) == 0


# --------------------------------------------------------------------------- durability


def test_committed_workload_survives_engine_restart(db_url: str) -> None:
    """A workload committed through one engine is read back, unchanged, through a new
    engine after the first is disposed."""
    upgrade(db_url)
    first = make_engine(db_url)
    with session_factory(first)() as session:
        customer_id = _customer(session)
        workload = _gpu_workload(session, customer_id, gpu_count=4, requirements={"a": 1})
    first.dispose()
    second = make_engine(db_url)
    try:
        with session_factory(second)() as session:
            loaded = repo.get_workload(session, workload.id, customer_id=customer_id)
    finally:
        second.dispose()
    assert loaded is not None
    assert (loaded.gpu_count, loaded.requirements, loaded.created_at) == (
        4,
        {"a": 1},
        workload.created_at,
    )


_WRITER = """
import sys
from twin.service.db import repository as repo
from twin.service.db.engine import make_engine, session_factory

url, customer_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with session_factory(make_engine(url))() as session:
    for _ in range(count):
        workload, _ = repo.create_workload(
            session, customer_id, workload_type="ai_inference_batch", gpu_count=1
        )
        print(workload.id, flush=True)
"""


@pytest.mark.timeout(120)
def test_sigkill_loses_no_acknowledged_workload(db_url: str) -> None:
    """A writer process that prints each workload id after its commit is SIGKILLed
    mid-stream; every id it printed is in the database afterwards, and the database
    accepts new work."""
    upgrade(db_url)
    engine = make_engine(db_url)
    make_session = session_factory(engine)
    with make_session() as session:
        customer_id = _customer(session)
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, db_url, customer_id, "1000000"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    printed: list[str] = []
    while len(printed) < 40:
        line = writer.stdout.readline()
        if not line:
            break
        printed.append(line.strip())
    writer.send_signal(signal.SIGKILL)
    remaining, errors = writer.communicate()
    printed += remaining.split()
    assert writer.returncode == -signal.SIGKILL, errors
    assert len(printed) >= 40, errors
    try:
        with make_session() as session:
            stored = set(session.scalars(select(Workload.id).where(Workload.id.in_(printed))))
            assert stored == set(printed)
            assert _gpu_workload(session, customer_id).status == "queued"
    finally:
        engine.dispose()
