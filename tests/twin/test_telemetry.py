"""Telemetry: readings at the PRD rates, cheap whole-fleet summaries, a deterministic device
sample, result files, and no change to a run's results when there are no faults."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from models.telemetry import (
    group_summary,
    lagged_mean,
    lagged_profile,
    noisy_means,
    reading_offsets_s,
    sample_rows,
)
from twin.engine import build
from twin.kpis import kpis_without_wall

from .fault_scenarios import tiny


def test_prd_rates_give_one_reading_per_second_and_per_ten_seconds() -> None:
    """A 5-minute interval holds 300 GPU readings (1 s) and 30 ASIC readings (10 s), the
    last at the interval's end; a rate that does not divide the interval still covers it."""
    gpu = reading_offsets_s(300.0, 1.0)
    asic = reading_offsets_s(300.0, 10.0)
    assert gpu.size == 300 and asic.size == 30
    assert gpu[0] == 1.0 and asic[-1] == 300.0
    assert reading_offsets_s(300.0, 7.0)[-1] == 300.0


def test_lagged_profile_joins_start_and_end_and_its_mean_matches() -> None:
    """The first-order temperature profile ends at the end value, and its closed-form mean
    equals the mean of the built profile."""
    start = np.array([40.0, 80.0, 60.0])
    end = np.array([70.0, 60.0, 60.0])
    offsets = reading_offsets_s(300.0, 10.0)
    profile = lagged_profile(start, end, offsets, 300.0, 180.0)
    np.testing.assert_allclose(profile[:, -1], end)
    np.testing.assert_allclose(profile[2], 60.0)
    np.testing.assert_allclose(lagged_mean(start, end, offsets, 300.0, 180.0), profile.mean(axis=1))


def test_noisy_means_have_the_standard_error_of_n_readings() -> None:
    """The interval mean of n readings scatters by sigma / sqrt(n) around the truth."""
    rng = np.random.default_rng(3)
    truth = np.full(200_000, 50.0)
    means, z = noisy_means(rng, truth, 0.5, 30)
    assert abs(float(z.mean())) < 0.01
    assert float(means.std()) == np.float64(means.std())
    assert abs(float(means.std()) - 0.5 / math.sqrt(30)) < 0.002


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
)
def test_group_summary_matches_a_plain_loop(sizes: list[int], seed: int) -> None:
    """Per contiguous group: the reporting count, sums and temperature mean/max equal a
    device-by-device computation (NaN where nobody reports)."""
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(starts[-1])
    reporting = rng.random(n) < 0.7
    power = rng.random(n) * 3000
    temp = 20 + rng.random(n) * 60
    out = group_summary(starts, reporting, power_w=power, temp_c=temp)
    for g, (lo, hi) in enumerate(itertools.pairwise(starts)):
        rows = [i for i in range(lo, hi) if reporting[i]]
        assert out["devices_reporting"][g] == len(rows)
        assert math.isclose(out["power_w_sum"][g], sum(power[i] for i in rows), abs_tol=1e-6)
        if rows:
            assert math.isclose(out["temp_c_max"][g], max(temp[i] for i in rows))
            assert math.isclose(out["temp_c_mean"][g], sum(temp[i] for i in rows) / len(rows))
        else:
            assert math.isnan(out["temp_c_mean"][g]) and math.isnan(out["temp_c_max"][g])


def test_device_sample_is_spread_over_each_group() -> None:
    """The sample takes up to k rows per group, first and last included, none outside."""
    starts = np.array([0, 10, 12, 12, 40])
    rows = sample_rows(starts, 3)
    assert rows.tolist() == [0, 4, 9, 10, 11, 12, 26, 39]
    assert sample_rows(starts, 0).size == 0


def test_telemetry_files_hold_the_sample_at_the_prd_rates(tmp_path: Path) -> None:
    """A run writes the summary per interval and class, the sampled devices' every reading
    (1 s GPUs, 10 s miners), the ground truth and the alerts, and scores them in kpis."""
    scenario = tiny(hours=1, telemetry={"sample_per_class": 2})
    result = build(scenario).run()
    out = result.write(tmp_path / "run")
    for name in ("telemetry", "telemetry_summary", "faults", "alerts"):
        assert (out / f"{name}.parquet").is_file(), name
    detail = pl.read_parquet(out / "telemetry.parquet")
    intervals = scenario.interval_count
    asic = detail.filter(pl.col("target") == "asic")
    gpu = detail.filter(pl.col("target") == "gpu")
    assert asic["device"].n_unique() == 3 * 2  # three (site, model) classes
    assert gpu["device"].n_unique() == 3 * 2  # three (site, type) pools
    assert asic.height == 6 * 30 * intervals
    assert gpu.height == 6 * 300 * intervals
    assert gpu.filter(pl.col("device") == gpu["device"][0])["t_s"].diff().drop_nulls().max() == 1
    summary = pl.read_parquet(out / "telemetry_summary.parquet")
    assert summary.height == (3 + 3) * intervals
    mine = summary.filter((pl.col("facility_id") == "mine") & (pl.col("class") == "antminer_s21"))
    assert (mine["devices_reporting"] == 120).all()
    assert result.kpis["anomaly"]["alerts"] == 0


def test_telemetry_and_detection_do_not_change_a_run_without_faults() -> None:
    """Without faults the time series, jobs and KPIs are the same with telemetry and
    detection on (the default) or off: they only observe."""
    on = build(tiny(hours=2)).run()
    off = build(tiny(hours=2, telemetry={"enabled": False}, detection={"enabled": False})).run()
    assert on.timeseries.equals(off.timeseries)
    assert on.jobs.equals(off.jobs)
    assert kpis_without_wall(on.kpis) == kpis_without_wall(off.kpis)


def test_same_seed_gives_identical_telemetry_and_alerts() -> None:
    """Two runs with faults and one seed: identical readings, summaries and alerts."""
    faults = [
        {"kind": "hashboard_failure", "facility": "mine", "count": 4, "start_offset_h": 0.3},
        {"kind": "gpu_xid", "facility": "ai", "count": 2, "start_offset_h": 0.5},
    ]
    tables = []
    for _ in range(2):
        twin = build(tiny(faults, hours=1, telemetry={"sample_per_class": 1}))
        twin.run()
        tables.append(twin.recorder.tables)
    for name in ("telemetry", "telemetry_summary", "alerts", "faults"):
        assert tables[0][name].equals(tables[1][name]), name
    assert tables[0]["alerts"].height > 0
