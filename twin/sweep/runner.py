"""A whole sweep: skip finished runs, run the rest, aggregate, write the outputs.

Output folder ``OUT/``:

- ``runs/<run_key>.json``: one record per finished run (twin.sweep.store); with
  ``keep_runs`` also ``runs/<run_key>/``, the run's full results folder.
- ``sweep.parquet``: one row per run (twin.sweep.aggregate), sorted by grid point, seed.
- ``summary.md``: P10/P50/P90 of the headline KPIs per grid point.
- ``sweep.html``: their distributions (twin.sweep.plots).

The tables are built from the stored records of every run of the plan, whichever sweep
ran them, so a resumed sweep writes the same files as one that ran in one go, and neither
depends on the executor or its number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from twin.recorder import atomic_output
from twin.sweep.aggregate import (
    STATUS_FAILED,
    SUMMARY_KPIS,
    markdown_table,
    percentile_table,
    results_frame,
)
from twin.sweep.execute import RunOutcome, SweepExecutor
from twin.sweep.plan import RunSpec, SweepPlan
from twin.sweep.plots import write_sweep_html
from twin.sweep.store import RunStore

SWEEP_PARQUET = "sweep.parquet"
SUMMARY_MD = "summary.md"


class SweepObserver(Protocol):
    """Told when the runs start and as each finishes (a progress bar, say)."""

    def start(self, total: int, skipped: int) -> None:
        """``total`` runs are about to run; ``skipped`` finished in an earlier sweep."""

    def finished(self, spec: RunSpec, outcome: RunOutcome) -> None:
        """One run finished (``outcome.ok``) or failed."""


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced."""

    out_dir: Path
    frame: pl.DataFrame
    table: pl.DataFrame
    ran: int
    skipped: int
    failures: tuple[tuple[RunSpec, str], ...]

    @property
    def parquet_path(self) -> Path:
        """``OUT/sweep.parquet``."""
        return self.out_dir / SWEEP_PARQUET


def run_sweep(
    plan: SweepPlan,
    out_dir: Path,
    executor: SweepExecutor,
    *,
    keep_runs: bool = False,
    observer: SweepObserver | None = None,
    summary_kpis: Sequence[str] = SUMMARY_KPIS,
) -> SweepResult:
    """Run the unfinished runs of ``plan`` on ``executor`` and write the outputs.

    A run counts as finished when its record is in ``OUT/runs/`` (and, with
    ``keep_runs``, its results folder too). Failed runs are in the result's ``failures``
    and in ``sweep.parquet`` with status ``failed``; the other runs still finish.

    Raises:
        RunStoreError: a stored record is unreadable.
    """
    out_dir = Path(out_dir)
    store = RunStore(out_dir)
    by_key = {spec.run_key: spec for spec in plan.runs}  # equal keys: one run serves both
    pending = [spec for spec in by_key.values() if not _finished(store, spec, keep_runs)]
    skipped = len(by_key) - len(pending)
    keep_dirs = (
        {spec.run_key: str(store.results_dir(spec.run_key).resolve()) for spec in pending}
        if keep_runs
        else {}
    )
    errors: dict[str, str] = {}

    def on_done(outcome: RunOutcome) -> None:
        spec = by_key[outcome.run_key]
        if outcome.kpis is not None and outcome.ok:
            store.save(spec.run_key, spec.overrides, outcome.kpis)
        else:
            errors[spec.run_key] = outcome.error or "no KPIs came back"
        if observer is not None:
            observer.finished(spec, outcome)

    if observer is not None:
        observer.start(len(pending), skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    executor.run(pending, keep_dirs, on_done)

    kpis_by_key = {
        key: store.load(key)["kpis"] for key in by_key if key not in errors and store.has(key)
    }
    frame = results_frame(plan, kpis_by_key, errors)
    table = percentile_table(frame, summary_kpis)
    write_outputs(plan, frame, table, out_dir, summary_kpis)
    failures = tuple(
        (spec, errors[spec.run_key]) for spec in by_key.values() if spec.run_key in errors
    )
    return SweepResult(out_dir, frame, table, len(pending), skipped, failures)


def write_outputs(
    plan: SweepPlan,
    frame: pl.DataFrame,
    table: pl.DataFrame,
    out_dir: Path,
    summary_kpis: Sequence[str] = SUMMARY_KPIS,
) -> None:
    """Write ``sweep.parquet``, ``summary.md`` and ``sweep.html`` into ``out_dir``
    (each atomically)."""
    with atomic_output(out_dir / SWEEP_PARQUET, binary=True) as handle:
        frame.write_parquet(handle)
    title = f"Sweep of {plan.scenario_path.name}"
    failed = frame.filter(pl.col("status") == STATUS_FAILED).height
    seeds = sorted({spec.seed for spec in plan.runs})
    counts = (
        f"{frame.height} runs ({frame.height - failed} finished, {failed} failed): "
        f"{len(plan.points)} grid point(s) x {len(seeds)} seed(s) ({seeds[0]}..{seeds[-1]}). "
        "Percentiles over the finished runs (linear interpolation).\n\n"
    )
    with atomic_output(out_dir / SUMMARY_MD) as handle:
        handle.write(f"# {title}\n\n{counts}{markdown_table(table)}")
    write_sweep_html(out_dir, frame, table, summary_kpis, title)


def _finished(store: RunStore, spec: RunSpec, keep_runs: bool) -> bool:
    if not store.has(spec.run_key):
        return False
    return not keep_runs or store.results_dir(spec.run_key).is_dir()
