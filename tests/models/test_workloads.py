"""Tests of workload types, customers, the job table and arrival generation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from models.job_table import GPU_TYPE_ABSENT, REJECT_REASONS
from models.workloads import (
    BATCH,
    COMPLETED,
    MINING,
    REALTIME,
    REGIONS,
    REJECTED,
    RUNNING,
    TRAINING,
    TYPE_NAMES,
    WORKLOAD_SPECS,
    JobBatch,
    JobTable,
    JobTableError,
    WorkloadGenerator,
    make_customers,
)
from twin.recorder import JOBS_SCHEMA
from twin.scenario import WORKLOAD_TYPES, SizeChoice, WorkloadDemand, Workloads

START = datetime(2024, 6, 1, tzinfo=UTC)
GPU_TYPES = ["h100_sxm", "h200"]


def generator(demand: dict[str, WorkloadDemand], seed: int = 3, **kwargs) -> WorkloadGenerator:
    return WorkloadGenerator(
        Workloads(customers=8, demand=demand),
        GPU_TYPES,
        START,
        np.random.default_rng(seed),
        **kwargs,
    )


def batch_of(count: int, **overrides) -> JobBatch:
    """``count`` 1-GPU realtime jobs one second apart, with columns overridden."""
    columns = {
        "type": np.full(count, REALTIME),
        "customer": np.zeros(count),
        "submit_s": np.arange(count, dtype=float),
        "work_s": np.full(count, 60.0),
        "gpus": np.ones(count),
        "gpu_type": np.full(count, -1),
        "hashrate_ths": np.zeros(count),
        "deadline_s": np.full(count, np.inf),
        "checkpoint_interval_s": np.full(count, np.inf),
        "price_usd_per_gpu_hour": np.full(count, 2.5),
    }
    columns.update(overrides)
    return JobBatch.from_columns(**columns)


def test_type_specs_follow_the_prd_table_in_scenario_order():
    """Codes follow twin.scenario.WORKLOAD_TYPES; priorities, latency, interruptibility and
    the resource are those of the PRD table."""
    assert TYPE_NAMES == WORKLOAD_TYPES
    table = [(s.priority, s.max_latency_s, s.interruptible, s.on_asic) for s in WORKLOAD_SPECS]
    assert table == [
        (1, 0.1, False, False),
        (2, 5.0, True, False),
        (2, float("inf"), True, False),
        (3, 60.0, True, True),
    ]
    assert [s.code for s in WORKLOAD_SPECS] == [REALTIME, BATCH, TRAINING, MINING]


def test_customers_are_deterministic_unique_and_weighted():
    """Same seed, same customers; names unique; weights sum to 1; regions from the set."""
    first = make_customers(300, np.random.default_rng(5))
    again = make_customers(300, np.random.default_rng(5))
    other = make_customers(300, np.random.default_rng(6))
    assert first == again
    assert first != other
    assert len({c.name for c in first}) == 300
    assert sum(c.weight for c in first) == pytest.approx(1.0)
    assert {c.region for c in first} <= set(REGIONS)
    assert [c.customer_id for c in first] == list(range(300))
    with pytest.raises(ValueError, match="count"):
        make_customers(0, np.random.default_rng(5))


def test_job_table_grows_by_doubling_and_keeps_rows():
    """Appends past capacity double it and keep earlier rows; job ids are row numbers."""
    table = JobTable(initial_capacity=4)
    table.append(batch_of(3))
    rows = table.append(batch_of(6, submit_s=np.arange(6) + 10.0))
    assert rows == range(3, 9)
    assert table.capacity == 16
    assert table.job_id.tolist() == list(range(9))
    assert table.submit_s.tolist() == [0.0, 1.0, 2.0, *np.arange(6) + 10.0]
    assert np.all(table.remaining_s == table.work_s)
    assert np.all(np.isnan(table.start_s))


def test_removed_rows_keep_their_job_ids_and_later_ids_continue():
    """remove_rows splits the table in order; new jobs get ids after all earlier ones."""
    table = JobTable(initial_capacity=2)
    table.append(batch_of(5))
    removed, new_row = table.remove_rows(np.array([True, False, True, False, False]))
    assert removed.job_id.tolist() == [0, 2]
    assert table.job_id.tolist() == [1, 3, 4]
    assert new_row.tolist() == [-1, 0, -1, 1, 2]
    table.append(batch_of(2, submit_s=[9.0, 10.0]))
    assert table.job_id.tolist() == [1, 3, 4, 5, 6]
    assert table.submit_s.tolist() == [1.0, 3.0, 4.0, 9.0, 10.0]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("work_s", -1.0, "work_s"),
        ("type", 7, "type"),
        ("gpus", 0, "gpus"),
        ("checkpoint_interval_s", 0.0, "checkpoint_interval_s"),
        ("price_usd_per_gpu_hour", -2.0, "price_usd_per_gpu_hour"),
    ],
)
def test_bad_job_values_are_named_with_their_job(column, value, message):
    """A bad value raises JobTableError naming the column and the job id."""
    table = JobTable()
    table.append(batch_of(2))
    values = getattr(batch_of(3), column).copy()
    values[1] = value
    with pytest.raises(JobTableError, match=rf"job 3: {message}"):
        table.append(batch_of(3, **{column: values}))
    assert len(table) == 2


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("type", -1),
        ("customer", -1),
        ("submit_s", np.nan),
        ("submit_s", np.inf),
        ("work_s", np.nan),
        ("work_s", np.inf),
        ("gpu_type", -2),
        ("hashrate_ths", 5.0),
        ("hashrate_ths", np.nan),
        ("deadline_s", np.nan),
        ("checkpoint_interval_s", np.nan),
        ("price_usd_per_gpu_hour", np.nan),
    ],
)
def test_nan_inf_and_out_of_range_values_are_refused_in_any_row(column, value):
    """Every rule catches NaN, infinities and out-of-range values wherever they sit in the
    batch (first, middle or last row), naming the job."""
    for row in (0, 2, 4):
        values = getattr(batch_of(5), column).astype(float)
        values[row] = value
        with pytest.raises(JobTableError, match=rf"job {row}: {column}"):
            batch_of(5, **{column: values}).validate()


def test_mining_jobs_need_ths_and_no_gpus():
    """A mining job with GPUs or without TH/s is refused; a valid mixed batch passes."""
    mixed = {"type": [REALTIME, MINING], "gpus": [1, 0], "hashrate_ths": [0.0, 500.0]}
    batch_of(2, **mixed).validate()
    with pytest.raises(JobTableError, match="job 1: gpus"):
        batch_of(2, **dict(mixed, gpus=[1, 1])).validate()
    with pytest.raises(JobTableError, match="job 1: hashrate_ths"):
        batch_of(2, **dict(mixed, hashrate_ths=[0.0, 0.0])).validate()


def test_sla_met_by_type_and_state():
    """Latency SLAs judge the wait, deadline SLAs the completion; unknown stays null."""
    table = JobTable()
    table.append(
        batch_of(
            6,
            type=[REALTIME, REALTIME, BATCH, TRAINING, TRAINING, MINING],
            gpus=[1, 1, 1, 8, 8, 0],
            hashrate_ths=[0, 0, 0, 0, 0, 100.0],
            submit_s=np.zeros(6),
            deadline_s=[np.inf, np.inf, 100.0, 500.0, 2000.0, np.inf],
        )
    )
    table.status[:] = [COMPLETED, REJECTED, COMPLETED, COMPLETED, RUNNING, RUNNING]
    table.reject_reason[1] = GPU_TYPE_ABSENT
    table.start_s[:] = [0.05, np.nan, 0.0, 0.0, 0.0, 61.0]
    table.end_s[:] = [60.0, np.nan, 150.0, 400.0, np.nan, np.nan]
    frame = table.to_polars(
        now_s=1000.0, customer_names=["acme"], facility_ids=["a"], gpu_type_names=GPU_TYPES
    )
    assert frame["sla_met"].to_list() == [True, False, False, True, None, False]
    assert frame["type"].to_list()[:3] == [TYPE_NAMES[0], TYPE_NAMES[0], TYPE_NAMES[1]]
    assert frame["status"].to_list()[1] == "rejected"
    assert frame["gpu_type"].null_count() == 6
    assert frame["wait_s"][0] == 0.05 and np.isnan(frame["wait_s"][1])
    assert frame.columns == list(JOBS_SCHEMA)
    assert frame["reject_reason"].to_list()[:2] == [None, REJECT_REASONS[GPU_TYPE_ABSENT]]
    assert frame.schema["customer"] == pl.String and frame.schema["gpus"] == pl.Int64


def test_arrivals_are_sorted_in_range_and_independent_of_slicing():
    """Jobs come sorted in [t0, t1); one call over 20 min equals four 5-min calls."""
    demand = {
        "ai_inference_realtime": WorkloadDemand(per_day=50000, duration_median_s=60),
        "model_training": WorkloadDemand(
            per_day=2000, duration_median_s=3600, gpus=SizeChoice(values=[8, 16])
        ),
    }
    whole = generator(demand).arrivals(100.0, 1300.0)
    sliced = generator(demand)
    parts = [sliced.arrivals(100.0 + 300 * i, 400.0 + 300 * i) for i in range(4)]
    joined = JobBatch.concat(parts)
    assert len(whole) > 500
    assert np.all(np.diff(whole.submit_s) >= 0)
    assert whole.submit_s.min() >= 100.0 and whole.submit_s.max() < 1300.0
    for name in JobBatch.DTYPES:
        np.testing.assert_array_equal(getattr(whole, name), getattr(joined, name), name)


def test_arrivals_do_not_depend_on_slicing_across_blocks_or_on_call_order():
    """Two days cut at uneven times (across 6-hour draw blocks) equal one call, and asking
    for an earlier range after later ones gives the same jobs again."""
    demand = {
        "ai_inference_realtime": WorkloadDemand(per_day=5000, duration_median_s=60),
        "bitcoin_mining": WorkloadDemand(per_day=50, duration_median_s=3600),
    }
    whole = generator(demand).arrivals(0.0, 2 * 86400.0)
    sliced = generator(demand)
    cuts = [0.0, 17.0, 21599.0, 21600.0, 50000.5, 86400.0, 100000.0, 2 * 86400.0]
    parts = [sliced.arrivals(a, b) for a, b in pairwise(cuts)]
    again = sliced.arrivals(100.0, 30000.0)
    joined = JobBatch.concat(parts)
    assert len(whole) > 9000 and np.sum(whole.type == MINING) > 50
    first = (whole.submit_s >= 100.0) & (whole.submit_s < 30000.0)
    for name in JobBatch.DTYPES:
        np.testing.assert_array_equal(getattr(whole, name), getattr(joined, name), name)
        np.testing.assert_array_equal(getattr(whole, name)[first], getattr(again, name), name)


def test_changing_one_type_leaves_the_other_types_unchanged():
    """Each type draws from its own substream: doubling training keeps realtime identical."""
    base = {
        "ai_inference_realtime": WorkloadDemand(per_day=20000, duration_median_s=60),
        "model_training": WorkloadDemand(per_day=200, duration_median_s=3600),
    }
    more = dict(base, model_training=WorkloadDemand(per_day=400, duration_median_s=3600))
    a = generator(base).arrivals(0.0, 3600.0)
    b = generator(more).arrivals(0.0, 3600.0)
    realtime_a = a.take(np.flatnonzero(a.type == REALTIME))
    realtime_b = b.take(np.flatnonzero(b.type == REALTIME))
    np.testing.assert_array_equal(realtime_a.submit_s, realtime_b.submit_s)
    np.testing.assert_array_equal(realtime_a.work_s, realtime_b.work_s)
    assert np.sum(b.type == TRAINING) > np.sum(a.type == TRAINING)


def test_daily_volume_and_peak_follow_the_demand():
    """A day holds per_day jobs (within 5 sigma); the peak-hour rate beats the trough's by
    the sinusoid's ratio (local time America/Chicago)."""
    per_day = 100000
    demand = {
        "ai_inference_realtime": WorkloadDemand(
            per_day=per_day, duration_median_s=60, daily_amplitude=0.5, peak_hour_local=14.0
        )
    }
    gen = generator(demand)
    jobs = gen.arrivals(0.0, 86400.0)
    assert abs(len(jobs) - per_day) < 5 * np.sqrt(per_day)
    # Chicago is UTC-5 in June: 14:00 local is 19 h after midnight UTC, 02:00 local is 7 h.
    peak = np.sum((jobs.submit_s >= 18.5 * 3600) & (jobs.submit_s < 19.5 * 3600))
    trough = np.sum((jobs.submit_s >= 6.5 * 3600) & (jobs.submit_s < 7.5 * 3600))
    assert peak / trough == pytest.approx(1.5 / 0.5, rel=0.15)
    rates = gen.rate_per_s("ai_inference_realtime", [19 * 3600.0, 7 * 3600.0])
    assert rates[0] / rates[1] == pytest.approx(3.0)


