"""Tests of twin.kpis: KPI definitions against hand-computed sums, and canonical JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.kpis import (
    KpiError,
    compute_kpis,
    dump_kpis,
    kpis_json,
    kpis_without_wall,
    max_min_shares,
)
from twin.recorder import (
    COST_COLUMNS,
    JOBS_SCHEMA,
    REVENUE_COLUMNS,
    TIMESERIES_COLUMNS,
    Recorder,
)
from twin.scenario import WORKLOAD_TYPES

FACILITIES = ["alpha", "beta"]
INTERVAL_S = 900.0
N_INTERVALS = 12
START = datetime(2024, 8, 1, tzinfo=UTC)


def make_rows(seed: int = 1) -> dict[str, np.ndarray]:
    """Consistent made-up values ``column -> [n_intervals, n_facilities]``."""
    rng = np.random.default_rng(seed)
    shape = (N_INTERVALS, len(FACILITIES))
    rows = {name: rng.uniform(0.0, 50.0, size=shape) for name in TIMESERIES_COLUMNS}
    rows["power_cap_mw"] = np.tile([100.0, 50.0], (N_INTERVALS, 1))
    rows["power_total_mw"] = rng.uniform(10.0, 50.0, size=shape)
    rows["energy_mwh"] = rows["power_total_mw"] * INTERVAL_S / 3600.0
    rows["curtailed_mw"] = np.zeros(shape)
    rows["curtailed_mw"][2, 0] = 5.0  # one facility curtails
    rows["curtailed_mw"][3, :] = [1.0, 2.0]  # both curtail
    rows["curtailed_mw"][7, 1] = 4.0
    rows["gpus_failed"] = np.full(shape, 3.0)
    rows["queued_jobs"] = np.tile(np.arange(N_INTERVALS, dtype=float)[:, None], (1, 2))
    return rows


def make_timeseries(rows: dict[str, np.ndarray]) -> pl.DataFrame:
    """The long-form table of ``rows`` built through Recorder.record()."""
    recorder = Recorder(FACILITIES, N_INTERVALS, INTERVAL_S, START)
    for i in range(N_INTERVALS):
        for f in range(len(FACILITIES)):
            recorder.record(i, f, {name: rows[name][i, f] for name in TIMESERIES_COLUMNS})
    return recorder.timeseries()


def make_jobs(n: int = 300, seed: int = 2) -> pl.DataFrame:
    """Random but valid jobs: some never start, some SLA undecided, some preempted."""
    rng = np.random.default_rng(seed)
    submit = rng.uniform(0, 10_000, n)
    started = rng.random(n) < 0.8
    wait = rng.exponential(30.0, n)
    start = np.where(started, submit + wait, np.nan)
    status = np.where(started, rng.choice(["completed", "running"], n), "queued")
    status[~started & (rng.random(n) < 0.3)] = "rejected"
    sla = rng.choice([True, False, None], n, p=[0.6, 0.2, 0.2])
    return pl.DataFrame(
        {
            "job_id": np.arange(n),
            "type": rng.choice(list(WORKLOAD_TYPES[:3]), n),
            "customer": rng.choice(["acme", "globex"], n),
            "submit_s": submit,
            "work_s": np.full(n, 60.0),
            "start_s": start,
            "end_s": np.where(status == "completed", start + 60.0, np.nan),
            "wait_s": np.where(started, wait, np.nan),
            "facility_id": rng.choice(FACILITIES, n),
            "gpu_type": ["h100"] * n,
            "gpus": rng.choice([1, 2, 8], n),
            "hashrate_ths": np.zeros(n),
            "status": status,
            "sla_met": sla.tolist(),
            "preemptions": rng.choice([0, 0, 0, 1, 2], n),
            "lost_work_s": rng.choice([0.0, 0.0, 120.0], n),
            "served_s": np.where(status == "completed", 60.0, 0.0),
            "revenue_usd": rng.uniform(0, 5, n),
            "reject_reason": [None] * n,
        },
        schema=JOBS_SCHEMA,
    )


def kpis_of(rows: dict[str, np.ndarray], jobs: pl.DataFrame | None = None) -> dict[str, Any]:
    """compute_kpis over the made-up rows and jobs."""
    return compute_kpis(
        make_timeseries(rows),
        make_jobs() if jobs is None else jobs,
        sim_days=N_INTERVALS * INTERVAL_S / 86400,
        wall_s=0.5,
        interval_s=INTERVAL_S,
    )


def test_money_is_the_sum_of_the_interval_columns() -> None:
    """Each revenue/cost stream is its column sum to the cent, totals add up, and net is
    revenue minus cost exactly as written."""
    rows = make_rows()
    kpis = kpis_of(rows)
    for stream, column in REVENUE_COLUMNS.items():
        assert kpis["revenue_usd"][stream] == pytest.approx(rows[column].sum(), abs=0.005)
    for stream, column in COST_COLUMNS.items():
        assert kpis["cost_usd"][stream] == pytest.approx(rows[column].sum(), abs=0.005)
    revenue = sum(rows[c].sum() for c in REVENUE_COLUMNS.values())
    cost = sum(rows[c].sum() for c in COST_COLUMNS.values())
    assert kpis["revenue_usd"]["total"] == pytest.approx(revenue, abs=0.05)
    assert kpis["cost_usd"]["total"] == pytest.approx(cost, abs=0.05)
    assert kpis["net_usd"] == round(kpis["revenue_usd"]["total"] - kpis["cost_usd"]["total"], 2)
    assert kpis["energy_mwh"] == pytest.approx(rows["energy_mwh"].sum(), abs=5e-4)


def test_per_facility_values_add_up_to_the_fleet() -> None:
    """Per-facility revenue, cost, energy and mean price come from that facility's rows."""
    rows = make_rows()
    kpis = kpis_of(rows)
    assert list(kpis["per_facility"]) == FACILITIES
    for f, facility_id in enumerate(FACILITIES):
        facility = kpis["per_facility"][facility_id]
        revenue = sum(rows[c][:, f].sum() for c in REVENUE_COLUMNS.values())
        cost = sum(rows[c][:, f].sum() for c in COST_COLUMNS.values())
        assert facility["revenue_usd"] == pytest.approx(revenue, abs=0.05)
        assert facility["cost_usd"] == pytest.approx(cost, abs=0.05)
        assert facility["net_usd"] == round(facility["revenue_usd"] - facility["cost_usd"], 2)
        assert facility["energy_mwh"] == pytest.approx(rows["energy_mwh"][:, f].sum(), abs=5e-4)
        mean_price = rows["price_usd_per_mwh"][:, f].mean()
        assert facility["mean_price_usd_per_mwh"] == pytest.approx(mean_price, abs=0.005)
    energies = [kpis["per_facility"][f]["energy_mwh"] for f in FACILITIES]
    assert sum(energies) == pytest.approx(kpis["energy_mwh"], abs=2e-3)


