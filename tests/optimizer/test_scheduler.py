"""Tests of the job scheduler: admission, placement, preemption, accounting, invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.job_table import (
    COMPLETED,
    GANG_TOO_LARGE,
    GPU_TYPE_ABSENT,
    HASHRATE_TOO_LARGE,
    QUEUED,
    REJECT_REASONS,
    REJECTED,
    RUNNING,
    JobBatch,
    JobTable,
)
from models.workload_types import BATCH, MINING, REALTIME, TRAINING
from models.workloads import WorkloadGenerator
from optimizer.pools import Pool, PoolKind, pools_from_scenario, scenario_gpu_type_ids
from optimizer.scheduler import Scheduler, SchedulerError
from twin.scenario import SizeChoice, WorkloadDemand, Workloads, validate_scenario

STEP_S = 300.0


def job(**fields: float) -> dict[str, float]:
    """One job's columns: a 1-GPU realtime job of 100 s at t=0 unless overridden."""
    columns = {
        "type": REALTIME,
        "customer": 0,
        "submit_s": 0.0,
        "work_s": 100.0,
        "gpus": 1,
        "gpu_type": -1,
        "hashrate_ths": 0.0,
        "deadline_s": np.inf,
        "checkpoint_interval_s": np.inf,
        "price_usd_per_gpu_hour": 2.0,
    }
    columns.update(fields)
    return columns


def table_of(*jobs: dict[str, float]) -> JobTable:
    """A job table holding ``jobs`` sorted by submission time."""
    ordered = sorted(jobs, key=lambda j: j["submit_s"])
    table = JobTable(initial_capacity=2)
    table.append(JobBatch.from_columns(**{k: [j[k] for j in ordered] for k in ordered[0]}))
    return table


def gpu_pool(gpus: int, gpu_type: int = 0, facility: int = 0) -> Pool:
    return Pool(facility, f"site{facility}", PoolKind.GPU, gpu_type, float(gpus), 8)


def asic_pool(ths: float, facility: int = 0) -> Pool:
    return Pool(facility, f"site{facility}", PoolKind.ASIC, -1, ths)


def run(scheduler: Scheduler, intervals: int, limits=None) -> list:
    """Run ``intervals`` consecutive intervals of STEP_S from where the scheduler stands."""
    t0 = scheduler.now_s or 0.0
    return [
        scheduler.run_interval(t0 + i * STEP_S, t0 + (i + 1) * STEP_S, limits)
        for i in range(intervals)
    ]


def test_realtime_starts_at_its_arrival_instant_when_room_exists():
    """Realtime jobs that fit start at their submission time: wait 0, SLA met."""
    jobs = table_of(*(job(submit_s=7.5 * i, work_s=30.0) for i in range(40)))
    scheduler = Scheduler([gpu_pool(8)], jobs, check_invariants=True)
    run(scheduler, 2)
    assert np.all(jobs.start_s - jobs.submit_s == 0.0)
    assert np.all(jobs.status == COMPLETED)
    assert np.all(jobs.sla_met(now_s=600.0) == 1.0)


def test_rejection_reasons_name_why_a_job_can_never_run():
    """Absent GPU type, oversized gang and oversized hashrate are rejected with their code."""
    jobs = table_of(
        job(gpu_type=3),
        job(type=TRAINING, gpus=16, deadline_s=1e6, submit_s=1.0),
        job(type=MINING, gpus=0, hashrate_ths=5000.0, price_usd_per_gpu_hour=0.0, submit_s=2.0),
        job(type=TRAINING, gpus=8, work_s=1000.0, deadline_s=1e6, submit_s=3.0),
    )
    scheduler = Scheduler([gpu_pool(8), asic_pool(1000.0)], jobs, check_invariants=True)
    result = run(scheduler, 1)[0]
    assert list(jobs.status) == [REJECTED, REJECTED, REJECTED, RUNNING]
    assert list(jobs.reject_reason[:3]) == [GPU_TYPE_ABSENT, GANG_TOO_LARGE, HASHRATE_TOO_LARGE]
    assert all(REJECT_REASONS[code] for code in jobs.reject_reason[:3])
    assert result.rejected_by_type.tolist() == [1, 0, 1, 1]
    assert result.submitted_by_type.tolist() == [1, 0, 2, 1]