def test_sizes_durations_deadlines_and_gpu_types_follow_the_config():
    """Gang sizes take the given values by weight, durations are lognormal around the
    median, deadlines are submit + factor x work, and requested types map to indices."""
    demand = {
        "ai_inference_batch": WorkloadDemand(
            per_day=40000,
            duration_median_s=1800,
            duration_sigma=0.8,
            deadline_factor=3.0,
            gpus=SizeChoice(values=[1, 4], weights=[3, 1]),
            gpu_types=["h200", "b200"],
        ),
        "bitcoin_mining": WorkloadDemand(
            per_day=5000,
            duration_median_s=86400,
            hashrate_ths=SizeChoice(values=[500, 2000]),
        ),
    }
    gen = generator(demand)
    jobs = gen.arrivals(0.0, 86400.0)
    batch = jobs.take(np.flatnonzero(jobs.type == BATCH))
    mining = jobs.take(np.flatnonzero(jobs.type == MINING))
    assert set(batch.gpus.tolist()) == {1, 4}
    assert np.mean(batch.gpus == 1) == pytest.approx(0.75, abs=0.02)
    assert np.median(batch.work_s) == pytest.approx(1800, rel=0.05)
    assert np.std(np.log(batch.work_s)) == pytest.approx(0.8, rel=0.05)
    np.testing.assert_allclose(batch.deadline_s, batch.submit_s + 3.0 * batch.work_s)
    assert gen.gpu_type_names == [*GPU_TYPES, "b200"]
    assert set(batch.gpu_type.tolist()) == {1, 2}
    assert np.all(mining.gpus == 0) and np.all(mining.gpu_type == -1)
    assert set(mining.hashrate_ths.tolist()) == {500.0, 2000.0}
    assert np.all(np.isinf(mining.deadline_s))
    assert set(np.unique(jobs.customer).tolist()) <= set(range(8))