def test_utilization_follows_its_definitions() -> None:
    """GPU: busy / (busy + idle) GPU-hours; ASIC: active / all; power: drawn energy over
    the energy the caps allow."""
    rows = make_rows()
    kpis = kpis_of(rows)
    busy = sum(
        rows[c].sum() for c in ("gpus_inference", "gpus_batch", "gpus_training", "gpus_spot")
    )
    gpu = busy / (busy + rows["gpus_idle"].sum())
    asic_total = (
        rows["asics_active"].sum() + rows["asics_sleeping"].sum() + rows["asics_failed"].sum()
    )
    asic = rows["asics_active"].sum() / asic_total
    power = rows["power_total_mw"].sum() / rows["power_cap_mw"].sum()
    assert kpis["utilization"]["gpu"] == pytest.approx(gpu, abs=1e-6)
    assert kpis["utilization"]["asic"] == pytest.approx(asic, abs=1e-6)
    assert kpis["utilization"]["power"] == pytest.approx(power, abs=1e-6)


def test_curtailment_energy_and_fleet_hours() -> None:
    """Curtailed MWh is curtailed MW x interval hours; hours count intervals in which the
    fleet curtailed anything (three here), not facility-intervals (four)."""
    rows = make_rows()
    kpis = kpis_of(rows)
    assert kpis["curtailment"]["mwh"] == pytest.approx((5 + 1 + 2 + 4) * 0.25, abs=1e-9)
    assert kpis["curtailment"]["hours"] == pytest.approx(3 * 0.25, abs=1e-9)