def test_gang_waits_for_room_in_one_pool_and_is_never_split():
    """A 6-GPU gang waits while two pools have 4 and 3 free (7 in all), then runs whole in
    one pool."""
    jobs = table_of(
        job(gpus=4, work_s=400.0, gpu_type=0),
        job(gpus=5, work_s=1000.0, gpu_type=0, submit_s=0.5),
        job(type=BATCH, gpus=6, work_s=100.0, gpu_type=0, deadline_s=1e6, submit_s=1.0),
    )
    scheduler = Scheduler([gpu_pool(8), gpu_pool(8, facility=1)], jobs, check_invariants=True)
    result = run(scheduler, 1)[0]
    assert jobs.status[2] == QUEUED
    assert result.busy_end.tolist() == [4.0, 5.0]
    run(scheduler, 1)
    assert jobs.start_s[2] == 400.0
    assert jobs.pool[2] == jobs.pool[0]
    assert jobs.end_s[2] == 500.0


def test_preempted_training_resumes_and_redoes_only_work_since_its_checkpoint():
    """A realtime arrival stops a training gang; it resumes after restoring its checkpoint,
    and its GPU time is work + lost + restore."""
    jobs = table_of(
        job(type=TRAINING, gpus=8, work_s=5000.0, checkpoint_interval_s=1800.0, deadline_s=1e9),
        job(submit_s=2000.0, work_s=100.0),
    )
    scheduler = Scheduler([gpu_pool(8)], jobs, check_invariants=True)
    results = run(scheduler, 20)
    lost_s = 2000.0 - 1800.0
    assert jobs.preemptions[0] == 1
    assert jobs.lost_work_s[0] == pytest.approx(lost_s)
    assert jobs.start_s[1] == 2000.0
    restore_s = scheduler.rules.restore_s
    assert restore_s > 0
    assert jobs.end_s[0] == pytest.approx(2100.0 + restore_s + 5000.0 - 1800.0)
    training_gpu_s = sum(r.busy_unit_s[0, TRAINING] for r in results)
    assert training_gpu_s == pytest.approx(8 * (5000.0 + lost_s + restore_s))
    assert sum(r.lost_work_gpu_s[0] for r in results) == pytest.approx(8 * lost_s)
    billed = sum(r.revenue_usd.sum() for r in results)
    assert billed == pytest.approx(jobs.revenue_usd.sum())
    # the GPU time held while restoring is billed like the run itself
    assert jobs.revenue_usd[0] == pytest.approx(8 * (5000.0 + restore_s) * 2.0 / 3600.0)


def test_victim_is_the_job_with_least_work_since_its_checkpoint():
    """Of two running batch jobs, the one that checkpointed more recently is stopped."""
    jobs = table_of(
        job(type=BATCH, work_s=9000.0, checkpoint_interval_s=1000.0, deadline_s=1e9),
        job(type=BATCH, work_s=9000.0, checkpoint_interval_s=700.0, deadline_s=1e9, submit_s=1),
        job(submit_s=1450.0, work_s=10.0),
    )
    scheduler = Scheduler([gpu_pool(2)], jobs, check_invariants=True)
    run(scheduler, 5)
    # At 1450 s job 0 lost 450 s since its checkpoint at 1000 s, job 1 lost 49 s (at 1401 s).
    assert jobs.preemptions.tolist() == [0, 1, 0]
    assert jobs.lost_work_s[1] == pytest.approx(49.0)


def test_limit_cut_stops_interruptible_work_and_reports_realtime_overshoot():
    """A limit below the busy count preempts batch work; realtime above it is overshoot."""
    jobs = table_of(
        *(job(work_s=5000.0, submit_s=float(i)) for i in range(4)),
        *(job(type=BATCH, work_s=5000.0, deadline_s=1e9, submit_s=10.0 + i) for i in range(4)),
    )
    scheduler = Scheduler([gpu_pool(8)], jobs, check_invariants=True)
    run(scheduler, 1)
    cut = run(scheduler, 1, limits=[2.0])[0]
    assert cut.limit.tolist() == [2.0]
    assert cut.preempted[0, BATCH] == 4
    assert cut.overshoot_start.tolist() == [2.0]
    assert np.isnan(cut.placed_peak_busy[0])
    assert cut.busy_end.tolist() == [4.0]
    restored = run(scheduler, 1, limits=[8.0])[0]
    assert restored.started[0, BATCH] == 4
    assert restored.busy_end.tolist() == [8.0]


def test_room_freed_at_an_interval_start_obeys_the_new_limit():
    """A job ending exactly at t0 frees room, but a waiting job may not take it above the
    limit set for the interval that starts there."""
    jobs = table_of(
        job(type=BATCH, gpus=8, work_s=300.0, deadline_s=1e9),
        job(type=BATCH, gpus=8, work_s=300.0, deadline_s=1e9, submit_s=1.0),
    )
    scheduler = Scheduler([gpu_pool(8)], jobs, check_invariants=True)
    run(scheduler, 1)
    result = run(scheduler, 1, limits=[0.0])[0]
    assert jobs.status.tolist() == [COMPLETED, QUEUED]
    assert result.busy_end.tolist() == [0.0]
    assert np.isnan(result.placed_peak_busy[0])