def test_customers_submit_in_proportion_to_their_weight():
    """The share of jobs per customer follows the customer weights."""
    customers = make_customers(4, np.random.default_rng(1))
    demand = {"ai_inference_realtime": WorkloadDemand(per_day=200000, duration_median_s=60)}
    jobs = generator(demand, customers=customers).arrivals(0.0, 86400.0)
    shares = np.bincount(jobs.customer, minlength=4) / len(jobs)
    np.testing.assert_allclose(shares, [c.weight for c in customers], atol=0.01)


def test_same_seed_same_jobs_and_time_zone_of_start_does_not_matter():
    """One seed gives identical jobs; the same instant written in another offset too."""
    demand = {"ai_inference_realtime": WorkloadDemand(per_day=30000, duration_median_s=60)}
    a = generator(demand).arrivals(0.0, 7200.0)
    chicago_start = START.astimezone(timezone(timedelta(hours=-5)))
    b = WorkloadGenerator(
        Workloads(customers=8, demand=demand),
        GPU_TYPES,
        chicago_start,
        np.random.default_rng(3),
    ).arrivals(0.0, 7200.0)
    for name in JobBatch.DTYPES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)


def test_bad_generator_input_is_refused():
    """Fractional GPU counts and a naive start raise ValueError naming the problem."""
    bad = {
        "ai_inference_batch": WorkloadDemand(
            per_day=10, duration_median_s=60, gpus=SizeChoice(values=[1.5])
        )
    }
    with pytest.raises(ValueError, match=r"ai_inference_batch\.gpus"):
        generator(bad)
    with pytest.raises(ValueError, match="UTC offset"):
        WorkloadGenerator(Workloads(), GPU_TYPES, datetime(2024, 1, 1), np.random.default_rng(0))
