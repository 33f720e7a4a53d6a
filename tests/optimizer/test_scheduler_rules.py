"""Tests of the scheduler's rules: fair sharing between customers, quotas, reserved capacity,
aging, no starvation of large gangs, minimum runtime, checkpoint restore, routing across
regions and deferral of work into cheaper intervals (see optimizer.scheduler)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.customers import Customer
from models.job_table import (
    COMPLETED,
    LATENCY_UNMET,
    NOT_REJECTED,
    QUEUED,
    REJECTED,
    RESIDENCY_UNMET,
    RUNNING,
    JobTable,
)
from models.workload_types import BATCH, MINING, REALTIME, TRAINING
from optimizer.interval_result import IntervalResult
from optimizer.pools import Pool, PoolKind
from optimizer.scheduler import Scheduler
from tests.optimizer.test_scheduler import STEP_S, job, table_of
from twin.scenario import WorkloadDemand, Workloads
from twin.scenario_scheduling import Deferral, FairShare, Routing, Scheduling

FAR_DEADLINE_S = 1e9
"""A deadline no test reaches [s]."""


# --------------------------------------------------------------------------- builders


def site_pool(gpus: int, facility: int = 0, region: str = "us-central", gpu_type: int = 0) -> Pool:
    """A GPU pool of ``gpus`` GPUs at facility ``site{facility}`` in ``region``."""
    return Pool(facility, f"site{facility}", PoolKind.GPU, gpu_type, float(gpus), 8, region=region)


def asic_pool(ths: float) -> Pool:
    """An ASIC pool of ``ths`` TH/s at facility 0."""
    return Pool(0, "site0", PoolKind.ASIC, -1, ths)


def customer(
    index: int, region: str = "us-central", weight: float = 1.0, residency: bool = False
) -> Customer:
    """Customer ``index`` in ``region`` with demand ``weight``."""
    return Customer(index, f"customer{index}", region, weight, data_residency=residency)


def batch(**fields: float) -> dict[str, float]:
    """A 1-GPU batch inference job with a far deadline unless overridden."""
    return job(**{"type": BATCH, "deadline_s": FAR_DEADLINE_S, **fields})


def training(**fields: float) -> dict[str, float]:
    """A 1-GPU training job without checkpoints and with a far deadline unless overridden."""
    return job(**{"type": TRAINING, "deadline_s": FAR_DEADLINE_S, **fields})


def mining(ths: float, **fields: float) -> dict[str, float]:
    """A mining job asking for ``ths`` TH/s."""
    return job(type=MINING, gpus=0, hashrate_ths=ths, price_usd_per_gpu_hour=0.0, **fields)


def run_until(scheduler: Scheduler, end_s: float, **conditions: Any) -> list[IntervalResult]:
    """Run STEP_S intervals from where the scheduler stands until ``end_s`` [s];
    ``conditions`` go to every ``run_interval`` call."""
    results = []
    t_s = scheduler.now_s or 0.0
    while t_s < end_s:
        results.append(scheduler.run_interval(t_s, t_s + STEP_S, **conditions))
        t_s += STEP_S
    return results


def jain_index(values: np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one gets
    everything [-]."""
    x = np.asarray(values, dtype=float)
    return float(x.sum() ** 2 / (x.size * np.sum(x**2)))


def gpu_seconds_by_customer(jobs: JobTable, count: int, lo_s: float, hi_s: float) -> np.ndarray:
    """GPU-seconds each customer's jobs ran within ``[lo_s, hi_s]`` (jobs run once, without
    preemption, from ``start_s`` to ``end_s``) [GPU-s]."""
    assert np.all(jobs.preemptions == 0)
    started = ~np.isnan(jobs.start_s)
    start = jobs.start_s[started]
    end = np.where(np.isnan(jobs.end_s[started]), hi_s, jobs.end_s[started])
    overlap = np.clip(np.minimum(end, hi_s) - np.maximum(start, lo_s), 0.0, None)
    return np.bincount(
        jobs.customer[started], weights=overlap * jobs.gpus[started], minlength=count
    )


def last_start_by_customer(jobs: JobTable, count: int) -> np.ndarray:
    """When each customer's last job started [s]: until then it had a job waiting."""
    assert not np.isnan(jobs.start_s).any(), "every job must have started"
    return np.array([jobs.start_s[jobs.customer == c].max() for c in range(count)])


# --------------------------------------------------------------------------- fair share