def test_sla_and_wait_percentiles_per_type() -> None:
    """met_fraction is the share of True among non-null sla_met; wait percentiles equal
    numpy's over started jobs; count is all jobs of the type."""
    jobs = make_jobs()
    kpis = kpis_of(make_rows(), jobs)
    for workload_type in WORKLOAD_TYPES[:3]:
        rows = jobs.filter(pl.col("type") == workload_type)
        decided = [v for v in rows["sla_met"].to_list() if v is not None]
        waits = rows["wait_s"].to_numpy()
        waits = waits[~np.isnan(rows["start_s"].to_numpy())]
        sla = kpis["sla"][workload_type]
        assert sla["count"] == rows.height
        assert sla["met_fraction"] == pytest.approx(sum(decided) / len(decided), abs=1e-6)
        assert sla["wait_p50_s"] == pytest.approx(np.percentile(waits, 50), abs=5e-4)
        assert sla["wait_p99_s"] == pytest.approx(np.percentile(waits, 99), abs=5e-4)
    mining = kpis["sla"]["bitcoin_mining"]
    assert mining == {"met_fraction": None, "wait_p50_s": None, "wait_p99_s": None, "count": 0}


def test_workload_counts() -> None:
    """Submitted, completed, preempted (at least once), rejected, queued and running."""
    jobs = make_jobs()
    workloads = kpis_of(make_rows(), jobs)["workloads"]
    status = jobs["status"].to_list()
    assert workloads == {
        "submitted": jobs.height,
        "completed": status.count("completed"),
        "preempted": int((jobs["preemptions"].to_numpy() > 0).sum()),
        "rejected": status.count("rejected"),
        "queued_at_end": status.count("queued"),
        "running_at_end": status.count("running"),
    }


