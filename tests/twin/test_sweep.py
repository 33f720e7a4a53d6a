"""Tests of parameter sweeps: grid parsing, run keys and resume, Dask vs in-process runs,
failed runs, and the aggregated tables."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.cli import main
from twin.scenario import ScenarioError
from twin.sweep import (
    SUMMARY_KPIS,
    DaskExecutor,
    GridAxis,
    RunOutcome,
    RunSpec,
    RunStore,
    SerialExecutor,
    SweepInputError,
    SweepPlan,
    SweepResult,
    build_plan,
    flatten,
    parse_grid_args,
    percentile_table,
    run_sweep,
)
from twin.sweep.aggregate import PARAM_PREFIX, STATUS_FAILED, STATUS_OK
from twin.sweep.grid import grid_points, parse_grid_arg
from twin.sweep.plan import run_key
from twin.sweep.plots import SWEEP_HTML
from twin.sweep.runner import SUMMARY_MD, SWEEP_PARQUET

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
SHORT_DAYS = 0.05
# Replaying the 2023-2024 fee history on the baseline's July 2025 dates passes validation
# but fails when the run builds its signals (the file does not cover those dates).
WORKING_FEES = "{kind: synthetic, mean_btc_per_block: 0.03}"
FAILING_FEES = "{kind: historical, file: btc_blockchaincom_daily_2023-04_2024-04.csv}"
FEES_GRID = f"market.fees={WORKING_FEES},{FAILING_FEES}"
SEEDS = 2


def _sweep_args(out: Path, *extra: str) -> list[str]:
    return [
        "sweep",
        str(BASELINE),
        "--grid",
        FEES_GRID,
        "--grid",
        "policy.name=strike,always_on",
        "--seeds",
        str(SEEDS),
        "--days",
        str(SHORT_DAYS),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def _plan() -> SweepPlan:
    axes = parse_grid_args([FEES_GRID, "policy.name=strike,always_on"])
    return build_plan(BASELINE, axes, SEEDS, {"duration_days": SHORT_DAYS})


def _child_processes() -> set[int]:
    """Child processes of this one, apart from multiprocessing's resource tracker (one per
    parent process, shared by everything that spawns, and kept to the end on purpose)."""
    pids = set()
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # exited (or a zombie) since the listing: not running
            continue
        if "multiprocessing.resource_tracker" not in command:
            pids.add(child.pid)
    return pids


@pytest.fixture(scope="module")
def dask_sweep(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, int, str, set[int], set[int]]:
    """The sweep through the command line on a two-worker local Dask cluster: its output
    folder, exit code, stderr, and this process's children before and after."""
    out = tmp_path_factory.mktemp("dask") / "sweep"
    before = _child_processes()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(_sweep_args(out, "--workers", "2"))
    return out, code, errors.getvalue(), before, _child_processes()


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    """The same sweep run in this process, without Dask."""
    out = tmp_path_factory.mktemp("serial") / "sweep"
    return run_sweep(_plan(), out, SerialExecutor())


# ---------------------------------------------------------------------- grid parsing


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("policy.name", "expected PATH=VALUE1,VALUE2"),
        ("=1,2", "expected PATH=VALUE1,VALUE2"),
        ("policy.name=", "empty value list"),
        ("policy.name=  ", "empty value list"),
        ("duration_days=1,,2", "not a valid YAML list"),
        ("duration_days=1,1", "appears twice"),
        ("seed=1,2", "use --seeds"),
    ],
)
def test_bad_grid_argument_is_named(argument: str, reason: str) -> None:
    """Each malformed --grid argument is rejected with the argument and the reason."""
    with pytest.raises(SweepInputError) as caught:
        parse_grid_arg(argument)
    assert f"--grid {argument!r}" in str(caught.value)
    assert reason in str(caught.value)


def test_grid_path_given_twice_is_rejected() -> None:
    """Two --grid arguments for one path are an error naming the path."""
    with pytest.raises(SweepInputError, match="duration_days: the same path"):
        parse_grid_args(["duration_days=1,2", "duration_days=3"])


def test_grid_values_may_hold_commas() -> None:
    """Values are one YAML flow list, so mappings with commas are single values."""
    axis = parse_grid_arg("grid.prices={kind: constant, value: 30},{kind: synthetic}")
    assert axis == GridAxis(
        "grid.prices", ({"kind": "constant", "value": 30}, {"kind": "synthetic"})
    )