def test_waiting_jobs_start_by_priority_then_submission_time():
    """When room frees, waiting realtime goes before batch, and batch jobs go FIFO."""
    jobs = table_of(
        job(work_s=100.0),
        job(type=BATCH, work_s=50.0, deadline_s=1e9, submit_s=10.0),
        job(type=TRAINING, work_s=50.0, deadline_s=1e9, submit_s=20.0),
        job(type=BATCH, work_s=50.0, deadline_s=1e9, submit_s=30.0),
    )
    jobs.append(JobBatch.from_columns(**{k: [v] for k, v in job(submit_s=40.0).items()}))
    scheduler = Scheduler([gpu_pool(1)], jobs, check_invariants=True)
    run(scheduler, 2)
    # Realtime 4 preempts nothing (realtime 0 is not interruptible) and waits; it goes first.
    assert jobs.start_s.tolist() == [0.0, 200.0, 250.0, 300.0, 100.0]


def test_mining_runs_on_asic_ths_and_is_preempted_when_the_fleet_shrinks():
    """Mining jobs take TH/s from the ASIC pool, leave when its TH/s drops, lose nothing."""
    jobs = table_of(
        *(
            job(type=MINING, gpus=0, hashrate_ths=100.0, work_s=3600.0, submit_s=float(i))
            for i in range(5)
        )
    )
    scheduler = Scheduler([asic_pool(400.0)], jobs, check_invariants=True)
    first = run(scheduler, 1)[0]
    assert first.busy_end.tolist() == [400.0]
    assert jobs.status.tolist().count(QUEUED) == 1
    shrunk = run(scheduler, 1, limits=[150.0])[0]
    assert shrunk.busy_end.tolist() == [100.0]
    assert shrunk.preempted[0, MINING] == 3
    assert jobs.lost_work_s.sum() == 0.0
    assert shrunk.busy_unit_s[0, MINING] == pytest.approx(100.0 * STEP_S)


def test_bad_calls_are_refused():
    """Out-of-order intervals and a wrong number of limits raise SchedulerError."""
    scheduler = Scheduler([gpu_pool(8)], table_of(job()))
    with pytest.raises(SchedulerError, match="limits"):
        scheduler.run_interval(0.0, 300.0, [1.0, 2.0])
    scheduler.run_interval(0.0, 300.0)
    with pytest.raises(SchedulerError, match="previous interval end"):
        scheduler.run_interval(600.0, 900.0)


@st.composite
def setups(draw):
    """Random small pools, jobs and per-interval limits."""
    pools = [
        gpu_pool(draw(st.sampled_from([8, 16, 32])), gpu_type=draw(st.integers(0, 1)), facility=i)
        for i in range(draw(st.integers(1, 3)))
    ]
    if draw(st.booleans()):
        pools.append(asic_pool(draw(st.sampled_from([0.0, 300.0, 1000.0]))))
    count = draw(st.integers(1, 60))
    jobs = []
    for _ in range(count):
        code = draw(st.sampled_from([REALTIME, BATCH, TRAINING, MINING]))
        mining = code == MINING
        jobs.append(
            job(
                type=code,
                submit_s=draw(st.floats(0.0, 1199.0)),
                work_s=draw(st.floats(1.0, 900.0)),
                gpus=0 if mining else draw(st.sampled_from([1, 2, 4, 8, 16, 64])),
                gpu_type=-1 if mining else draw(st.integers(-1, 2)),
                hashrate_ths=draw(st.sampled_from([100.0, 500.0])) if mining else 0.0,
                deadline_s=1e6 if code in (BATCH, TRAINING) else np.inf,
                checkpoint_interval_s=draw(st.sampled_from([60.0, 250.0, np.inf])),
            )
        )
    limits = [[draw(st.floats(0.0, 1.0)) * p.installed for p in pools] for _ in range(6)]
    return pools, jobs, limits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups())
