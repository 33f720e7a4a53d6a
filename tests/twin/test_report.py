"""Tests of twin.report: sections, figures, offline plotly, escaping and file size."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.offline
import polars as pl
import pytest
import yaml

from twin.kpis import compute_kpis, dump_kpis
from twin.recorder import JOBS_SCHEMA, POWER_USE_COLUMNS, TIMESERIES_COLUMNS, Recorder
from twin.report import (
    FIGURE_IDS,
    MAX_POINTS_PER_TRACE,
    SECTIONS,
    ReportError,
    RunFiles,
    TimeGrid,
    choose_bin_s,
    write_report,
)
from twin.scenario import WORKLOAD_TYPES

START = datetime(2024, 1, 1, tzinfo=UTC)
MAX_REPORT_BYTES = 8 * 1024 * 1024


def make_jobs(n: int, seed: int = 5) -> pl.DataFrame:
    """``n`` valid jobs of every type; a fifth never started."""
    rng = np.random.default_rng(seed)
    started = rng.random(n) < 0.8
    wait = rng.lognormal(2.0, 2.0, n)
    submit = rng.uniform(0, 86400, n)
    return pl.DataFrame(
        {
            "job_id": np.arange(n),
            "type": rng.choice(list(WORKLOAD_TYPES), n),
            "customer": rng.choice(["acme", "globex"], n),
            "submit_s": submit,
            "work_s": np.full(n, 60.0),
            "start_s": np.where(started, submit + wait, np.nan),
            "end_s": np.full(n, np.nan),
            "wait_s": np.where(started, wait, np.nan),
            "facility_id": ["site-a"] * n,
            "gpu_type": [None] * n,
            "gpus": np.ones(n, dtype=np.int64),
            "hashrate_ths": np.zeros(n),
            "status": np.where(started, "running", "queued"),
            "sla_met": rng.choice([True, False, None], n).tolist(),
            "preemptions": np.zeros(n, dtype=np.int64),
            "lost_work_s": np.zeros(n),
            "served_s": np.zeros(n),
            "revenue_usd": np.zeros(n),
            "reject_reason": [None] * n,
        },
        schema=JOBS_SCHEMA,
    )


def make_metadata(name: str, facility_ids: list[str], days: float, interval_s: float) -> dict:
    """Metadata shaped like run_metadata() output."""
    return {
        "name": name,
        "seed": 42,
        "started_at": "2025-01-01T00:00:00+00:00",
        "runtime_s": 12.5,
        "git": {"revision": "0123abc", "dirty": True},
        "versions": {"python": "3.11"},
        "platform": "test",
        "scenario": {
            "name": name,
            "description": "what-if <b>bold</b>",
            "start": START.isoformat(),
            "duration_days": days,
            "dispatch_interval_s": interval_s,
            "seed": 42,
            "facilities": [{"id": f} for f in facility_ids],
        },
    }


def write_run_files(
    run_dir: Path,
    timeseries: pl.DataFrame,
    jobs: pl.DataFrame,
    metadata: dict[str, Any],
    interval_s: float,
) -> None:
    """The four input files of a report, as the recorder writes them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    timeseries.write_parquet(run_dir / "timeseries.parquet")
    jobs.write_parquet(run_dir / "jobs.parquet")
    days = float(metadata["scenario"]["duration_days"])
    kpis = compute_kpis(timeseries, jobs, sim_days=days, wall_s=1.0, interval_s=interval_s)
    dump_kpis(kpis, run_dir / "kpis.json")
    (run_dir / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))


def small_run(run_dir: Path, name: str = "small run") -> Path:
    """A two-facility, one-day run recorded through Recorder.record(), with 500 jobs."""
    facility_ids = ["site-a", "site-b"]
    n_intervals, interval_s = 96, 900.0
    recorder = Recorder(facility_ids, n_intervals, interval_s, START)
    rng = np.random.default_rng(3)
    for i in range(n_intervals):
        for f in range(len(facility_ids)):
            draws = rng.uniform(0, 20, len(TIMESERIES_COLUMNS))
            values = dict(zip(TIMESERIES_COLUMNS, draws, strict=True))
            values["power_cap_mw"] = 200.0
            values["power_total_mw"] = sum(values[c] for c in POWER_USE_COLUMNS)
            recorder.record(i, f, values)
    # as the job table writes them: Enum text columns, null for "not started"
    jobs = make_jobs(500).with_columns(
        pl.col("type").cast(pl.Enum(list(WORKLOAD_TYPES))),
        pl.col("start_s", "wait_s").fill_nan(None),
    )
    write_run_files(
        run_dir,
        recorder.timeseries(),
        jobs,
        make_metadata(name, facility_ids, 1.0, interval_s),
        interval_s,
    )
    return write_report(run_dir)