@given(
    st.lists(
        st.integers(-1000, 1000) | st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True),
        min_size=1,
        max_size=6,
        unique_by=str,
    )
)
def test_grid_values_round_trip(values: list[Any]) -> None:
    """Plain comma-separated numbers and words parse back to the same values, in order."""
    yaml_words = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}
    if any(isinstance(v, str) and v in yaml_words for v in values):
        return  # YAML reads these as booleans or null, as --set does
    axis = parse_grid_arg("x=" + ",".join(str(value) for value in values))
    assert list(axis.values) == values


@given(st.lists(st.integers(1, 4), min_size=0, max_size=4))
def test_grid_points_are_the_cross_product(sizes: list[int]) -> None:
    """There is one point per combination of axis values, each distinct, last axis
    fastest."""
    axes = [GridAxis(f"a{i}", tuple(range(size))) for i, size in enumerate(sizes)]
    points = grid_points(axes)
    assert len(points) == math.prod(sizes)
    assert len({json.dumps(point, sort_keys=True) for point in points}) == len(points)
    expected = itertools.product(*(axis.values for axis in axes))
    assert [tuple(point.values()) for point in points] == list(expected)


def test_unknown_scenario_path_is_a_scenario_error() -> None:
    """A grid value that does not fit the schema fails at planning, naming the field."""
    axes = parse_grid_args(["market.no_such_field=1,2"])
    with pytest.raises(ScenarioError, match=r"market\.no_such_field: unknown field"):
        build_plan(BASELINE, axes, 1, {"duration_days": SHORT_DAYS})


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("policy.name", "--grid 'policy.name': expected PATH=VALUE1,VALUE2"),
        ("policy.name=", "--grid 'policy.name=': empty value list"),
        ("facilities[nowhere].power_cap_mw=1,2", "no item 'nowhere'"),
        ("facilities[west-mine].power_cap_mw=5,-1", "power_cap_mw: must be > 0"),
    ],
)
def test_cli_bad_grid_exits_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grid: str, message: str
) -> None:
    """A bad --grid exits 2 with a message naming it, and nothing is run or written."""
    out = tmp_path / "sweep"
    code = main(
        ["sweep", str(BASELINE), "--grid", grid, "--workers", "2", "--out", str(out), "--quiet"]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_zero_seeds_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--seeds 0 is bad input naming the option."""
    code = main(["sweep", str(BASELINE), "--seeds", "0", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--seeds 0: must be at least 1" in capsys.readouterr().err


# ---------------------------------------------------------------------- plan and keys


def test_run_keys_are_stable_and_distinct() -> None:
    """Planning twice gives the same keys; every (grid point, seed) has its own key; keys
    follow the overrides and the seed."""
    first, second = _plan(), _plan()
    keys = [spec.run_key for spec in first.runs]
    assert keys == [spec.run_key for spec in second.runs]
    assert len(set(keys)) == len(first.points) * SEEDS
    mapping = {"name": "x", "seed": 1}
    assert run_key(mapping, {"seed": 1}) == run_key(dict(mapping), {"seed": 1})
    assert run_key(mapping, {"seed": 1}) != run_key(mapping, {"seed": 2})


def test_seeds_count_up_from_the_scenario_seed() -> None:
    """Run i of every grid point uses the scenario seed (after --set) + i."""
    plan = build_plan(BASELINE, (), 3, {"seed": 7, "duration_days": SHORT_DAYS})
    assert [spec.seed for spec in plan.runs] == [7, 8, 9]
    assert plan.labels == ("base",)


# ---------------------------------------------------------------------- execution


def test_dask_sweep_matches_serial_runs(dask_sweep: Any, serial_sweep: SweepResult) -> None:
    """Two Dask workers give the same table as the runs done one by one in-process."""
    out, _, _, _, _ = dask_sweep
    from_dask = pl.read_parquet(out / SWEEP_PARQUET)
    serial = pl.read_parquet(serial_sweep.parquet_path)
    assert from_dask.equals(serial)
    assert serial_sweep.frame.equals(serial)


def test_dask_sweep_reports_failed_runs_and_finishes_the_others(dask_sweep: Any) -> None:
    """Runs that fail on a worker are listed with their grid point and seed, the others
    finish, and the exit code is 1."""
    out, code, errors, _, _ = dask_sweep
    assert code == 1
    frame = pl.read_parquet(out / SWEEP_PARQUET)
    fees = f"{PARAM_PREFIX}market.fees"
    failed = frame.filter(pl.col("status") == STATUS_FAILED)
    assert failed[fees].str.contains("historical").all()
    assert failed.height == 2 * SEEDS  # both policies x seeds
    assert failed["error"].str.contains("SignalRangeError").all()
    assert failed["net_usd"].is_null().all()
    finished = frame.filter(pl.col("status") == STATUS_OK)
    assert finished[fees].str.contains("synthetic").all()
    assert finished["net_usd"].is_not_null().all()
    for row in failed.iter_rows(named=True):
        assert f"run failed at {row['label']}, seed {row['seed']}: SignalRangeError" in errors


def test_dask_sweep_leaves_no_processes(dask_sweep: Any) -> None:
    """The local cluster's worker processes are gone when the sweep returns."""
    _, _, _, before, after = dask_sweep
    assert after <= before


def test_parquet_has_one_row_per_grid_point_and_seed(dask_sweep: Any) -> None:
    """sweep.parquet holds each (grid point, seed) once, sorted by grid point then seed,
    with the grid values and flattened KPI columns."""
    out, _, _, _, _ = dask_sweep
    frame = pl.read_parquet(out / SWEEP_PARQUET)
    plan = _plan()
    assert frame.height == len(plan.points) * SEEDS
    assert frame.select("point", "seed").rows() == [(s.point, s.seed) for s in plan.runs]
    assert frame.select("point", "seed").is_duplicated().sum() == 0
    assert frame["seed"].unique().sort().to_list() == [42, 43]
    assert frame[f"{PARAM_PREFIX}policy.name"].to_list() == [
        point["policy.name"] for point in plan.points for _ in range(SEEDS)
    ]
    assert {"net_usd", "revenue_usd.total", "utilization.gpu"} <= set(frame.columns)
    assert "wall_s" not in frame.columns
    assert (out / SUMMARY_MD).is_file()
    page = (out / SWEEP_HTML).read_text(encoding="utf-8")
    assert "Failed runs" in page
    assert page.count("Plotly.newPlot") == len(SUMMARY_KPIS)


def test_percentile_table_matches_numpy_on_the_parquet(dask_sweep: Any) -> None:
    """P10/P50/P90 per grid point are numpy's percentiles of the finished runs' values."""
    out, _, _, _, _ = dask_sweep
    frame = pl.read_parquet(out / SWEEP_PARQUET)
    table = percentile_table(frame)
    for row in table.iter_rows(named=True):
        values = (
            frame.filter((pl.col("point") == row["point"]) & (pl.col("status") == STATUS_OK))[
                row["kpi"]
            ]
            .drop_nulls()
            .to_numpy()
        )
        assert row["runs"] == values.size
        if values.size == 0:
            assert row["p50"] is None
            continue
        expected = np.percentile(values, [10, 50, 90])
        assert [row["p10"], row["p50"], row["p90"]] == pytest.approx(expected, rel=1e-12)
    assert table.filter(pl.col("runs") > 0)["point"].unique().sort().to_list() == [0, 1]
    assert set(table["kpi"]) == set(SUMMARY_KPIS)


def test_resume_skips_finished_runs(dask_sweep: Any) -> None:
    """Re-running a sweep skips every stored run (only the failed ones run again) and
    writes the same table; the command line says how many were skipped."""
    out, _, _, _, _ = dask_sweep
    before = pl.read_parquet(out / SWEEP_PARQUET)
    finished = before.filter(pl.col("status") == STATUS_OK).height
    result = run_sweep(_plan(), out, SerialExecutor())
    assert result.skipped == finished
    assert result.ran == before.height - finished
    assert pl.read_parquet(out / SWEEP_PARQUET).equals(before)
    assert main(_sweep_args(out, "--workers", "0")) == 1


def test_resume_uses_stored_records(tmp_path: Path) -> None:
    """A run whose record is stored is not run again: its stored KPIs are what the table
    shows."""
    plan = build_plan(BASELINE, (), 1, {"duration_days": SHORT_DAYS})
    store = RunStore(tmp_path)
    spec = plan.runs[0]
    store.save(spec.run_key, spec.overrides, {"net_usd": 123.0, "energy_mwh": 4.5})
    result = run_sweep(plan, tmp_path, SerialExecutor())
    assert (result.ran, result.skipped) == (0, 1)
    assert result.frame["net_usd"].to_list() == [123.0]


def test_keep_runs_writes_each_results_folder(tmp_path: Path) -> None:
    """With keep_runs every run's full results folder is kept next to its record, and its
    kpis.json is the KPIs of the table row."""
    plan = build_plan(BASELINE, (), 1, {"duration_days": SHORT_DAYS})
    result = run_sweep(plan, tmp_path, SerialExecutor(), keep_runs=True)
    run_dir = RunStore(tmp_path).results_dir(plan.runs[0].run_key)
    kpis = json.loads((run_dir / "kpis.json").read_text(encoding="utf-8"))
    assert (run_dir / "timeseries.parquet").is_file()
    assert result.frame["net_usd"].to_list() == [kpis["net_usd"]]


def test_flatten_uses_dotted_keys() -> None:
    """Nested KPI mappings become dotted keys; empty mappings vanish."""
    flat = flatten({"a": 1, "b": {"c": 2, "d": {"e": None}}, "f": {}})
    assert flat == {"a": 1, "b.c": 2, "b.d.e": None}


def test_unreadable_record_names_the_file(tmp_path: Path) -> None:
    """A corrupt run record is an error naming its file."""
    store = RunStore(tmp_path)
    store.folder.mkdir(parents=True)
    store.record_path("abc").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"abc\.json: not valid JSON"):
        store.load("abc")