def test_empty_inputs_give_nulls_not_nan(tmp_path: Path) -> None:
    """With no intervals and no jobs the KPIs are zeros and nulls, and the JSON is valid
    (NaN never reaches the file)."""
    empty_series = Recorder(FACILITIES, 4, INTERVAL_S, START).timeseries()
    empty_jobs = pl.DataFrame(schema=JOBS_SCHEMA)
    kpis = compute_kpis(empty_series, empty_jobs, sim_days=0.0, wall_s=0.0, interval_s=INTERVAL_S)
    assert kpis["net_usd"] == 0.0
    assert kpis["utilization"] == {"gpu": None, "asic": None, "power": None}
    assert kpis["per_facility"] == {}
    path = dump_kpis(kpis, tmp_path / "kpis.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["sla"]["model_training"]["wait_p50_s"] is None


def test_nan_values_in_the_time_series_are_skipped() -> None:
    """A NaN cell (a column not recorded in one interval) does not poison the sums."""
    rows = make_rows()
    rows["revenue_mining_usd"][4, 1] = np.nan
    rows["power_total_mw"][5, 0] = np.nan
    kpis = kpis_of(rows)
    assert kpis["revenue_usd"]["mining"] == pytest.approx(
        np.nansum(rows["revenue_mining_usd"]), abs=0.005
    )
    assert kpis["utilization"]["power"] is not None


def test_dump_writes_null_for_nan_and_plain_numbers(tmp_path: Path) -> None:
    """dump_kpis turns NaN/inf into null and numpy scalars into JSON numbers."""
    path = dump_kpis(
        {"a": float("nan"), "b": np.float64(1.5), "c": np.int64(3), "d": [np.inf]},
        tmp_path / "k.json",
    )
    assert json.loads(path.read_text()) == {"a": None, "b": 1.5, "c": 3, "d": [None]}


def test_same_inputs_give_byte_identical_json(tmp_path: Path) -> None:
    """Two computations over the same inputs write the same bytes; only wall_s may differ."""
    first = kpis_of(make_rows())
    second = kpis_of(make_rows())
    second["wall_s"] = 99.0
    assert kpis_json(first) != kpis_json(second)
    assert kpis_json(kpis_without_wall(first)) == kpis_json(kpis_without_wall(second))
    a = dump_kpis(first, tmp_path / "a.json").read_bytes()
    b = dump_kpis(kpis_of(make_rows()), tmp_path / "b.json").read_bytes()
    assert a == b
    assert "wall_s" in first and "wall_s" not in kpis_without_wall(first)


def test_enum_columns_and_null_times_give_the_same_kpis() -> None:
    """Jobs with categorical (Enum) text columns and null instead of NaN for "not yet"
    give exactly the KPIs of the plain string / NaN form."""
    jobs = make_jobs()
    categorical = jobs.with_columns(
        pl.col("type").cast(pl.Enum(list(WORKLOAD_TYPES))),
        pl.col("status").cast(pl.Enum(["queued", "running", "completed", "rejected"])),
        pl.col("start_s", "end_s", "wait_s").fill_nan(None),
    )
    assert categorical["start_s"].null_count() > 0
    assert kpis_of(make_rows(), categorical) == kpis_of(make_rows(), jobs)


def test_unknown_job_type_or_status_names_the_job() -> None:
    """A job with a type or status outside the known sets is refused with its id."""
    jobs = make_jobs(5).with_columns(
        pl.when(pl.col("job_id") == 3)
        .then(pl.lit("quantum"))
        .otherwise(pl.col("type"))
        .alias("type")
    )
    with pytest.raises(KpiError, match="job_id 3 has type 'quantum'"):
        kpis_of(make_rows(), jobs)
    jobs = make_jobs(5).with_columns(pl.lit("lost").alias("status"))
    with pytest.raises(KpiError, match="status 'lost'"):
        kpis_of(make_rows(), jobs)


def test_missing_columns_are_named() -> None:
    """Inputs missing a required column are refused with the column's name."""
    with pytest.raises(KpiError, match="energy_mwh"):
        compute_kpis(
            make_timeseries(make_rows()).drop("energy_mwh"),
            make_jobs(),
            sim_days=1,
            wall_s=0,
            interval_s=INTERVAL_S,
        )
    with pytest.raises(KpiError, match="preemptions"):
        kpis_of(make_rows(), make_jobs().drop("preemptions"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e7, max_value=1e7, allow_nan=False),
        min_size=len(REVENUE_COLUMNS) + len(COST_COLUMNS),
        max_size=len(REVENUE_COLUMNS) + len(COST_COLUMNS),
    )
)
def test_written_totals_always_add_up(amounts: list[float]) -> None:
    """For any money amounts, the written totals are the sums of the written streams and
    net is revenue minus cost, to the cent, and every number is finite JSON."""
    rows = make_rows()
    for column, amount in zip(
        [*REVENUE_COLUMNS.values(), *COST_COLUMNS.values()], amounts, strict=True
    ):
        rows[column] = np.full_like(rows[column], amount)
    kpis = json.loads(kpis_json(kpis_of(rows, make_jobs(20))))
    revenue, cost = kpis["revenue_usd"], kpis["cost_usd"]
    assert math.isclose(
        revenue["total"], sum(v for k, v in revenue.items() if k != "total"), abs_tol=1e-6
    )
    assert math.isclose(
        cost["total"], sum(v for k, v in cost.items() if k != "total"), abs_tol=1e-6
    )
    assert math.isclose(kpis["net_usd"], revenue["total"] - cost["total"], abs_tol=1e-6)