def year_timeseries(facility_ids: list[str], interval_s: float) -> pl.DataFrame:
    """A smooth one-year long-form table (every column a daily sinusoid plus noise)."""
    n_intervals = int(365 * 86400 / interval_s)
    n_facilities = len(facility_ids)
    t_s = np.repeat(np.arange(n_intervals) * interval_s, n_facilities)
    rng = np.random.default_rng(9)
    daily = np.sin(2 * np.pi * t_s / 86400.0)
    start_us = (START - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    time = pl.Series((start_us + t_s * 1e6).astype(np.int64)).cast(pl.Datetime("us"))
    columns: dict[str, Any] = {
        "t_s": t_s,
        "time": time.dt.replace_time_zone("UTC"),
        "facility_id": facility_ids * n_intervals,
    }
    for k, name in enumerate(TIMESERIES_COLUMNS):
        columns[name] = 10.0 + k + 5.0 * daily + rng.normal(0, 0.5, t_s.size)
    return pl.DataFrame(columns)


def test_report_has_every_section_and_one_div_per_figure(tmp_path: Path) -> None:
    """Each section heading appears, and each figure is one plotly div with its id."""
    page = small_run(tmp_path / "run").read_text()
    for heading in SECTIONS.values():
        assert f">{heading}</h2>" in page
    divs = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', page)
    assert divs == list(FIGURE_IDS)
    assert "42" in page and "0123abc (uncommitted changes)" in page
    for workload_type in WORKLOAD_TYPES:  # one wait-time trace per type with started jobs
        assert f"{workload_type} (n=" in page


def test_plotly_js_is_inline_once_and_nothing_is_fetched(tmp_path: Path) -> None:
    """The page embeds plotly.js exactly once and loads no script from elsewhere; outside
    the embedded library no CDN address appears."""
    page = small_run(tmp_path / "run").read_text()
    bundle = plotly.offline.get_plotlyjs()
    assert page.count(bundle) == 1
    outside = page.replace(bundle, "")
    assert "cdn.plot.ly" not in outside
    assert "<script src=" not in outside and "http" not in outside.replace("http://www.w3.org", "")


def test_scenario_text_is_escaped(tmp_path: Path) -> None:
    """Scenario name and description are HTML-escaped, never injected as markup."""
    page = small_run(tmp_path / "run", name="<script>alert(1)</script> & co").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "what-if &lt;b&gt;bold&lt;/b&gt;" in page


def test_year_run_report_stays_small(tmp_path: Path) -> None:
    """A one-year, five-facility, 5-minute run with 200k jobs gives a report under 8 MB,
    with every time-series trace at most MAX_POINTS_PER_TRACE points."""
    facility_ids = [f"site-{c}" for c in "abcde"]
    interval_s = 300.0
    timeseries = year_timeseries(facility_ids, interval_s)
    metadata = make_metadata("a year", facility_ids, 365.0, interval_s)
    write_run_files(tmp_path, timeseries, make_jobs(200_000), metadata, interval_s)
    path = write_report(tmp_path)
    assert path.stat().st_size < MAX_REPORT_BYTES
    grid = TimeGrid.from_run(RunFiles(metadata, {}, timeseries, pl.DataFrame()))
    assert 0 < grid.n_bins <= MAX_POINTS_PER_TRACE
    assert grid.bin_s % interval_s == 0


def test_run_that_recorded_nothing_still_reports(tmp_path: Path) -> None:
    """A run stopped before its first interval (no rows, no jobs) gets a full report."""
    timeseries = Recorder(["site-a"], 10, 300.0, START).timeseries()
    jobs = pl.DataFrame(schema=JOBS_SCHEMA)
    write_run_files(tmp_path, timeseries, jobs, make_metadata("empty", ["site-a"], 1.0, 300), 300)
    page = write_report(tmp_path).read_text()
    assert len(re.findall(r'class="plotly-graph-div"', page)) == len(FIGURE_IDS)
    assert "no intervals recorded" in page and "no job has started" in page


def test_missing_input_file_is_named(tmp_path: Path) -> None:
    """A run folder without kpis.json is refused with the file's name."""
    small_run(tmp_path / "run")
    (tmp_path / "run" / "kpis.json").unlink()
    with pytest.raises(ReportError, match=r"kpis\.json: file not found"):
        write_report(tmp_path / "run")


@pytest.mark.parametrize(
    ("interval_s", "span_s", "max_points", "expected"),
    [
        (300.0, 86400.0, 5000, 300.0),  # short run: no averaging
        (300.0, 365 * 86400.0, 5000, 7200.0),  # a year: 2-hour means
        (600.0, 365 * 86400.0, 10_000, 3600.0),  # hourly
        (240.0, 86400.0, 100, 3600.0),  # 900 s and 1800 s are no multiples of 240 s
    ],
)
def test_choose_bin_s(interval_s: float, span_s: float, max_points: int, expected: float) -> None:
    """The bin is the smallest multiple of the interval among the nice widths that keeps
    the span within max_points bins."""
    bin_s = choose_bin_s(interval_s, span_s, max_points)
    assert bin_s == expected
    assert span_s / bin_s <= max_points


def test_customer_service_figure_shows_asked_and_received_per_customer() -> None:
    """Bars of GPU-hours asked for and received per customer, largest first, with the
    fairness index in the title; realtime and rejected jobs are left out."""
    from twin.report_customers import customer_service_figure

    jobs = pl.DataFrame(
        {
            "type": [
                "ai_inference_batch",
                "model_training",
                "ai_inference_batch",
                "ai_inference_realtime",
                "ai_inference_batch",
            ],
            "customer": ["small", "big", "big", "big", "small"],
            "gpus": [1, 8, 2, 1, 4],
            "work_s": [3600.0, 3600.0, 1800.0, 60.0, 3600.0],
            "served_s": [3600.0, 1800.0, 1800.0, 60.0, 0.0],
            "status": ["completed", "running", "completed", "completed", "rejected"],
        }
    )
    kpis = {"fairness": {"jain": 0.97, "customers": 2}}
    figure = customer_service_figure(jobs, kpis)
    asked, received = figure.data
    assert list(asked.x) == ["big", "small"]
    assert list(asked.y) == pytest.approx([8 * 1.0 + 2 * 0.5, 1.0])
    assert list(received.y) == pytest.approx([8 * 0.5 + 2 * 0.5, 1.0])
    assert "0.970" in figure.layout.title.text