def test_sweep_on_an_existing_scheduler(tmp_path: Path) -> None:
    """Given a scheduler address, the runs go to that cluster's workers and give the same
    table as in-process runs."""
    import distributed  # the cluster extra, installed by make

    plan = build_plan(
        BASELINE,
        parse_grid_args(["policy.name=strike,always_on"]),
        1,
        {"duration_days": SHORT_DAYS},
    )
    serial = run_sweep(plan, tmp_path / "serial", SerialExecutor())
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # 8787 may be taken
        silence_logs=logging.ERROR,
    ) as cluster:
        remote = run_sweep(
            plan, tmp_path / "remote", DaskExecutor(scheduler=cluster.scheduler_address)
        )
    assert remote.ran == len(plan.runs)
    assert remote.frame.equals(serial.frame)


@pytest.mark.parametrize(
    ("workers", "scheduler", "message"),
    [
        (2, "tcp://127.0.0.1:8786", "give one or the other"),
        (-1, None, "--workers -1: must be at least 1"),
        (None, "nonsense://", "--scheduler nonsense://: expected [tcp://]host:port"),
    ],
)
def test_bad_executor_options_are_named(
    workers: int | None, scheduler: str | None, message: str
) -> None:
    """Conflicting or malformed cluster options are rejected before anything starts."""
    with pytest.raises(SweepInputError) as caught:
        DaskExecutor(workers=workers, scheduler=scheduler)
    assert message in str(caught.value)


