"""Command line for parameter sweeps.

sweep SCENARIO --grid PATH=V1,V2 [--grid PATH2=A,B ...] [--seeds N]
      [--workers W | --scheduler ADDRESS] [--out DIR] [--days D] [--set PATH=VALUE ...]
      [--keep-runs] [--quiet]
    run every grid point (the cross product of the --grid axes; values parsed as YAML like
    --set) with N Monte Carlo seeds (the scenario seed + 0 .. N-1), on a local Dask cluster
    of W worker processes (default: one per CPU), on an existing scheduler, or in this
    process with --workers 0. Writes DIR/sweep.parquet (one row per run), DIR/summary.md
    and DIR/sweep.html (P10/P50/P90 per grid point) and DIR/runs/ (one record per finished
    run). Running the same sweep again skips the runs already finished.

Exit codes: 0 every run finished; 1 some run failed (each is listed with its grid point
and seed; the others still ran); 2 bad input, found before any run starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from twin.progress import LiveProgress

if TYPE_CHECKING:
    import polars as pl

    from twin.sweep import RunOutcome, RunSpec, SweepPlan

EXIT_RUN_FAILED = 1


def add_sweep_parser(commands: Any) -> None:
    """Add ``sweep`` to the main parser's subparsers."""
    from twin.cli import _add_set

    sweep = commands.add_parser(
        "sweep", help="run a parameter grid x Monte Carlo seeds (on Dask) and aggregate"
    )
    sweep.add_argument("scenario", type=Path, help="scenario YAML file")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2",
        help="a grid axis: a scenario path and its values (YAML), e.g. "
        "--grid facilities[west-mine].power_cap_mw=8,9.5 --grid policy.name=strike,greedy",
    )
    sweep.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="Monte Carlo runs per grid point, with seeds scenario seed + 0 .. N-1",
    )
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="W",
        help="worker processes of the local Dask cluster (default: one per CPU); "
        "0 runs in this process without Dask",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler, e.g. tcp://host:8786 (workers need this project)",
    )
    sweep.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder (default results/<name>-sweep)"
    )
    sweep.add_argument("--days", type=float, help="override the duration [days]")
    _add_set(sweep)
    sweep.add_argument(
        "--keep-runs",
        action="store_true",
        help="also keep each run's full results folder under DIR/runs/<run_key>/",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar or table")
    sweep.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from twin.cli import InputError, _overrides
    from twin.sweep import (
        DaskExecutor,
        SerialExecutor,
        SweepInputError,
        build_plan,
        parse_grid_args,
        run_sweep,
    )
    from twin.sweep.execute import SweepExecutor
    from twin.sweep.store import RunStoreError

    try:
        axes = parse_grid_args(args.grid)
        executor: SweepExecutor = (
            SerialExecutor()
            if args.workers == 0
            else DaskExecutor(workers=args.workers, scheduler=args.scheduler)
        )
        plan = build_plan(args.scenario, axes, args.seeds, _overrides(args))
        name = plan_name(plan)
        out = args.out or Path("results") / f"{name}-sweep"
        with SweepProgress(enabled=not args.quiet) as progress:
            result = run_sweep(plan, out, executor, keep_runs=args.keep_runs, observer=progress)
    except (SweepInputError, RunStoreError) as error:
        raise InputError(str(error)) from None
    if result.skipped:
        print(f"skipped {result.skipped} run(s) finished before", file=sys.stderr)
    for spec, reason in result.failures:
        label = plan.labels[spec.point]
        print(f"error: run failed at {label}, seed {spec.seed}: {reason}", file=sys.stderr)
    if args.quiet:
        print(result.out_dir)
    else:
        print_sweep_summary(plan, result.table, result.out_dir)
    return EXIT_RUN_FAILED if result.failures else 0


def plan_name(plan: SweepPlan) -> str:
    """The scenario's name (from its first run), for the default output folder."""
    from twin.sweep.plan import spec_scenario

    return spec_scenario(plan.runs[0]).name


class SweepProgress(LiveProgress):
    """Runs done out of runs to do, with the count of failures, on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self._failed = 0
        self._progress = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs  {task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task("sweep", total=None, failed=0)

    def start(self, total: int, skipped: int) -> None:
        """Set the number of runs to do (``skipped`` runs are not counted)."""
        self._progress.update(self._task, total=total, completed=0)

    def finished(self, spec: RunSpec, outcome: RunOutcome) -> None:
        """Advance by one run; count it when it failed."""
        if not outcome.ok:
            self._failed += 1
        self._progress.update(self._task, advance=1, failed=self._failed)


def print_sweep_summary(plan: SweepPlan, table: pl.DataFrame, out_dir: Path) -> None:
    """Net revenue P10/P50/P90 per grid point as a table (one column per grid axis), then
    where the files are."""
    from twin.sweep.grid import value_label

    console = Console()
    shown = Table(title=f"Sweep — {escape(str(out_dir))}", header_style="bold")
    shown.add_column("#", justify="right")
    for axis in plan.axes:
        shown.add_column(escape(axis.path), overflow="fold")
    for heading in ("runs", "net P10", "net P50", "net P90"):
        shown.add_column(heading, justify="right")
    for row in table.filter(table["kpi"] == "net_usd").iter_rows(named=True):
        point = plan.points[row["point"]]
        values = [escape(value_label(point[axis.path])) for axis in plan.axes]
        shown.add_row(
            str(row["point"]),
            *values,
            str(row["runs"]),
            _usd(row["p10"]),
            _usd(row["p50"]),
            _usd(row["p90"]),
        )
    console.print(shown)
    console.print(f"all KPIs: {out_dir / 'summary.md'}, plots: {out_dir / 'sweep.html'}")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} USD"
