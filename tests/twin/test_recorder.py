"""Tests of twin.recorder: recording rows, the long-form table and the run folder files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from twin.kpis import compute_kpis
from twin.recorder import (
    COST_COLUMNS,
    JOBS_SCHEMA,
    PACKAGES,
    REVENUE_COLUMNS,
    REVENUE_STREAMS,
    TIMESERIES_COLUMNS,
    Recorder,
    RecorderError,
    atomic_output,
    run_metadata,
)
from twin.scenario import Facility, Scenario

FACILITIES = ["alpha", "beta"]
INTERVAL_S = 1800.0
START = datetime(2024, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5)))


def make_values(n_intervals: int, seed: int = 7) -> np.ndarray:
    """Made-up values ``[n_intervals, n_facilities, n_columns]``, all positive."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 100.0, size=(n_intervals, len(FACILITIES), len(TIMESERIES_COLUMNS)))


def filled_recorder(n_intervals: int = 8, recorded: int | None = None) -> Recorder:
    """A recorder whose first ``recorded`` intervals hold make_values() rows."""
    recorder = Recorder(FACILITIES, n_intervals, INTERVAL_S, START)
    values = make_values(n_intervals)
    for i in range(n_intervals if recorded is None else recorded):
        for f in range(len(FACILITIES)):
            recorder.record(i, f, dict(zip(TIMESERIES_COLUMNS, values[i, f], strict=True)))
    return recorder


def make_jobs() -> pl.DataFrame:
    """A small jobs table with every status and a job that never started."""
    return pl.DataFrame(
        {
            "job_id": [1, 2, 3],
            "type": ["ai_inference_realtime", "model_training", "ai_inference_batch"],
            "customer": ["acme", "globex", "acme"],
            "submit_s": [0.0, 10.0, 20.0],
            "work_s": [59.5, 100.0, 50.0],
            "start_s": [0.5, 40.0, float("nan")],
            "end_s": [60.0, float("nan"), float("nan")],
            "wait_s": [0.5, 30.0, float("nan")],
            "facility_id": ["alpha", "beta", None],
            "gpu_type": ["h100", "h100", None],
            "gpus": [1, 8, 2],
            "hashrate_ths": [0.0, 0.0, 0.0],
            "status": ["completed", "running", "queued"],
            "sla_met": [True, None, None],
            "preemptions": [0, 1, 0],
            "lost_work_s": [0.0, 30.0, 0.0],
            "served_s": [59.5, 20.0, 0.0],
            "revenue_usd": [0.05, 12.0, 0.0],
            "reject_reason": [None, None, None],
        },
        schema=JOBS_SCHEMA,
    )


def make_scenario() -> Scenario:
    """The smallest valid scenario: one facility, one day."""
    return Scenario(
        name="recorder test",
        start=START,
        duration_days=1.0,
        facilities=[Facility(id="alpha", settlement_point="HB_WEST", power_cap_mw=10.0)],
    )


def write_run(recorder: Recorder, out_dir: Path, metadata: dict | None = None) -> Path:
    """Write the run folder with real KPIs and (unless given) real metadata."""
    timeseries = recorder.timeseries()
    jobs = make_jobs()
    kpis = compute_kpis(timeseries, jobs, sim_days=1.0, wall_s=0.25, interval_s=INTERVAL_S)
    if metadata is None:
        metadata = run_metadata(make_scenario(), 3, 0.25, datetime(2025, 1, 1, tzinfo=UTC))
    return recorder.write(out_dir, metadata=metadata, jobs=jobs, kpis=kpis)


def test_columns_include_every_revenue_and_cost_stream() -> None:
    """Every revenue and cost stream maps to a recorded column, and names are unique."""
    assert len(set(TIMESERIES_COLUMNS)) == len(TIMESERIES_COLUMNS)
    for column in [*REVENUE_COLUMNS.values(), *COST_COLUMNS.values()]:
        assert column in TIMESERIES_COLUMNS
    assert tuple(REVENUE_COLUMNS) == REVENUE_STREAMS