def _fairness_jobs(served_by_customer: dict[str, list[float]], work_s: float) -> pl.DataFrame:
    """Batch jobs of 1 GPU: one row per served value, each asking for ``work_s``."""
    rows = [(c, x) for c, values in served_by_customer.items() for x in values]
    base = make_jobs().row(0, named=True)
    records = []
    for i, (customer, served) in enumerate(rows):
        record = dict(base)
        record.update(
            job_id=i,
            type="ai_inference_batch",
            customer=customer,
            status="completed" if served >= work_s else "queued",
            gpus=1,
            work_s=work_s,
            served_s=served,
            preemptions=0,
            lost_work_s=0.0,
            reject_reason=None,
        )
        records.append(record)
    return pl.DataFrame(records, schema=JOBS_SCHEMA)


def test_fairness_is_jains_index_against_max_min_fair_shares() -> None:
    """Equal service to equally hungry customers gives 1; one served twice the other gives
    the textbook value against equal shares; a customer that asked for little and got it
    counts as fairly served; everyone served in full is fair whatever the demands."""
    equal = kpis_of(make_rows(), _fairness_jobs({"a": [100.0, 0.0], "b": [100.0, 0.0]}, 100.0))
    assert equal["fairness"] == {"jain": 1.0, "customers": 2, "saturated": 2}
    skewed = kpis_of(make_rows(), _fairness_jobs({"a": [100.0, 100.0], "b": [100.0, 0.0]}, 100.0))
    ratio = np.array([200.0, 100.0]) / 150.0
    assert skewed["fairness"]["jain"] == pytest.approx(
        ratio.sum() ** 2 / (2 * np.sum(ratio**2)), abs=1e-6
    )
    small = _fairness_jobs({"a": [100.0, 0.0], "b": [100.0, 0.0], "c": [10.0]}, 100.0)
    small = small.with_columns(
        pl.when(pl.col("customer") == "c").then(10.0).otherwise(pl.col("work_s")).alias("work_s")
    )
    assert kpis_of(make_rows(), small)["fairness"] == {"jain": 1.0, "customers": 3, "saturated": 2}
    served_in_full = _fairness_jobs({"a": [100.0] * 5, "b": [100.0]}, 100.0)
    assert kpis_of(make_rows(), served_in_full)["fairness"]["jain"] == 1.0


def test_max_min_shares_fill_small_demands_first() -> None:
    """Water-filling: demands below the level are met, the rest split the remainder."""
    shares = max_min_shares(np.array([10.0, 200.0, 50.0, 200.0]), 250.0)
    assert shares.tolist() == pytest.approx([10.0, 95.0, 50.0, 95.0])
    assert max_min_shares(np.array([1.0, 2.0]), 10.0).tolist() == [1.0, 2.0]


def test_scheduling_kpis_count_preemptions_lost_work_and_reasons() -> None:
    """Preemptions are summed, lost work is weighted by GPUs, rejections grouped by reason."""
    jobs = make_jobs().with_columns(
        pl.lit(2).alias("preemptions"),
        pl.lit(3600.0).alias("lost_work_s"),
        pl.lit(4).cast(pl.Int64).alias("gpus"),
        pl.lit("no GPU pool of the requested type").alias("reject_reason"),
    )
    scheduling = kpis_of(make_rows(), jobs)["scheduling"]
    assert scheduling["preemptions"] == 2 * jobs.height
    assert scheduling["lost_work_gpu_h"] == pytest.approx(4.0 * jobs.height)
    assert scheduling["rejected_by_reason"] == {"no GPU pool of the requested type": jobs.height}