def test_every_job_is_in_exactly_one_state_and_limits_hold(setup):
    """Submitted = completed + rejected + queued + running after every interval; no job in
    two states; no placement takes a pool above its limit; unit-seconds add up."""
    pools, job_list, limits = setup
    jobs = table_of(*job_list)
    scheduler = Scheduler(pools, jobs, check_invariants=True)
    restore_s = scheduler.rules.restore_s
    total_busy = np.zeros(len(pools))
    for i, interval_limits in enumerate(limits):
        t1 = (i + 1) * STEP_S
        result = scheduler.run_interval(i * STEP_S, t1, interval_limits)
        counts = scheduler.audit()
        submitted = int(np.sum(jobs.submit_s < t1))
        assert sum(counts.values()) == submitted
        assert counts["queued"] == result.queued_jobs == scheduler.queued_jobs
        assert counts["running"] == scheduler.running_jobs
        peak = result.placed_peak_busy
        placed = ~np.isnan(peak)
        assert np.all(peak[placed] <= result.limit[placed] + 1e-9)
        assert np.all(result.busy_end <= result.limit + result.overshoot_start + 1e-9)
        total_busy += result.busy_unit_s.sum(axis=1)
        held = _unit_seconds_run(jobs, t1, restore_s)
        assert total_busy.sum() == pytest.approx(held, abs=1e-6)


def _unit_seconds_run(jobs: JobTable, now_s: float, restore_s: float) -> float:
    """Capacity-seconds the jobs have held so far: units x (work + lost work + checkpoint
    restores of resumed GPU jobs - work left)."""
    left_s = np.where(jobs.status == COMPLETED, 0.0, jobs.remaining_s)
    running = jobs.status == RUNNING
    left_s[running] -= now_s - jobs.segment_start_s[running]
    waiting_again = (jobs.status == QUEUED) & (jobs.preemptions > 0)
    resumes = np.where(jobs.type == MINING, 0, jobs.preemptions - waiting_again)
    units = np.where(jobs.type == MINING, jobs.hashrate_ths, jobs.gpus)
    return float(np.sum(units * (jobs.work_s + jobs.lost_work_s + resumes * restore_s - left_s)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups())
def test_releasing_finished_jobs_changes_no_outcome(setup):
    """Moving finished jobs out of the table between intervals (to keep memory flat) leaves
    every job's record and every interval result as without it."""
    pools, job_list, limits = setup

    def simulate(release: bool) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
        jobs = table_of(*job_list)
        scheduler = Scheduler(pools, jobs, check_invariants=True)
        parts, busy = [], []
        for i, interval_limits in enumerate(limits):
            result = scheduler.run_interval(i * STEP_S, (i + 1) * STEP_S, interval_limits)
            busy.append(result.busy_unit_s)
            if release:
                parts.append(scheduler.release_finished().to_columns(now_s=len(limits) * STEP_S))
        parts.append(jobs.to_columns(now_s=len(limits) * STEP_S))
        merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        order = np.argsort(merged["job_id"])
        return {name: column[order] for name, column in merged.items()}, busy

    kept, kept_busy = simulate(release=False)
    released, released_busy = simulate(release=True)
    np.testing.assert_array_equal(kept["job_id"], np.arange(len(job_list)))
    for name in kept:
        np.testing.assert_array_equal(kept[name], released[name], err_msg=name)
    np.testing.assert_array_equal(np.array(kept_busy), np.array(released_busy))


def test_same_seed_same_schedule():
    """Generator + scheduler twice with one seed give identical job records."""

    def simulate() -> dict[str, np.ndarray]:
        scenario = validate_scenario(
            {
                "name": "t",
                "start": "2024-06-01T00:00:00-05:00",
                "duration_days": 1,
                "facilities": [
                    {
                        "id": "a",
                        "settlement_point": "HB_WEST",
                        "power_cap_mw": 50,
                        "gpus": [{"type": "h100_sxm", "count": 64}],
                        "asics": [{"model": "antminer_s21", "count": 50}],
                    },
                ],
            }
        )
        type_ids = scenario_gpu_type_ids(scenario)
        demand = {
            "ai_inference_realtime": WorkloadDemand(per_day=20000, duration_median_s=60),
            "ai_inference_batch": WorkloadDemand(
                per_day=2000, duration_median_s=900, gpus=SizeChoice(values=[1, 2, 4])
            ),
            "model_training": WorkloadDemand(
                per_day=100, duration_median_s=3600, gpus=SizeChoice(values=[8, 16])
            ),
            "bitcoin_mining": WorkloadDemand(per_day=200, duration_median_s=3600),
        }
        generator = WorkloadGenerator(
            Workloads(customers=5, demand=demand),
            type_ids,
            datetime(2024, 6, 1, tzinfo=UTC),
            np.random.default_rng(11),
        )
        jobs = JobTable()
        pools = pools_from_scenario(scenario, type_ids)
        scheduler = Scheduler(pools, jobs, generator.customers)
        for i in range(24):
            jobs.append(generator.arrivals(i * STEP_S, (i + 1) * STEP_S))
            scheduler.run_interval(i * STEP_S, (i + 1) * STEP_S, [32.0, 5000.0])
        return jobs.to_columns(now_s=24 * STEP_S)

    first, second = simulate(), simulate()
    assert first["preemptions"].sum() > 0
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