def test_backlogged_customers_get_equal_service_whatever_their_submission_rate():
    """Four equal-weight customers saturate one 16-GPU pool; customer 0 submits four times as
    many jobs as each other one. While all four have work waiting, each is served about a
    quarter of the GPU-seconds (Jain's index >= 0.95), not its 4/7 share of submissions."""
    pattern = [0, 0, 0, 0, 1, 2, 3]
    owners = pattern * 24
    jobs = table_of(
        *(batch(customer=c, submit_s=0.5 * i, work_s=600.0) for i, c in enumerate(owners))
    )
    scheduler = Scheduler(
        [site_pool(16)], jobs, [customer(i) for i in range(4)], check_invariants=True
    )
    run_until(scheduler, 7200.0)
    assert np.all(jobs.status == COMPLETED)
    all_backlogged_until_s = last_start_by_customer(jobs, 4).min()
    assert all_backlogged_until_s >= 5 * 600.0  # several rounds of the pool, not one
    served = gpu_seconds_by_customer(jobs, 4, 0.0, all_backlogged_until_s)
    assert jain_index(served) >= 0.95
    assert served[0] / served.sum() < 0.35  # its share of submissions is 4/7


def _steady_saturation(starvation_s: float) -> JobTable:
    """Four equal-weight customers submit 1-GPU batch jobs steadily for 8 h at rates
    1:2:3:4, twice what one 8-GPU pool serves, so the heavy customers' jobs wait for hours
    by fair share while light customers' fresh jobs keep arriving."""
    rng = np.random.default_rng(7)
    arrivals = []
    for owner, rate_per_s in enumerate(np.array([1, 2, 3, 4]) / 10 * 2 * 8 / 600.0):
        times = rng.uniform(0.0, 8 * 3600.0, rng.poisson(rate_per_s * 8 * 3600.0))
        arrivals += [(float(t), owner) for t in times]
    arrivals.sort()
    jobs = table_of(*(batch(customer=c, submit_s=t, work_s=600.0) for t, c in arrivals))
    rules = Scheduling(starvation_s=starvation_s)
    scheduler = Scheduler([site_pool(8)], jobs, [customer(i) for i in range(4)], True, rules=rules)
    run_until(scheduler, 8 * 3600.0)
    return jobs


def test_waiting_by_fair_share_is_not_starvation():
    """A heavy customer's job that waits hours because of fair share may trigger the
    starvation rule, but promising it room must not idle a GPU or change who is served:
    the starts are the same as with the rule off, and service stays fair."""
    with_rule = _steady_saturation(starvation_s=1800.0)
    without = _steady_saturation(starvation_s=1e12)
    assert np.nanmax(with_rule.start_s - with_rule.submit_s) > 1800.0  # the rule was in play
    np.testing.assert_array_equal(with_rule.start_s, without.start_s)
    served = gpu_seconds_by_customer(with_rule, 4, 3600.0, 8 * 3600.0)
    assert served[0] < served[3]  # the light customer asked for less than a quarter
    assert jain_index(served[1:]) >= 0.95


def test_demand_weights_give_backlogged_customers_service_in_proportion():
    """With ``weights="demand"`` customers weighted 0.4 / 0.3 / 0.2 / 0.1 who all keep the
    pool saturated are served in those proportions (after the first round, which is placed
    on arrival before anyone waits)."""
    weights = [0.4, 0.3, 0.2, 0.1]
    owners = [0, 1, 2, 3] * 48
    jobs = table_of(
        *(batch(customer=c, submit_s=0.5 * i, work_s=600.0) for i, c in enumerate(owners))
    )
    rules = Scheduling(fair_share=FairShare(weights="demand"))
    tenants = [customer(i, weight=w) for i, w in enumerate(weights)]
    scheduler = Scheduler([site_pool(16)], jobs, tenants, check_invariants=True, rules=rules)
    run_until(scheduler, 12 * 3600.0)
    all_backlogged_until_s = last_start_by_customer(jobs, 4).min()
    assert all_backlogged_until_s >= 5 * 600.0
    served = gpu_seconds_by_customer(jobs, 4, 600.0, all_backlogged_until_s)
    share = served / served.sum()
    assert np.all(np.diff(share) < 0)
    np.testing.assert_allclose(share, weights, atol=0.04)
    assert jain_index(served) < 0.9