class _InterruptAfterFirstRun:
    """An observer that raises KeyboardInterrupt (as Ctrl-C would) when the first run
    finishes."""

    def start(self, total: int, skipped: int) -> None:
        """Nothing to set up."""

    def finished(self, spec: RunSpec, outcome: RunOutcome) -> None:
        """Interrupt the sweep."""
        raise KeyboardInterrupt


@pytest.mark.parametrize("executor", ["serial", "dask"])
def test_interrupted_sweep_keeps_finished_runs(tmp_path: Path, executor: str) -> None:
    """Ctrl-C stops the sweep, keeps the runs finished so far for the next try (which
    skips them), and leaves no worker processes behind."""
    plan = build_plan(
        BASELINE,
        parse_grid_args(["policy.name=strike,always_on"]),
        1,
        {"duration_days": SHORT_DAYS},
    )
    before = _child_processes()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            plan,
            tmp_path,
            SerialExecutor() if executor == "serial" else DaskExecutor(workers=1),
            observer=_InterruptAfterFirstRun(),
        )
    assert _child_processes() <= before
    stored = [spec for spec in plan.runs if RunStore(tmp_path).has(spec.run_key)]
    assert len(stored) == 1
    resumed = run_sweep(plan, tmp_path, SerialExecutor())
    assert (resumed.skipped, resumed.ran) == (1, len(plan.runs) - 1)
