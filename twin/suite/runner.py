"""Run a suite: every entry's scenario in simulated time, one after another in this process,
with its results written to ``<out>/<entry id>/`` and its KPIs read back from ``kpis.json``
and compared (:mod:`twin.suite.compare`).

Every entry's scenario is loaded (with its overrides) before the first run, so a bad entry
fails the suite at once instead of after minutes of runs. A run that raises a model or data
error is recorded as that entry's error and the suite goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from datasets.errors import DataFileError
from datasets.signals import SignalRangeError
from twin.scenario import Scenario, ScenarioError, load_scenario
from twin.suite.compare import KpiCheck, compare_entry
from twin.suite.model import Suite, SuiteEntry, SuiteError

RUN_ERRORS: tuple[type[Exception], ...] = (ValueError, SignalRangeError, DataFileError)
"""Errors a run may raise from bad data or model input (all ``ValueError`` subclasses, named
for the reader); anything else is a bug and propagates."""


@dataclass
class EntryResult:
    """The outcome of one suite entry.

    Attributes:
        entry: the suite entry.
        scenario_name: the scenario's ``name``.
        sim_days: simulated duration [days].
        wall_s: wall-clock time of the run and its comparison [s] (reported, never compared).
        checks: one per compared KPI.
        unmatched: KPI patterns that matched no number of the run.
        error: why the run failed (then ``checks`` is empty), else ``None``.
        kpis: the run's ``kpis.json`` as read back.
        run_dir: where the run's results were written.
    """

    entry: SuiteEntry
    scenario_name: str
    sim_days: float
    wall_s: float = 0.0
    checks: list[KpiCheck] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    error: str | None = None
    kpis: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def failures(self) -> list[KpiCheck]:
        """The checks out of tolerance (or not recorded / missing)."""
        return [check for check in self.checks if not check.passed]

    @property
    def passed(self) -> bool:
        """The run finished and every KPI is within tolerance."""
        return self.error is None and not self.failures and not self.unmatched

    @property
    def status(self) -> str:
        """``pass``, ``FAIL`` or ``ERROR``."""
        if self.error is not None:
            return "ERROR"
        return "pass" if self.passed else "FAIL"


@dataclass
class SuiteResult:
    """Every entry's outcome, in suite order, and the total wall time [s]."""

    suite: Suite
    results: list[EntryResult]
    wall_s: float

    @property
    def passed(self) -> bool:
        """Every entry passed."""
        return all(result.passed for result in self.results)

    def count(self, status: str) -> int:
        """Entries with ``status`` (``pass``, ``FAIL``, ``ERROR``)."""
        return sum(result.status == status for result in self.results)


class SuiteObserver(Protocol):
    """Told when each entry starts (returns the progress callback for the run, which gets
    simulated days done) and when it finishes."""

    def entry_started(
        self, index: int, total: int, entry: SuiteEntry, scenario: Scenario
    ) -> Callable[[float], None] | None: ...

    def entry_finished(self, index: int, total: int, result: EntryResult) -> None: ...


def prepare_scenarios(suite: Suite, suite_file: Path) -> list[Scenario]:
    """Each entry's scenario, loaded relative to the suite file with its overrides.

    Raises:
        SuiteError: a scenario file is missing or invalid with the entry's overrides (each
            problem names the entry, e.g. ``scenarios[2] (uri): set: ...``).
    """
    scenarios = []
    problems = []
    for index, entry in enumerate(suite.scenarios):
        path = scenario_path(entry, suite_file)
        where = f"scenarios[{index}] ({entry.id})"
        if not path.is_file():
            problems.append(f"{where}.scenario: file not found: {entry.scenario}")
            continue
        try:
            scenarios.append(load_scenario(path, entry.overrides()))
        except ScenarioError as error:
            problems += [f"{where}: {path.name}: {problem}" for problem in error.problems]
    if problems:
        raise SuiteError(problems, str(suite_file))
    return scenarios


def scenario_path(entry: SuiteEntry, suite_file: Path) -> Path:
    """The scenario file of ``entry``: absolute, or relative to the suite file's folder."""
    path = Path(entry.scenario)
    return path if path.is_absolute() else suite_file.parent / path


def run_suite(
    suite: Suite,
    suite_file: Path,
    out_dir: Path,
    observer: SuiteObserver | None = None,
) -> SuiteResult:
    """Run every entry of ``suite`` and compare its KPIs.

    Args:
        suite: the validated suite.
        suite_file: where it was read from (scenario paths are relative to it).
        out_dir: results go to ``out_dir/<entry id>/``.
        observer: progress reporting, optional.

    Raises:
        SuiteError: an entry's scenario cannot be loaded (before any run starts).
    """
    from twin.engine import build

    scenarios = prepare_scenarios(suite, suite_file)
    started = time.perf_counter()
    results = []
    total = len(scenarios)
    for index, (entry, scenario) in enumerate(zip(suite.scenarios, scenarios, strict=True)):
        progress = observer.entry_started(index, total, entry, scenario) if observer else None
        entry_start = time.perf_counter()
        result = EntryResult(entry, scenario.name, scenario.duration_days)
        try:
            run = build(scenario).run(progress=progress)
            result.run_dir = run.write(out_dir / entry.id)
            result.kpis = json.loads((result.run_dir / "kpis.json").read_text(encoding="utf-8"))
        except RUN_ERRORS as error:
            result.error = f"{type(error).__name__}: {error}"
        else:
            result.checks, result.unmatched = compare_entry(suite, entry, result.kpis)
        result.wall_s = time.perf_counter() - entry_start
        results.append(result)
        if observer is not None:
            observer.entry_finished(index, total, result)
    return SuiteResult(suite, results, time.perf_counter() - started)