def _quota_run(quota_gpus: int | None, light_region: str) -> JobTable:
    """An 8-GPU pool in us-central: heavy customer 0 (weight 0.9, us-central) fills it with
    24 jobs of 500 s at t=0, light customer 1 (weight 0.1, in ``light_region``) sends 4 jobs
    at t=1. A light customer in another region waits in its own queue class."""
    jobs = table_of(
        *(batch(customer=0, work_s=500.0) for _ in range(24)),
        *(batch(customer=1, submit_s=1.0, work_s=500.0) for _ in range(4)),
    )
    rules = Scheduling(fair_share=FairShare(weights="demand", quota_gpus=quota_gpus))
    tenants = [customer(0, weight=0.9), customer(1, light_region, weight=0.1)]
    scheduler = Scheduler([site_pool(8)], jobs, tenants, check_invariants=True, rules=rules)
    run_until(scheduler, 2400.0)
    return jobs


def _light_and_heavy_starts_at_500(jobs: JobTable) -> tuple[int, int]:
    """Jobs of the light and of the heavy customer started when the first round ends."""
    then = (jobs.start_s >= 500.0) & (jobs.start_s < 600.0)
    light = jobs.customer == 1
    return int(np.sum(then & light)), int(np.sum(then & ~light))


def test_customer_over_quota_waits_behind_customers_within_quota():
    """With ``quota_gpus=4`` the heavy customer, holding 8 GPUs, ranks behind the light one
    though its fair-share tags are earlier: when the first jobs end (t=500), the light
    customer gets all the room it asks for (4 GPUs). Without a quota the heavy customer's
    earlier tags win most of that room."""
    assert _light_and_heavy_starts_at_500(_quota_run(4, "us-east")) == (4, 4)
    light, _heavy = _light_and_heavy_starts_at_500(_quota_run(None, "us-east"))
    assert light < 4


def test_quota_holds_between_customers_with_the_same_kind_of_job():
    """The quota should act the same when both customers send the same kind of job from the
    same region (observed: the light customer gets 1 GPU at t=500, as without a quota)."""
    assert _light_and_heavy_starts_at_500(_quota_run(4, "us-central")) == (4, 4)


def test_quota_is_work_conserving():
    """A customer over its quota still takes every free GPU when nobody else waits: once the
    light customer's jobs have started the heavy one runs 8 GPUs (twice its quota), and the
    pool never idles while it has work waiting."""
    jobs = _quota_run(4, "us-east")
    heavy = jobs.customer == 0
    assert np.sum(heavy & (jobs.start_s >= 1000.0) & (jobs.start_s < 1100.0)) == 8
    assert np.all(jobs.status == COMPLETED)
    # 28 jobs x 500 s on 8 GPUs take 1750 s; rounds of 500 s end at 2000 s with no idle round
    assert jobs.end_s.max() == 2000.0


def _reserved_run(reserved_customers: int, reserved_region: str) -> JobTable:
    """A 16-GPU pool in us-central. Customer 0 (the largest by demand, in
    ``reserved_region``) runs one long job from t=0, which pushes its fair-share tags far
    back; on-demand customer 1 (us-central) fills the pool and queues 16 jobs at t=1;
    customer 0 then sends 8 jobs at t=2."""
    jobs = table_of(
        batch(customer=0, work_s=100_000.0),
        *(batch(customer=1, submit_s=1.0, work_s=500.0) for _ in range(31)),
        *(batch(customer=0, submit_s=2.0, work_s=500.0) for _ in range(8)),
    )
    rules = Scheduling(fair_share=FairShare(reserved_customers=reserved_customers, reserved_gpus=8))
    tenants = [customer(0, reserved_region, weight=0.7), customer(1, weight=0.3)]
    scheduler = Scheduler([site_pool(16)], jobs, tenants, check_invariants=True, rules=rules)
    run_until(scheduler, 900.0)
    return jobs


_RESERVED_NEW_JOBS = slice(32, 40)


def _reserved_starts_in_first_round(jobs: JobTable) -> int:
    """The reserved customer's new jobs started when the first round ends (t=501)."""
    start_s = jobs.start_s[_RESERVED_NEW_JOBS]
    return int(np.sum((start_s >= 500.0) & (start_s < 600.0)))


def test_reserved_customer_below_its_guarantee_goes_ahead_of_on_demand_jobs():
    """With 8 GPUs reserved for the largest customer, its waiting jobs start as soon as room
    frees (t=501), ahead of the on-demand customer's earlier-tagged jobs of the same
    priority, until it holds its 8 GPUs; its 8th job then waits in fair-share order. Without
    the reservation none of them starts in that round."""
    reserved = _reserved_run(1, "us-east")
    assert _reserved_starts_in_first_round(reserved) == 7
    assert np.sum(reserved.status[_RESERVED_NEW_JOBS] == QUEUED) == 1
    on_demand = _reserved_run(0, "us-east")
    assert np.all(on_demand.status[_RESERVED_NEW_JOBS] == QUEUED)


