"""Terminal progress bar and end-of-run summary table (rich)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from twin.scenario import Scenario


class LiveProgress:
    """A rich ``Progress`` display used as a context manager (started on entry, stopped on
    exit, also on error); subclasses build ``self._progress`` and its rows."""

    _progress: Progress

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()


class ProgressBar(LiveProgress):
    """Shows simulated days done out of the scenario's duration, on stderr."""

    def __init__(self, scenario: Scenario, enabled: bool = True) -> None:
        self._total_days = scenario.duration_days
        self._progress = Progress(
            TextColumn(f"[bold]{scenario.name}[/]"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.1f} sim days"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task("simulate", total=self._total_days)

    def update(self, sim_days_done: float) -> None:
        """Move the bar to ``sim_days_done`` [days]."""
        self._progress.update(self._task, completed=min(sim_days_done, self._total_days))


def print_summary(kpis: dict[str, Any], run_dir: Path) -> None:
    """Print the headline KPIs as a table, then where the results are."""
    console = Console()
    table = Table(title=f"Results — {run_dir}", show_header=True, header_style="bold")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_row("net", _usd(kpis["net_usd"]))
    for stream, value in kpis["revenue_usd"].items():
        if stream != "total":
            table.add_row(f"  revenue {stream}", _usd(value))
    for stream, value in kpis["cost_usd"].items():
        if stream != "total":
            table.add_row(f"  cost {stream}", _usd(value))
    table.add_row("energy", f"{kpis['energy_mwh']:,.1f} MWh")
    for name, value in kpis["utilization"].items():
        table.add_row(f"utilization {name}", _pct(value))
    for kind, sla in kpis["sla"].items():
        table.add_row(f"SLA {kind}", _pct(sla.get("met_fraction")))
    workloads = kpis["workloads"]
    table.add_row(
        "workloads",
        f"{workloads['submitted']:,} in / {workloads['completed']:,} done / "
        f"{workloads['rejected']:,} rejected",
    )
    table.add_row("simulated", f"{kpis['sim_days']:g} days in {kpis['wall_s']:.1f} s wall")
    console.print(table)
    console.print(f"report: {run_dir / 'report.html'}")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} USD"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