def test_timeseries_is_long_form_with_recorded_values() -> None:
    """One row per facility per interval, in time then facility order, with the values
    recorded, the interval start in t_s and the same instant in UTC in ``time``."""
    recorder = filled_recorder(n_intervals=4)
    values = make_values(4)
    frame = recorder.timeseries()
    assert frame.columns == ["t_s", "time", "facility_id", *TIMESERIES_COLUMNS]
    assert frame.height == 4 * len(FACILITIES)
    assert frame["facility_id"].to_list() == FACILITIES * 4
    assert frame["t_s"].to_list() == [0.0, 0.0, 1800.0, 1800.0, 3600.0, 3600.0, 5400.0, 5400.0]
    expected_time = [START.astimezone(UTC) + timedelta(seconds=t) for t in frame["t_s"]]
    assert frame["time"].to_list() == expected_time
    assert str(frame["time"].dtype.time_zone) == "UTC"  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        frame.select(TIMESERIES_COLUMNS).to_numpy(), values.reshape(8, -1)
    )


def test_unknown_column_raises_key_error_naming_it() -> None:
    """A misspelt column name is refused with its name in the message."""
    recorder = Recorder(FACILITIES, 2, INTERVAL_S, START)
    with pytest.raises(KeyError, match="power_totl_mw"):
        recorder.record(0, 0, {"power_totl_mw": 1.0})
    with pytest.raises(KeyError, match="bogus"):
        recorder.record_many(0, "bogus", np.zeros(2))


def test_missing_columns_stay_nan() -> None:
    """Columns not given to record() are NaN in the table."""
    recorder = Recorder(FACILITIES, 2, INTERVAL_S, START)
    recorder.record(0, 1, {"price_usd_per_mwh": 42.0})
    frame = recorder.timeseries()
    assert frame.height == 2
    assert frame["price_usd_per_mwh"].to_list()[1] == 42.0
    assert np.isnan(frame["price_usd_per_mwh"].to_list()[0])
    assert frame["power_total_mw"].is_nan().all()


def test_record_many_writes_one_column_for_all_facilities() -> None:
    """record_many stores a vector in facility order and rejects a wrong length."""
    recorder = Recorder(FACILITIES, 3, INTERVAL_S, START)
    recorder.record_many(1, "power_total_mw", np.array([5.0, 7.0]))
    assert recorder.column("power_total_mw")[1].tolist() == [5.0, 7.0]
    assert recorder.timeseries()["power_total_mw"].to_list() == [5.0, 7.0]
    with pytest.raises(RecorderError, match="one per facility"):
        recorder.record_many(1, "power_total_mw", np.array([1.0, 2.0, 3.0]))


def test_out_of_range_indices_are_refused() -> None:
    """Negative or too-large interval/facility indices raise instead of wrapping around."""
    recorder = Recorder(FACILITIES, 3, INTERVAL_S, START)
    with pytest.raises(IndexError, match="interval_index"):
        recorder.record(3, 0, {"ambient_c": 1.0})
    with pytest.raises(IndexError, match="interval_index"):
        recorder.record_many(-1, "ambient_c", np.zeros(2))
    with pytest.raises(IndexError, match="facility_index"):
        recorder.record(0, 2, {"ambient_c": 1.0})


def test_bad_construction_arguments_name_the_field() -> None:
    """Naive start times, duplicate ids and non-positive intervals are refused."""
    with pytest.raises(RecorderError, match="start"):
        Recorder(FACILITIES, 2, INTERVAL_S, datetime(2024, 1, 1))
    with pytest.raises(RecorderError, match="facility_ids"):
        Recorder(["a", "a"], 2, INTERVAL_S, START)
    with pytest.raises(RecorderError, match="interval_s"):
        Recorder(FACILITIES, 2, 0.0, START)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=19), max_size=20))