def test_reservation_holds_between_customers_with_the_same_kind_of_job():
    """The guarantee should act the same when both customers send the same kind of job from
    the same region (observed: none of the reserved customer's jobs starts at t=501)."""
    assert _reserved_starts_in_first_round(_reserved_run(1, "us-central")) == 7


# --------------------------------------------------------------------------- aging


@pytest.mark.parametrize(
    ("aging_s", "late_submit_s", "first"),
    [
        (1e9, 3000.0, "late"),  # no aging: fair-share tag order, the late job's tag is 0
        (1200.0, 3000.0, "early"),  # the early job aged to level 2, the late one is at 3
        (600.0, 2000.0, "late"),  # both aged; level 2 is the floor, so tags decide again
    ],
)
def test_aging_lifts_long_waiting_mining_up_to_level_two_only(aging_s, late_submit_s, first):
    """Two mining jobs wait for a full ASIC pool until t=3600: an early one (t=1) whose
    customer already used a lot (late fair-share tag) and a late one of a fresh customer
    (tag 0). Waiting ``aging_s`` lifts a job one level (3 -> 2), so the early job goes first
    once it has aged and the late one has not; once both have aged they meet at the floor
    (level 2; level 1 is realtime inference's) and the tag decides. Mining only competes with
    mining (it runs on ASIC pools only), so aging is observable only between mining jobs."""
    jobs = table_of(
        mining(1000.0, customer=0, work_s=3600.0),
        mining(500.0, customer=0, submit_s=1.0, work_s=600.0),
        mining(600.0, customer=1, submit_s=late_submit_s, work_s=600.0),
    )
    rules = Scheduling(aging_s=aging_s)
    scheduler = Scheduler([asic_pool(1000.0)], jobs, check_invariants=True, rules=rules)
    run_until(scheduler, 3900.0)
    early, late = 1, 2
    winner, loser = (early, late) if first == "early" else (late, early)
    assert jobs.start_s[winner] == 3600.0
    assert jobs.status[loser] == QUEUED


# --------------------------------------------------------------------------- starvation


def _gang_among_small_jobs(starvation_s: float) -> tuple[JobTable, int]:
    """A 16-GPU pool with a 1-GPU batch job of 600 s arriving every 100 s (about 6 GPUs
    always busy) and a 16-GPU training gang of 900 s submitted at t=50; runs 9000 s."""
    small = [batch(submit_s=100.0 * i, work_s=600.0) for i in range(90)]
    gang = training(customer=1, submit_s=50.0, gpus=16, work_s=900.0)
    jobs = table_of(*small, gang)
    gang_row = int(np.flatnonzero(jobs.gpus == 16)[0])
    rules = Scheduling(starvation_s=starvation_s)
    scheduler = Scheduler(
        [site_pool(16)], jobs, [customer(0), customer(1)], check_invariants=True, rules=rules
    )
    run_until(scheduler, 9000.0)
    return jobs, gang_row


def test_large_gang_starts_within_a_bound_despite_a_stream_of_small_jobs():
    """Once the gang has waited ``starvation_s`` (1200 s), small jobs stop backfilling, the
    pool drains and the gang starts: within starvation_s + one small job's run + one
    interval of its submission. Small jobs resume after it and catch up."""
    starvation_s = 1200.0
    jobs, gang = _gang_among_small_jobs(starvation_s)
    gang_start_s = jobs.start_s[gang]
    assert jobs.status[gang] == COMPLETED
    assert gang_start_s - jobs.submit_s[gang] <= starvation_s + 600.0 + STEP_S
    small = np.arange(len(jobs)) != gang
    assert np.any(small & (jobs.start_s >= jobs.end_s[gang]))
    # nothing small ran alongside the whole-pool gang
    overlaps = small & (jobs.start_s < jobs.end_s[gang]) & (jobs.end_s > gang_start_s)
    assert not overlaps.any()
    # the stream catches up: jobs submitted well before the end all finished
    early = small & (jobs.submit_s < 8000.0)
    assert np.all(jobs.status[early] == COMPLETED)


def test_without_the_starvation_rule_the_gang_would_wait_forever():
    """The same stream with an unreachable ``starvation_s`` never frees the whole pool, so
    the gang is still waiting at the end: the rule above is what lets it run."""
    jobs, gang = _gang_among_small_jobs(starvation_s=1e9)
    assert jobs.status[gang] == QUEUED


