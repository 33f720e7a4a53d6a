"""Backtest: run several dispatch policies on one world and compare what each earns.

``python run.py backtest SCENARIO`` (see twin/cli.py) does, in order:

1. :func:`prepare_scenario` loads the scenario with its ``--set`` overrides and applies the
   backtest options: ``--prices FILE`` replaces ``grid.prices`` with a replay of a user's
   ERCOT settlement point price file (day-ahead hourly or real-time 15-min),
   ``--settlement-point`` moves every facility to one settlement point, and
   ``--start``/``--end`` (calendar dates in Central Prevailing Time, the end exclusive) set
   the scenario's ``start`` and ``duration_days``. Every problem is a
   :class:`BacktestError` naming the option.
2. :func:`run_backtest` runs each policy on the *same* world: the same scenario and seed,
   so every policy sees identical prices, BTC economics, grid events and job arrivals;
   only the ``policy`` block differs (:func:`scenario_for_policy`). Each run is written as
   usual into ``DIR/<policy>/``; then ``DIR/backtest.json`` (:func:`backtest_summary`) and
   ``DIR/backtest.html`` (twin.backtest_report).

Comparison against the perfect-foresight ``oracle``: ``capture_vs_oracle`` is a policy's
net over the oracle's net (``None`` when the oracle was not run or did not earn a positive
net), ``regret_usd`` the oracle's net minus the policy's.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import TypeAdapter
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from datasets.ercot import CPT_ZONE, PriceTable
from datasets.sources import load_price_table
from twin.kpis import dump_kpis
from twin.progress import LiveProgress
from twin.scenario import (
    ConstantValue,
    HistoricalSeries,
    Scenario,
    load_merged_mapping,
    set_path,
    validate_scenario,
)
from twin.scenario import Policy as PolicyConfig

KNOWN_POLICIES: tuple[str, ...] = ("always_on", "strike", "greedy", "mpc", "oracle")
"""Every policy the backtest can run, in the order it runs and reports them."""

DEFAULT_POLICIES: tuple[str, ...] = KNOWN_POLICIES
ORACLE = "oracle"
BACKTEST_JSON = "backtest.json"
BACKTEST_HTML = "backtest.html"
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SETTLEMENT_POINT_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")
PRICE_FORMATS: Mapping[str, str] = {
    "dam": "ERCOT day-ahead hourly",
    "rtm": "ERCOT real-time 15-min",
}

_POLICY_ADAPTER: TypeAdapter[Any] = TypeAdapter(PolicyConfig)


class BacktestError(ValueError):
    """Bad backtest input; the message names the option (``--prices``, ``--end`` ...)."""


# ---------------------------------------------------------------------- parsing options


def parse_policies(text: str | None) -> tuple[str, ...]:
    """Policy names from a comma-separated list (``None``: the defaults), in the order given,
    duplicates dropped.

    Raises:
        BacktestError: an unknown name or an empty list (names ``--policies``).
    """
    if text is None:
        return DEFAULT_POLICIES
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise BacktestError(f"--policies: empty list; choose from {', '.join(KNOWN_POLICIES)}")
    _check_known(names)
    return tuple(dict.fromkeys(names))


def _check_known(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in KNOWN_POLICIES]
    if unknown:
        raise BacktestError(
            f"--policies: unknown policy {unknown[0]!r}; known: {', '.join(KNOWN_POLICIES)}"
        )


def parse_date(text: str, option: str) -> date:
    """A calendar date written ``YYYY-MM-DD``.

    Raises:
        BacktestError: another format or an impossible date (names ``option``).
    """
    if not DATE_PATTERN.match(text.strip()):
        raise BacktestError(f"{option} {text!r}: expected a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise BacktestError(f"{option} {text!r}: not a valid date ({error})") from None


@dataclass(frozen=True)
class Window:
    """The simulated period ``[start, end)`` as tz-aware datetimes."""

    start: datetime
    end: datetime

    @property
    def duration_days(self) -> float:
        """Length [days of 86,400 s]; a window over a DST change is 1/24 day off whole.

        Both ends go to UTC first: Python subtracts two datetimes that share a tzinfo as
        wall-clock times, which would hide the DST hour."""
        return (self.end.astimezone(UTC) - self.start.astimezone(UTC)).total_seconds() / 86400.0


def local_midnight(day: date, zone: str = CPT_ZONE) -> datetime:
    """00:00 of ``day`` in ``zone`` (ERCOT's Central Prevailing Time by default)."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))


def resolve_window(scenario: Scenario, start: date | None, end: date | None) -> Window:
    """The backtest window from ``start``/``end`` dates (local midnights, end exclusive).

    Without dates it is the scenario's own start and duration; ``start`` alone moves the
    scenario's duration to that day (the same number of local days); ``end`` alone keeps
    the scenario's start.

    Raises:
        BacktestError: the end is not after the start (names ``--end``).
    """
    window_start = local_midnight(start) if start is not None else scenario.start
    if end is not None:
        window_end = local_midnight(end)
    else:  # wall-clock addition on a ZoneInfo start keeps local midnights across DST
        window_end = window_start + timedelta(days=scenario.duration_days)
    if window_end <= window_start:
        start_text = (
            f"--start {start}"
            if start is not None
            else f"the scenario start {_local(window_start)}"
        )
        end_text = f"--end {end}" if end is not None else f"the scenario end {_local(window_end)}"
        raise BacktestError(f"{end_text} must be after {start_text}")
    return Window(window_start, window_end)


# ---------------------------------------------------------------------- the scenario


def prepare_scenario(
    scenario_path: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    prices_file: Path | None = None,
    settlement_point: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Scenario:
    """The scenario a backtest runs: the file, its ``overrides`` (dotted paths, as
    ``--set``), then the backtest options (see the module docstring).

    Raises:
        ScenarioError: the scenario file or an override is invalid.
        DataFileError: the prices file cannot be read as an ERCOT file.
        BacktestError: a bad option value, a settlement point the prices file lacks (the
            message lists those it has), or a window the file does not cover (both ranges).
    """
    scenario_path = Path(scenario_path)
    data = load_merged_mapping(scenario_path)
    for key, value in (overrides or {}).items():
        set_path(data, key, value, source=str(scenario_path))
    source, base_dir = str(scenario_path), scenario_path.parent
    scenario = validate_scenario(data, source=source, base_dir=base_dir)
    window = resolve_window(scenario, start, end)

    if settlement_point is not None:
        if not SETTLEMENT_POINT_PATTERN.match(settlement_point):
            raise BacktestError(
                f"--settlement-point {settlement_point!r}: must match "
                f"{SETTLEMENT_POINT_PATTERN.pattern} (e.g. HB_WEST)"
            )
        for index in range(len(scenario.facilities)):
            set_path(data, f"facilities[{index}].settlement_point", settlement_point)
    points = (
        [settlement_point]
        if settlement_point is not None
        else sorted({f.settlement_point for f in scenario.facilities})
    )

    if prices_file is not None:
        path = Path(prices_file).expanduser().resolve()
        if not path.is_file():
            raise BacktestError(f"--prices {prices_file}: file not found")
        table = load_price_table(path)
        points_option = "--settlement-point" if settlement_point is not None else "--prices"
        check_price_table(table, points, window, "--prices", points_option)
        data.setdefault("grid", {})["prices"] = {"kind": "historical", "file": str(path)}
    elif settlement_point is not None and isinstance(scenario.grid.prices, HistoricalSeries):
        table = load_price_table(scenario.grid.prices.file)
        _check_points(table, points, "--settlement-point")

    if start is not None or end is not None:
        data["start"] = window.start.isoformat()
        data["duration_days"] = window.duration_days
    return validate_scenario(data, source=source, base_dir=base_dir)


def check_price_table(
    table: PriceTable,
    settlement_points: Sequence[str],
    window: Window,
    option: str,
    points_option: str | None = None,
) -> None:
    """Check that ``table`` is an energy price file holding every settlement point and
    covering ``window`` without gaps.

    Raises:
        BacktestError: naming ``option`` (``points_option`` for a missing settlement point,
            listing the points the file has), with the window and the file's coverage when
            the file falls short.
    """
    if table.kind not in PRICE_FORMATS:
        raise BacktestError(
            f"{option} {table.source}: this is an ancillary-service price file; energy "
            "prices need an ERCOT settlement point price file (day-ahead hourly or "
            "real-time 15-min)"
        )
    _check_points(table, settlement_points, points_option or option)
    start = table.covered_start.to_pydatetime()
    end = table.covered_end.to_pydatetime()
    if window.start < start or window.end > end:
        raise BacktestError(
            f"{option} {table.source}: the window {_local(window.start)} to "
            f"{_local(window.end)} is not covered; the file covers {_local(start)} to "
            f"{_local(end)} ({CPT_ZONE}); choose a window inside it with --start/--end"
        )
    gap = _first_gap(table, window)
    if gap is not None:
        raise BacktestError(
            f"{option} {table.source}: no prices from {_local(gap[0])} to {_local(gap[1])}, "
            f"inside the window {_local(window.start)} to {_local(window.end)}"
        )


def _first_gap(table: PriceTable, window: Window) -> tuple[datetime, datetime] | None:
    """The first stretch inside ``window`` with no interval in ``table``: (start, end),
    the end being the next interval the file has (or the window's end)."""
    starts = pd.DatetimeIndex(table.frame.index)
    window_start = pd.Timestamp(window.start.astimezone(UTC))
    window_end = pd.Timestamp(window.end.astimezone(UTC))
    first = max(int(starts.searchsorted(window_start, side="right")) - 1, 0)
    after = int(starts.searchsorted(window_end, side="left"))  # first row at/after the end
    rows = starts[first : after + 1]
    interval = pd.Timedelta(seconds=table.interval_s)
    ends = rows[:-1] + interval  # where each row's interval stops
    gaps = np.flatnonzero((rows[1:] > ends) & (ends < window_end))
    if gaps.size:
        index = int(gaps[0])
        return ends[index].to_pydatetime(), rows[index + 1].to_pydatetime()
    if len(rows) and rows[-1] + interval < window_end:  # the file stops inside the window
        return (rows[-1] + interval).to_pydatetime(), window_end.to_pydatetime()
    return None


def _check_points(table: PriceTable, points: Sequence[str], option: str) -> None:
    missing = [point for point in points if point not in table.columns]
    if not missing:
        return
    available = ", ".join(table.columns)
    if option == "--settlement-point":
        raise BacktestError(
            f"--settlement-point {missing[0]}: not in {table.source}; it has {available}"
        )
    raise BacktestError(
        f"{option} {table.source}: no settlement point {missing[0]}; it has {available}; "
        "choose one for every facility with --settlement-point"
    )


def scenario_for_policy(scenario: Scenario, name: str) -> Scenario:
    """``scenario`` with policy ``name``: the scenario's own policy settings when it already
    names that policy, the schema defaults otherwise. Nothing else changes, so the world
    (signals, arrivals, seed) is the same for every policy."""
    if scenario.policy.name == name:
        return scenario
    policy = _POLICY_ADAPTER.validate_python({"name": name})
    return scenario.model_copy(update={"policy": policy})


def _local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(CPT_ZONE)).strftime("%Y-%m-%d %H:%M %Z")


# ---------------------------------------------------------------------- running


class BacktestObserver(Protocol):
    """Told how the backtest advances (a progress display, say)."""

    def policy_started(self, name: str) -> None: ...

    def policy_progress(self, name: str, sim_days_done: float) -> None: ...

    def policy_finished(self, name: str, kpis: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class BacktestResult:
    """What :func:`run_backtest` wrote: the folder, ``backtest.json`` content and files."""

    out_dir: Path
    summary: dict[str, Any]
    json_path: Path
    html_path: Path


def unavailable_policies(scenario: Scenario, policies: Sequence[str]) -> dict[str, str]:
    """The policies of ``policies`` that cannot be built for ``scenario``, with the reason.

    The world is built first, so a problem with the scenario's data (a file that does not
    cover the run, say) raises its own error instead of being blamed on a policy.

    Raises:
        DataFileError, SignalRangeError, ValueError: the world itself cannot be built.
    """
    from twin.engine import build, build_world

    build_world(scenario)
    reasons: dict[str, str] = {}
    for name in policies:
        try:
            build(scenario_for_policy(scenario, name))
        except ValueError as error:  # a policy the engine cannot build yet
            reasons[name] = str(error)
    gc.collect()
    return reasons


def run_backtest(
    scenario: Scenario,
    policies: Sequence[str],
    out_dir: Path,
    *,
    observer: BacktestObserver | None = None,
    skipped: Mapping[str, str] | None = None,
    scenario_file: str | None = None,
) -> BacktestResult:
    """Run each policy on ``scenario``'s world, write ``out_dir/<policy>/`` results,
    ``backtest.json`` and ``backtest.html``.

    Every policy is built before any runs, so a policy that cannot run fails at once.
    ``skipped`` (policy -> reason) is recorded in backtest.json for policies the caller
    left out; ``scenario_file`` is recorded as the scenario's source.

    Raises:
        BacktestError: a policy cannot be built (names ``--policies`` and the policy).
    """
    from twin.backtest_report import write_backtest_report
    from twin.engine import build

    names = tuple(dict.fromkeys(policies))
    if not names:
        raise BacktestError("--policies: no policy to run")
    _check_known(names)
    reasons = unavailable_policies(scenario, names)
    if reasons:
        name, reason = next(iter(reasons.items()))
        runnable = ",".join(n for n in names if n not in reasons) or "always_on,strike"
        raise BacktestError(
            f"--policies: {name} cannot run ({reason}); leave it out, e.g. --policies {runnable}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kpis_by_policy: dict[str, dict[str, Any]] = {}
    for name in names:
        if observer is not None:
            observer.policy_started(name)
        twin = build(scenario_for_policy(scenario, name))
        progress = None
        if observer is not None:
            progress = _bind_progress(observer, name)
        result = twin.run(progress=progress)
        result.write(out_dir / name)
        kpis_by_policy[name] = result.kpis
        if observer is not None:
            observer.policy_finished(name, result.kpis)
        del twin, result  # a long run's arrays are large: free them before the next policy
        gc.collect()
    summary = backtest_summary(
        scenario, kpis_by_policy, skipped=skipped, scenario_file=scenario_file
    )
    json_path = dump_kpis(summary, out_dir / BACKTEST_JSON)
    html_path = write_backtest_report(out_dir)
    return BacktestResult(out_dir, summary, json_path, html_path)


def _bind_progress(observer: BacktestObserver, name: str) -> Any:
    def report(sim_days_done: float) -> None:
        observer.policy_progress(name, sim_days_done)

    return report


# ---------------------------------------------------------------------- summary


def backtest_summary(
    scenario: Scenario,
    kpis_by_policy: Mapping[str, Mapping[str, Any]],
    *,
    skipped: Mapping[str, str] | None = None,
    scenario_file: str | None = None,
) -> dict[str, Any]:
    """The content of ``backtest.json``: scenario, window, price source, and per policy
    (in run order) its money, energy, curtailment, SLA, wall time and comparison with the
    best policy and the oracle. Deterministic for a given scenario apart from ``wall_s``.

    Per policy: ``net_usd``, ``revenue_usd`` and ``cost_usd`` (``total`` and per stream,
    as in kpis.json), ``energy_mwh``, ``curtailment`` (``hours``, ``mwh``),
    ``sla_met_fraction`` (per workload type), ``wall_s``, ``delta_vs_best_usd`` (net minus
    the best net, <= 0), ``capture_vs_oracle`` (net / oracle net, unrounded; ``None``
    without an oracle run or when the oracle net is <= 0), ``regret_usd`` (oracle net minus
    net; ``None`` without an oracle run) and ``results_dir`` (the sub-folder).
    """
    nets = {name: float(kpis["net_usd"]) for name, kpis in kpis_by_policy.items()}
    best = max(nets, key=lambda name: nets[name]) if nets else None
    oracle_net = nets.get(ORACLE)
    policies: dict[str, Any] = {}
    for name, kpis in kpis_by_policy.items():
        net = nets[name]
        policies[name] = {
            "net_usd": kpis["net_usd"],
            "revenue_usd": dict(kpis["revenue_usd"]),
            "cost_usd": dict(kpis["cost_usd"]),
            "energy_mwh": kpis["energy_mwh"],
            "curtailment": {
                "hours": kpis["curtailment"]["hours"],
                "mwh": kpis["curtailment"]["mwh"],
            },
            "sla_met_fraction": {
                workload: values.get("met_fraction") for workload, values in kpis["sla"].items()
            },
            "wall_s": kpis["wall_s"],
            "delta_vs_best_usd": _cents(net - nets[best]) if best is not None else None,
            "capture_vs_oracle": capture_vs_oracle(net, oracle_net),
            "regret_usd": _cents(oracle_net - net) if oracle_net is not None else None,
            "results_dir": name,
        }
    return {
        "scenario": {
            "name": scenario.name,
            "file": scenario_file,
            "seed": scenario.seed,
            "dispatch_interval_s": scenario.dispatch_interval_s,
            "facilities": {f.id: f.settlement_point for f in scenario.facilities},
        },
        "window": window_summary(scenario),
        "prices": price_source_summary(scenario),
        "best_policy": best,
        "skipped_policies": dict(skipped or {}),
        "policies": policies,
    }


def capture_vs_oracle(net_usd: float, oracle_net_usd: float | None) -> float | None:
    """``net_usd / oracle_net_usd``; ``None`` without an oracle or when its net is <= 0
    (a ratio to a loss or to nothing says nothing)."""
    if oracle_net_usd is None or not oracle_net_usd > 0:
        return None
    return float(net_usd) / float(oracle_net_usd)


def window_summary(scenario: Scenario) -> dict[str, Any]:
    """Start and end (exclusive) of the run in Central Prevailing Time and UTC, and days."""
    start = scenario.start
    end = start + timedelta(days=scenario.duration_days)
    zone = ZoneInfo(CPT_ZONE)
    return {
        "start": start.astimezone(zone).isoformat(),
        "end": end.astimezone(zone).isoformat(),
        "start_utc": start.astimezone(UTC).isoformat(),
        "end_utc": end.astimezone(UTC).isoformat(),
        "duration_days": scenario.duration_days,
        "time_zone": CPT_ZONE,
    }


def price_source_summary(scenario: Scenario) -> dict[str, Any]:
    """Where the energy prices come from: ``kind`` (historical/synthetic/constant), and for
    a file its path, ERCOT format, interval [s] and coverage; the settlement points used."""
    source = scenario.grid.prices
    points = sorted({f.settlement_point for f in scenario.facilities})
    summary: dict[str, Any] = {"kind": source.kind, "settlement_points": points}
    if isinstance(source, HistoricalSeries):
        table = load_price_table(source.file)
        summary |= {
            "file": source.file,
            "format": PRICE_FORMATS.get(table.kind, table.kind),
            "interval_s": table.interval_s,
            "shift_days": source.shift_days,
            "file_covers": {
                "start_utc": table.covered_start.isoformat(),
                "end_utc": table.covered_end.isoformat(),
            },
        }
    elif isinstance(source, ConstantValue):
        summary["value_usd_per_mwh"] = source.value
    return summary


def _cents(value: float) -> float:
    rounded = round(float(value), 2) + 0.0
    return rounded if math.isfinite(rounded) else math.nan


# ---------------------------------------------------------------------- terminal display


class BacktestProgress(LiveProgress):
    """One rich progress row per policy (simulated days done), on stderr."""

    def __init__(self, scenario: Scenario, policies: Sequence[str], enabled: bool = True):
        self._total_days = scenario.duration_days
        self._progress = Progress(
            TextColumn("[bold]{task.description:<10}[/]"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.1f} sim days"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {
            name: self._progress.add_task(name, total=self._total_days, start=False, note="")
            for name in policies
        }

    def policy_started(self, name: str) -> None:
        """Start the clock of ``name``'s row."""
        self._progress.start_task(self._tasks[name])

    def policy_progress(self, name: str, sim_days_done: float) -> None:
        """Move ``name``'s row to ``sim_days_done`` [days]."""
        self._progress.update(self._tasks[name], completed=min(sim_days_done, self._total_days))

    def policy_finished(self, name: str, kpis: Mapping[str, Any]) -> None:
        """Fill ``name``'s row and show its net."""
        task = self._tasks[name]
        self._progress.update(task, completed=self._total_days, note=f"net {_usd(kpis['net_usd'])}")
        self._progress.stop_task(task)


def print_backtest_summary(result: BacktestResult) -> None:
    """Print net, delta vs best, capture vs oracle and regret per policy, then the files."""
    summary = result.summary
    window = summary["window"]
    table = Table(
        title=f"Backtest {summary['scenario']['name']}: {window['start']} to {window['end']}",
        header_style="bold",
    )
    for heading in ("policy", "net", "vs best", "capture vs oracle", "regret", "wall"):
        table.add_column(heading, justify="left" if heading == "policy" else "right")
    for name, values in summary["policies"].items():
        capture = values["capture_vs_oracle"]
        table.add_row(
            name,
            _usd(values["net_usd"]),
            _usd(values["delta_vs_best_usd"]),
            "n/a" if capture is None else f"{100 * capture:.1f} %",
            _usd(values["regret_usd"]),
            f"{values['wall_s']:.1f} s",
        )
    console = Console()
    console.print(table)
    for name, reason in summary["skipped_policies"].items():
        console.print(f"skipped {name}: {reason}")
    console.print(f"comparison: {result.html_path}")
    console.print(f"summary:    {result.json_path}")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} USD"