def test_only_recorded_intervals_appear(recorded: set[int]) -> None:
    """For any set of recorded intervals (a run can stop early or skip), the table holds
    exactly those intervals, each once per facility, in time order."""
    recorder = Recorder(FACILITIES, 20, INTERVAL_S, START)
    for i in recorded:
        recorder.record_many(i, "queued_jobs", np.full(2, float(i)))
    frame = recorder.timeseries()
    assert recorder.recorded_intervals == len(recorded)
    assert frame.height == len(recorded) * len(FACILITIES)
    expected = [i * INTERVAL_S for i in sorted(recorded) for _ in FACILITIES]
    assert frame["t_s"].to_list() == expected
    assert frame["queued_jobs"].to_list() == [t / INTERVAL_S for t in expected]


def test_write_produces_all_files_that_round_trip(tmp_path: Path) -> None:
    """write() leaves the five result files and no temporary files; the parquet files
    read back equal to what was recorded, kpis.json and metadata.yaml parse."""
    recorder = filled_recorder(n_intervals=8, recorded=5)
    out_dir = write_run(recorder, tmp_path / "run")
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [
        "jobs.parquet",
        "kpis.json",
        "metadata.yaml",
        "report.html",
        "timeseries.parquet",
    ]
    assert_frame_equal(pl.read_parquet(out_dir / "timeseries.parquet"), recorder.timeseries())
    assert_frame_equal(pl.read_parquet(out_dir / "jobs.parquet"), make_jobs())
    kpis = json.loads((out_dir / "kpis.json").read_text())
    assert kpis["workloads"]["submitted"] == 3
    metadata = yaml.safe_load((out_dir / "metadata.yaml").read_text())
    assert list(metadata)[:2] == ["name", "seed"]
    assert metadata["seed"] == 3
    assert metadata["scenario"]["facilities"][0]["id"] == "alpha"


def test_writing_twice_gives_identical_files(tmp_path: Path) -> None:
    """Same inputs -> byte-identical kpis.json, parquet files and report."""
    metadata = run_metadata(make_scenario(), 3, 0.25, datetime(2025, 1, 1, tzinfo=UTC))
    first = write_run(filled_recorder(), tmp_path / "a", metadata)
    second = write_run(filled_recorder(), tmp_path / "b", metadata)
    for name in ("kpis.json", "timeseries.parquet", "jobs.parquet", "report.html"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_write_refuses_jobs_without_required_columns(tmp_path: Path) -> None:
    """A jobs table lacking a column is refused before any file is written."""
    recorder = filled_recorder(n_intervals=2)
    jobs = make_jobs().drop("sla_met")
    with pytest.raises(RecorderError, match="sla_met"):
        recorder.write(tmp_path / "run", metadata={"name": "x"}, jobs=jobs, kpis={})
    assert not (tmp_path / "run").exists()


def test_metadata_with_non_plain_values_is_refused(tmp_path: Path) -> None:
    """metadata.yaml holds only plain YAML; an object is refused with a clear error."""
    recorder = filled_recorder(n_intervals=2)
    with pytest.raises(RecorderError, match="metadata"):
        recorder.write(tmp_path / "run", metadata={"name": object()}, jobs=make_jobs(), kpis={})


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    """If writing fails midway, the previous file is untouched and no temp file remains."""
    target = tmp_path / "kpis.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kpis.json"]


def test_run_metadata_is_plain_and_complete() -> None:
    """run_metadata holds name, seed, git, versions of every listed package, platform,
    start and runtime, and dumps to YAML with safe_dump."""
    started = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    metadata = run_metadata(make_scenario(), 11, 1.23456, started)
    assert metadata["name"] == "recorder test"
    assert metadata["seed"] == 11
    assert metadata["runtime_s"] == 1.235
    assert metadata["started_at"] == started.isoformat()
    assert set(metadata["versions"]) == {"python", *PACKAGES}
    assert isinstance(metadata["git"]["revision"], str) and metadata["git"]["revision"]
    assert metadata["git"]["dirty"] in (True, False, None)
    assert metadata["scenario"]["name"] == "recorder test"
    assert yaml.safe_load(yaml.safe_dump(metadata, sort_keys=False)) == metadata