# --------------------------------------------------------------------------- preemption


def _realtime_on_full_pool(
    old_submit_s: float, young_submit_s: float, min_runtime_s: float, end_s: float = 1200.0
) -> JobTable:
    """A 2-GPU pool running two 1-GPU training jobs without checkpoints (they lose their whole
    run if stopped) started at ``old_submit_s`` and ``young_submit_s``; a realtime job
    arrives at t=1000."""
    jobs = table_of(
        training(work_s=5000.0, submit_s=old_submit_s),
        training(work_s=5000.0, submit_s=young_submit_s),
        job(submit_s=1000.0, work_s=100.0),
    )
    rules = Scheduling(min_runtime_s=min_runtime_s)
    scheduler = Scheduler([site_pool(2)], jobs, check_invariants=True, rules=rules)
    run_until(scheduler, end_s)
    return jobs


def test_recently_started_job_is_spared_even_if_it_would_lose_less():
    """With ``min_runtime_s=600`` the realtime job stops the job running since t=0 (losing
    1000 s), not the one started 50 s ago (which would lose only 50 s). With
    ``min_runtime_s=0`` the cheaper, young victim is chosen."""
    spared = _realtime_on_full_pool(0.0, 950.0, min_runtime_s=600.0)
    assert spared.preemptions.tolist() == [1, 0, 0]
    assert spared.lost_work_s[0] == pytest.approx(1000.0)
    assert spared.start_s[2] == 1000.0
    cheapest = _realtime_on_full_pool(0.0, 950.0, min_runtime_s=0.0)
    assert cheapest.preemptions.tolist() == [0, 1, 0]
    assert cheapest.lost_work_s[1] == pytest.approx(50.0)


def test_realtime_waits_when_every_victim_is_younger_than_min_runtime():
    """Both training jobs started less than ``min_runtime_s`` ago: the realtime job queues
    and nothing is preempted."""
    jobs = _realtime_on_full_pool(500.0, 950.0, min_runtime_s=600.0)
    assert jobs.status.tolist() == [RUNNING, RUNNING, QUEUED]
    assert jobs.preemptions.sum() == 0


def test_waiting_realtime_job_preempts_once_a_victim_passes_min_runtime():
    """The training job started at t=500 passes ``min_runtime_s`` (600 s) at t=1100, so the
    realtime job queued at t=1000 should get its GPU by the next interval start (t=1200)
    rather than wait hours for a training job to finish."""
    jobs = _realtime_on_full_pool(500.0, 950.0, min_runtime_s=600.0, end_s=1500.0)
    assert jobs.start_s[2] <= 1200.0


@pytest.mark.parametrize("restore_s", [0.0, 240.0])
def test_resumed_job_spends_restore_s_more_gpu_time(restore_s):
    """A training job (3000 s of work, checkpoint every 600 s) is stopped at t=1000 by a
    realtime job of 100 s, losing the 400 s since its checkpoint at 600 s; it resumes at
    t=1100 with 2400 s left and ends ``restore_s`` later than that, holding its GPU that much
    longer."""
    jobs = table_of(
        training(work_s=3000.0, checkpoint_interval_s=600.0),
        job(submit_s=1000.0, work_s=100.0),
    )
    rules = Scheduling(restore_s=restore_s)
    scheduler = Scheduler([site_pool(1)], jobs, check_invariants=True, rules=rules)
    results = run_until(scheduler, 4200.0)
    assert jobs.preemptions[0] == 1
    assert jobs.end_s[0] == pytest.approx(1100.0 + 2400.0 + restore_s)
    training_gpu_s = sum(r.busy_unit_s[0, TRAINING] for r in results)
    assert training_gpu_s == pytest.approx(3000.0 + 400.0 + restore_s)


def test_mining_resumes_without_restore():
    """Mining loses nothing when stopped and has no checkpoint to restore: a mining job
    pushed off by a fleet cut resumes and ends exactly when its work is done."""
    jobs = table_of(mining(500.0, work_s=1000.0), mining(500.0, submit_s=1.0, work_s=1000.0))
    rules = Scheduling(restore_s=240.0)
    scheduler = Scheduler([asic_pool(1000.0)], jobs, check_invariants=True, rules=rules)
    run_until(scheduler, 300.0)
    run_until(scheduler, 600.0, limits=[500.0])
    run_until(scheduler, 2400.0)
    assert jobs.preemptions.sum() == 1
    stopped = int(np.flatnonzero(jobs.preemptions)[0])
    done_before_cut_s = STEP_S - jobs.submit_s[stopped]
    assert jobs.end_s[stopped] == pytest.approx(2 * STEP_S + 1000.0 - done_before_cut_s)
    assert jobs.lost_work_s.sum() == 0.0


