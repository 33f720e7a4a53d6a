"""Command line for scenario suites.

suite SUITE [--update] [--junit FILE] [--summary FILE] [--out DIR] [--quiet]
    run every scenario of the suite file (shortened as it says), compare the KPIs of each
    run with the expected values and tolerances in the file, and print one line per
    scenario and every KPI out of tolerance (expected, got, tolerance). ``--junit`` and
    ``--summary`` also write a JUnit XML report and a markdown summary. ``--update``
    records the runs' values as the new expected ones in the suite file (only its
    ``expected:`` blocks change) and prints each change as ``old -> new``.

Exit codes: 0 every scenario within tolerance (or updated), 1 a regression or a failed run,
2 a bad suite file (the message names the field and the reason).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from twin.progress import ProgressBar
from twin.scenario import Scenario
from twin.suite.compare import compare_entry, select_kpis
from twin.suite.expected_file import diff_expected, rewrite_expected, write_text_atomically
from twin.suite.junit import write_junit
from twin.suite.model import SuiteEntry, SuiteError, load_suite, parse_suite, read_suite_text
from twin.suite.runner import EntryResult, SuiteResult, run_suite
from twin.suite.summary import write_summary

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2


def add_suite_parser(commands: Any) -> None:
    """Add ``suite`` to the main parser's subparsers."""
    suite = commands.add_parser(
        "suite", help="run a scenario suite and compare its KPIs with the expected values"
    )
    suite.add_argument("suite_file", type=Path, metavar="SUITE", help="suite YAML file")
    suite.add_argument(
        "--update",
        action="store_true",
        help="record the runs' KPIs as the expected values in the suite file",
    )
    suite.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    suite.add_argument("--summary", type=Path, metavar="FILE", help="write a markdown summary")
    suite.add_argument(
        "--out", type=Path, metavar="DIR", help="results folder (default results/suite-<name>)"
    )
    suite.add_argument("--quiet", action="store_true", help="no progress bars")
    suite.set_defaults(handler=run_suite_command)


def run_suite_command(args: argparse.Namespace) -> int:
    """Handler of ``suite``: run, compare or update, report; returns the exit code."""
    try:
        suite = load_suite(args.suite_file)
        out = args.out or Path("results") / f"suite-{suite.name}"
        with _ConsoleObserver(show_bars=not args.quiet, recording=args.update) as observer:
            result = run_suite(suite, args.suite_file, out, observer)
        if args.update:
            result = _update(args.suite_file, result)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print_regressions(result)  # after --update only failed runs and unmatched KPIs remain
    if args.junit is not None:
        write_junit(result, args.junit)
    if args.summary is not None:
        write_summary(result, args.summary)
    print(
        f"suite {result.suite.name}: {result.count('pass')} passed, {result.count('FAIL')} "
        f"failed, {result.count('ERROR')} errors in {result.wall_s:.1f} s"
    )
    return EXIT_OK if result.passed else EXIT_REGRESSION


def _update(suite_file: Path, result: SuiteResult) -> SuiteResult:
    """Write the runs' KPIs as the expected values, print the changes, and return the
    result compared against the new values (runs that failed keep their old values)."""
    suite = result.suite
    new_expected = {}
    for entry_result in result.results:
        if entry_result.error is not None:
            continue
        entry = entry_result.entry
        values, _ = select_kpis(entry_result.kpis, suite.kpis_of(entry))
        changes = diff_expected(entry.expected, values)
        if entry.expected is None or changes:
            new_expected[entry.id] = values
        print(f"{entry.id}: {len(changes)} expected value(s) changed")
        for line in changes:
            print(f"  {line}")
    if not new_expected:
        print(f"{suite_file}: expected values unchanged")
        return result
    text = rewrite_expected(read_suite_text(suite_file), new_expected, str(suite_file))
    write_text_atomically(suite_file, text)
    print(f"{suite_file}: expected values of {len(new_expected)} scenario(s) rewritten")
    updated = parse_suite(text, str(suite_file))
    for entry_result, entry in zip(result.results, updated.scenarios, strict=True):
        entry_result.entry = entry
        if entry_result.error is None:
            checks, unmatched = compare_entry(updated, entry, entry_result.kpis)
            entry_result.checks, entry_result.unmatched = checks, unmatched
    return SuiteResult(updated, result.results, result.wall_s)


def _print_regressions(result: SuiteResult) -> None:
    """Every entry that did not pass, with each KPI out of tolerance."""
    for entry_result in result.results:
        if entry_result.passed:
            continue
        if entry_result.error is not None:
            print(f"ERROR {entry_result.entry.id}: {entry_result.error}")
            continue
        if entry_result.entry.expected is None:
            print(f"FAIL {entry_result.entry.id}: no expected values recorded (run with --update)")
            continue
        count = len(entry_result.failures) + len(entry_result.unmatched)
        print(
            f"FAIL {entry_result.entry.id} ({entry_result.scenario_name}): {count} of "
            f"{len(entry_result.checks)} KPIs out of tolerance"
        )
        for check in entry_result.failures:
            print(f"  {check.describe()}")
        for pattern in entry_result.unmatched:
            print(f"  {pattern}: matches no KPI of the run")


class _ConsoleObserver:
    """One line per entry on stdout when it finishes; a progress bar (stderr) while it runs.
    With ``recording`` (``--update``) the line says ``ran`` instead of judging the run."""

    def __init__(self, show_bars: bool, recording: bool = False) -> None:
        self._show_bars = show_bars
        self._recording = recording
        self._bar: ProgressBar | None = None

    def __enter__(self) -> _ConsoleObserver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close_bar()

    def entry_started(
        self, index: int, total: int, entry: SuiteEntry, scenario: Scenario
    ) -> Callable[[float], None] | None:
        """Open this entry's progress bar; its update method is the run's progress hook."""
        if not self._show_bars:
            return None
        self._bar = ProgressBar(scenario).__enter__()
        return self._bar.update

    def entry_finished(self, index: int, total: int, result: EntryResult) -> None:
        """Close the bar and print ``[i/n] id  status  KPIs  time``."""
        self._close_bar()
        detail = f"{len(result.checks)} KPIs"
        if result.failures or result.unmatched:
            detail += f", {len(result.failures) + len(result.unmatched)} out of tolerance"
        status = result.status
        if result.error is not None:
            detail = "run failed"
        elif self._recording:  # compared after the update, not against the old values
            status, detail = "ran", f"{len(result.checks)} KPIs"
        print(
            f"[{index + 1}/{total}] {result.entry.id:<24} {status:<5} {detail}, "
            f"{result.sim_days:g} sim days, {result.wall_s:.1f} s",
            flush=True,
        )

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