# --------------------------------------------------------------------------- routing


def _routing_setup() -> tuple[Scheduler, JobTable]:
    """Two 8-GPU sites: site0 in us-east, site1 in us-west. Customers: 0 us-east, 1 us-west,
    2 us-central with data residency, 3 us-central whose latency to both sites (120 / 150 ms)
    exceeds the 100 ms realtime budget. Batch jobs read 100 GB (80 s at 10 Gbit/s, 2 USD
    moved, amortized over a typical 1 GPU-hour)."""
    routing = Routing(
        realtime_network_budget_ms=100.0,
        latency_ms={"us-central": {"site0": 120.0, "site1": 150.0}},
        bandwidth_gbps=10.0,
        transfer_usd_per_gb=0.02,
    )
    workloads = Workloads(
        customers=4,
        demand={
            "ai_inference_batch": WorkloadDemand(per_day=1, duration_median_s=3600.0, data_gb=100.0)
        },
    )
    tenants = [
        customer(0, "us-east"),
        customer(1, "us-west"),
        customer(2, "us-central", residency=True),
        customer(3, "us-central"),
    ]
    jobs = table_of(
        job(customer=0, submit_s=1.0),  # realtime, us-east
        job(customer=1, submit_s=2.0),  # realtime, us-west
        batch(customer=1, submit_s=3.0, work_s=1000.0),
        batch(customer=0, submit_s=4.0, work_s=1000.0),
        batch(customer=2, submit_s=5.0),
        job(customer=3, submit_s=6.0),
        batch(customer=3, submit_s=7.0, work_s=1000.0),
        batch(customer=0, submit_s=301.0, work_s=1000.0),
    )
    scheduler = Scheduler(
        [site_pool(8, 0, "us-east"), site_pool(8, 1, "us-west")],
        jobs,
        tenants,
        check_invariants=True,
        rules=Scheduling(routing=routing),
        workloads=workloads,
    )
    return scheduler, jobs


def test_realtime_goes_to_the_nearest_site_even_where_energy_costs_more():
    """With energy at 5 USD/GPU-h in us-east and 1 in us-west, each customer's realtime job
    still runs at its own region's site (8 ms against 70 ms)."""
    scheduler, jobs = _routing_setup()
    scheduler.run_interval(0.0, STEP_S, energy_usd_per_gpu_hour=[5.0, 1.0])
    assert jobs.pool[0] == 0
    assert jobs.pool[1] == 1
    assert scheduler.pools_for(REALTIME, -1, 0) == (0, 1)
    assert scheduler.pools_for(REALTIME, -1, 1) == (1, 0)


def test_batch_goes_where_energy_plus_data_transfer_costs_least():
    """At 5 vs 1 USD/GPU-h the us-east customer's batch job runs in us-west (1 + 2 USD/GPU-h
    of transfer < 5), takes 80 s longer to move its 100 GB, and the interval reports the
    100 GB per off-region job; at 2.5 vs 1 it stays home (2.5 < 3) and moves nothing."""
    scheduler, jobs = _routing_setup()
    us_west_batch, us_east_batch, central_batch, later_us_east_batch = 2, 3, 6, 7
    first = scheduler.run_interval(0.0, STEP_S, energy_usd_per_gpu_hour=[5.0, 1.0])
    assert jobs.pool[us_west_batch] == 1
    assert jobs.pool[us_east_batch] == 1
    assert jobs.pool[central_batch] == 1  # off-region everywhere: the cheaper energy wins
    assert first.transfer_gb.tolist() == [0.0, 200.0]
    second = scheduler.run_interval(STEP_S, 2 * STEP_S, energy_usd_per_gpu_hour=[2.5, 1.0])
    assert scheduler.pools_for(BATCH, -1, 0) == (0, 1)
    assert jobs.pool[later_us_east_batch] == 0
    assert second.transfer_gb.tolist() == [0.0, 0.0]
    run_until(scheduler, 2400.0, energy_usd_per_gpu_hour=[2.5, 1.0])
    run_s = jobs.end_s - jobs.start_s
    assert run_s[us_west_batch] == pytest.approx(1000.0)
    assert run_s[us_east_batch] == pytest.approx(1000.0 + 100.0 * 8.0 / 10.0)
    assert run_s[later_us_east_batch] == pytest.approx(1000.0)


def test_residency_and_latency_budget_reject_jobs_with_no_allowed_site():
    """A customer that must keep its data in us-central, where there is no site, is rejected
    with RESIDENCY_UNMET; a realtime job whose customer is 120 / 150 ms from the sites
    (budget 100 ms) with LATENCY_UNMET, while that customer's batch work is admitted."""
    scheduler, jobs = _routing_setup()
    scheduler.run_interval(0.0, STEP_S)
    assert jobs.status[4] == REJECTED
    assert jobs.reject_reason[4] == RESIDENCY_UNMET
    assert jobs.status[5] == REJECTED
    assert jobs.reject_reason[5] == LATENCY_UNMET
    assert jobs.status[6] == RUNNING
    assert scheduler.pools_for(REALTIME, -1, 3) == ()
    assert scheduler.pools_for(BATCH, -1, 2) == ()


# --------------------------------------------------------------------------- deferral


def test_deferral_holds_slack_work_and_lets_urgent_work_start():
    """On a pool flagged expensive, batch and training jobs with ample slack wait; a batch job
    whose deadline is one interval beyond its run starts at once, as does realtime work; a
    waiting job whose slack runs short starts at the next interval start though the flag
    holds; when the flag clears the rest start at that interval's start."""
    restore_s = 60.0
    deferral = Deferral(workload_types=["ai_inference_batch", "model_training"])
    rules = Scheduling(restore_s=restore_s, deferral=deferral)
    slack = batch(submit_s=10.0, work_s=600.0)
    urgent = batch(submit_s=20.0, work_s=600.0, deadline_s=20.0 + 600.0 + restore_s + STEP_S)
    slack_training = training(submit_s=30.0, work_s=600.0)
    realtime = job(submit_s=40.0)
    # slack 1500 - t - 660: 700 > 2 intervals at t=140 (a completion drains the pool), 540
    # <= 2 intervals at t=300
    soon_urgent = batch(submit_s=50.0, work_s=600.0, deadline_s=1500.0, gpus=2)
    jobs = table_of(slack, urgent, slack_training, realtime, soon_urgent)
    scheduler = Scheduler([site_pool(8)], jobs, check_invariants=True, rules=rules)
    scheduler.run_interval(0.0, STEP_S, deferred=[True])
    assert jobs.status.tolist() == [QUEUED, RUNNING, QUEUED, COMPLETED, QUEUED]
    assert jobs.start_s[1] == 20.0
    assert jobs.start_s[3] == 40.0
    scheduler.run_interval(STEP_S, 2 * STEP_S, deferred=[True])
    assert jobs.start_s[4] == STEP_S
    assert jobs.status[0] == QUEUED and jobs.status[2] == QUEUED
    scheduler.run_interval(2 * STEP_S, 3 * STEP_S, deferred=[False])
    assert jobs.start_s[0] == 2 * STEP_S
    assert jobs.start_s[2] == 2 * STEP_S


def test_training_is_not_deferred_unless_the_rules_name_it():
    """With the default rules only batch inference waits for cheap power: a training job
    with ample slack starts at once on a deferred pool, the batch job beside it waits."""
    jobs = table_of(batch(submit_s=10.0, work_s=600.0), training(submit_s=20.0, work_s=600.0))
    scheduler = Scheduler([site_pool(8)], jobs, check_invariants=True)
    scheduler.run_interval(0.0, STEP_S, deferred=[True])
    assert jobs.status.tolist() == [QUEUED, RUNNING]


def test_deferral_lets_an_urgent_job_past_a_slack_job_of_its_class():
    """A 1-GPU batch job whose slack runs short at t=300 waits behind an earlier 1-GPU batch
    job with ample slack on a pool that stays deferred; it should start at t=300 (observed:
    it never starts while the flag holds and misses its 1500 s deadline)."""
    jobs = table_of(
        batch(submit_s=10.0, work_s=600.0),
        batch(submit_s=50.0, work_s=600.0, deadline_s=1500.0),
    )
    scheduler = Scheduler(
        [site_pool(8)], jobs, check_invariants=True, rules=Scheduling(restore_s=60.0)
    )
    run_until(scheduler, 1500.0, deferred=[True])
    assert jobs.start_s[1] == STEP_S
    assert jobs.end_s[1] <= jobs.deadline_s[1]


# --------------------------------------------------------------------------- property

_REGIONS = ("us-east", "us-west", "us-central")


@st.composite
def routed_setups(draw):
    """Three GPU pools in two regions, customers in three regions (some with residency),
    random jobs, and per interval random limits, energy costs and deferral flags."""
    pools = [
        site_pool(draw(st.sampled_from([4, 8, 16])), i, region, draw(st.integers(0, 1)))
        for i, region in enumerate(("us-east", "us-east", "us-west"))
    ]
    tenants = [
        customer(
            i, draw(st.sampled_from(_REGIONS)), draw(st.floats(0.05, 1.0)), draw(st.booleans())
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    rules = Scheduling(
        starvation_s=draw(st.sampled_from([300.0, 7200.0])),
        aging_s=draw(st.sampled_from([300.0, 1800.0])),
        min_runtime_s=draw(st.sampled_from([0.0, 600.0])),
        routing=Routing(realtime_network_budget_ms=draw(st.sampled_from([20.0, 50.0, 80.0]))),
        fair_share=FairShare(
            weights=draw(st.sampled_from(["equal", "demand"])),
            quota_gpus=draw(st.sampled_from([None, 4])),
            reserved_customers=draw(st.integers(0, 1)),
            reserved_gpus=draw(st.sampled_from([0, 8])),
        ),
    )
    jobs = []
    for _ in range(draw(st.integers(1, 40))):
        code = draw(st.sampled_from([REALTIME, BATCH, TRAINING]))
        work_s = draw(st.floats(1.0, 900.0))
        submit_s = draw(st.floats(0.0, 1799.0))
        jobs.append(
            job(
                type=code,
                customer=draw(st.integers(0, len(tenants))),  # the last index is unknown
                submit_s=submit_s,
                work_s=work_s,
                gpus=draw(st.sampled_from([1, 2, 4, 8, 16])),
                gpu_type=draw(st.integers(-1, 1)),
                deadline_s=np.inf
                if code == REALTIME
                else submit_s + work_s * draw(st.floats(1.0, 10.0)),
                checkpoint_interval_s=draw(st.sampled_from([60.0, 250.0, np.inf])),
            )
        )
    intervals = [
        (
            [draw(st.floats(0.0, 1.0)) * p.installed for p in pools],
            [draw(st.floats(0.0, 5.0)) for _ in pools],
            [draw(st.booleans()) for _ in pools],
        )
        for _ in range(8)
    ]
    return pools, tenants, rules, jobs, intervals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routed_setups())
def test_routed_jobs_stay_on_their_candidate_pools_and_in_one_state(setup):
    """After every interval: the audit passes and counts every submitted job once; every
    running or completed job sits on one of its route candidates, of its GPU type and, for
    residency customers, in their region; rejected jobs carry a reason, others none; no
    placement exceeds a limit."""
    pools, tenants, rules, job_list, intervals = setup
    jobs = table_of(*job_list)
    scheduler = Scheduler(pools, jobs, tenants, check_invariants=True, rules=rules)
    region_of = {c.customer_id: c.region for c in tenants}
    residency = {c.customer_id for c in tenants if c.data_residency}
    for i, (limits, energy, deferred) in enumerate(intervals):
        t1 = (i + 1) * STEP_S
        result = scheduler.run_interval(
            i * STEP_S, t1, limits, energy_usd_per_gpu_hour=energy, deferred=deferred
        )
        counts = scheduler.audit()
        submitted = int(np.sum(jobs.submit_s < t1))
        assert sum(counts.values()) == submitted
        seen = slice(0, submitted)
        assert np.all(np.isin(jobs.status[seen], [QUEUED, RUNNING, COMPLETED, REJECTED]))
        rejected = jobs.status[seen] == REJECTED
        assert np.all(jobs.reject_reason[seen][rejected] != NOT_REJECTED)
        assert np.all(jobs.reject_reason[seen][~rejected] == NOT_REJECTED)
        placed = np.flatnonzero(np.isin(jobs.status[seen], [RUNNING, COMPLETED]))
        for row in placed.tolist():
            pool = int(jobs.pool[row])
            owner = int(jobs.customer[row])
            gpu_type = int(jobs.gpu_type[row])
            assert pool in scheduler.pools_for(int(jobs.type[row]), gpu_type, owner)
            assert gpu_type in (-1, pools[pool].gpu_type)
            if owner in residency:
                assert pools[pool].region == region_of[owner]
        peak = result.placed_peak_busy
        was_placed = ~np.isnan(peak)
        assert np.all(peak[was_placed] <= result.limit[was_placed] + 1e-9)
