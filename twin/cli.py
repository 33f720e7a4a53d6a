"""Command line: ``python run.py <command> ...``.

Commands:
  simulate SCENARIO [--out DIR] [--seed N] [--days D] [--set PATH=VALUE ...]
      run a scenario in simulated time and write results/<run>/ with its report.
  validate SCENARIO [--set PATH=VALUE ...]
      check a scenario file and print the resolved scenario as YAML.
  backtest SCENARIO [--prices FILE] [--settlement-point SP] [--start DATE] [--end DATE]
           [--policies LIST] [--out DIR] [--set PATH=VALUE ...]
      run several policies on the same world (optionally on a historical ERCOT price file
      over a window of dates) and write their results, backtest.json and backtest.html.
  live SCENARIO [--drivers emulated|real] ...      (see twin.cli_live)
      run the same controller on the wall clock against emulated or real miners.
  emulate --miners N --subnet CIDR ...             (see twin.cli_live)
      start emulated miners that speak the firmware APIs pyasic uses.
  serve [SCENARIO] [--db URL] [--port P] [--mode sim|live] ...   (see twin.cli_service)
      run the platform REST API with a twin running the submitted workloads.
  keys create --role ROLE [--customer NAME] [--db URL] | keys revoke KEY_ID [--db URL]
      create an API key (printed as the last line), or revoke one.
  workloads submit|status|list|cancel ...          (see twin.cli_service)
      a customer's workloads, through the API.
  dashboard [--port P] [--results DIR] [--api URL] (see twin.cli_dashboard)
      the Streamlit dashboards (scenario lab, policy lab).
  sweep SCENARIO --grid PATH=V1,V2 --seeds N [--workers W | --scheduler ADDR] (twin.cli_sweep)
  suite SUITE [--update] [--junit FILE] [--summary FILE] [--out DIR]  (see twin.cli_suite)
  capacity RUN_DIR [--growth G] [--percentile P] [--horizon-years Y]
      headroom per facility and when GPUs or power run out as AI demand grows
      (capacity.md and capacity.html in the run folder).
  audit verify [--db URL]
      check the audit log's hash chain.

Exit codes: 0 success, 1 an unexpected failure, 2 bad input (the message names the field
or file and the reason).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from datasets.errors import DataFileError
from datasets.signals import SignalRangeError
from twin.scenario import Scenario, ScenarioError, load_scenario

EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SignalRangeError, DataFileError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class InputError(ValueError):
    """Bad command-line input (a malformed --set, say)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python run.py", description="HCP Twin: hybrid ASIC/GPU compute platform twin."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulate = commands.add_parser("simulate", help="run a scenario and write its results")
    simulate.add_argument("scenario", type=Path, help="scenario YAML file")
    simulate.add_argument("--out", type=Path, help="results folder (default results/<name>)")
    simulate.add_argument("--seed", type=int, help="override the scenario seed")
    simulate.add_argument("--days", type=float, help="override the duration [days]")
    _add_set(simulate)
    simulate.add_argument("--quiet", action="store_true", help="no progress bar or table")
    simulate.set_defaults(handler=_simulate)

    validate = commands.add_parser("validate", help="check a scenario and print it resolved")
    validate.add_argument("scenario", type=Path)
    _add_set(validate)
    validate.set_defaults(handler=_validate)

    backtest = commands.add_parser(
        "backtest", help="run several policies on the same world and compare them"
    )
    backtest.add_argument("scenario", type=Path, help="scenario YAML file")
    backtest.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="ERCOT price file (day-ahead hourly or real-time 15-min) replacing grid.prices",
    )
    backtest.add_argument(
        "--settlement-point", metavar="SP", help="move every facility to this settlement point"
    )
    backtest.add_argument(
        "--start",
        metavar="DATE",
        help="first day, YYYY-MM-DD (America/Chicago); alone, it keeps the scenario's length",
    )
    backtest.add_argument(
        "--end", metavar="DATE", help="day after the last, YYYY-MM-DD (exclusive)"
    )
    backtest.add_argument(
        "--policies",
        metavar="LIST",
        help="comma-separated policies (default: always_on,strike,greedy,mpc,oracle; "
        "a default one that cannot run yet is skipped with a note)",
    )
    backtest.add_argument(
        "--out", type=Path, help="results folder (default results/<name>-backtest)"
    )
    _add_set(backtest)
    backtest.add_argument("--quiet", action="store_true", help="no progress bars or table")
    backtest.set_defaults(handler=_backtest)
    from twin.cli_live import add_live_parsers

    add_live_parsers(commands, _add_set)
    from twin.cli_service import add_service_parsers

    add_service_parsers(commands, _add_set)
    from twin.cli_dashboard import add_dashboard_parser

    add_dashboard_parser(commands)
    _add_capacity_parser(commands)
    from twin.cli_suite import add_suite_parser

    add_suite_parser(commands)
    from twin.cli_sweep import add_sweep_parser

    add_sweep_parser(commands)
    return parser


def _add_capacity_parser(commands: Any) -> None:
    capacity = commands.add_parser(
        "capacity", help="headroom and runway per facility as AI demand grows"
    )
    capacity.add_argument("run_dir", type=Path, help="a results folder written by simulate")
    capacity.add_argument(
        "--growth",
        type=float,
        default=0.4,
        help="AI demand growth per year as a fraction (0.4: +40 %% a year; default 0.4)",
    )
    capacity.add_argument(
        "--percentile",
        type=float,
        default=95.0,
        help="percentile of the run's intervals taken as today's demand (default 95)",
    )
    capacity.add_argument(
        "--horizon-years", type=float, default=5.0, help="projection span (default 5)"
    )
    capacity.set_defaults(handler=_capacity)


def _capacity(args: argparse.Namespace) -> int:
    from twin.capacity import CapacityError
    from twin.capacity_report import write_capacity_report

    try:
        _, markdown_path, html_path = write_capacity_report(
            args.run_dir, args.growth, args.percentile, args.horizon_years
        )
    except CapacityError as error:
        raise InputError(str(error)) from None
    print(markdown_path.read_text(encoding="utf-8"), end="")
    print(f"\nwritten: {markdown_path} and {html_path}")
    return 0


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set facilities[west-mine].power_cap_mw=40 "
        "(VALUE is parsed as YAML)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in args.set:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise InputError(f"--set {item!r}: expected PATH=VALUE")
        try:
            overrides[path.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--set {item!r}: VALUE is not valid YAML") from None
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "days", None) is not None:
        overrides["duration_days"] = args.days
    return overrides


def _load(args: argparse.Namespace) -> Scenario:
    return load_scenario(args.scenario, _overrides(args))


def _validate(args: argparse.Namespace) -> int:
    scenario = _load(args)
    print(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from twin.engine import build
    from twin.progress import ProgressBar, print_summary

    scenario = _load(args)
    out = args.out or Path("results") / scenario.name
    twin = build(scenario)
    with ProgressBar(scenario, enabled=not args.quiet) as bar:
        result = twin.run(progress=bar.update)
    run_dir = result.write(out)
    if not args.quiet:
        print_summary(result.kpis, run_dir)
    else:
        print(run_dir)
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from twin.backtest import (
        BacktestError,
        BacktestProgress,
        parse_date,
        parse_policies,
        prepare_scenario,
        print_backtest_summary,
        run_backtest,
        unavailable_policies,
    )

    try:
        policies = parse_policies(args.policies)
        scenario = prepare_scenario(
            args.scenario,
            _overrides(args),
            prices_file=args.prices,
            settlement_point=args.settlement_point,
            start=parse_date(args.start, "--start") if args.start is not None else None,
            end=parse_date(args.end, "--end") if args.end is not None else None,
        )
        skipped: dict[str, str] = {}
        if args.policies is None:  # defaults: leave out those that cannot run yet
            skipped = unavailable_policies(scenario, policies)
            policies = tuple(name for name in policies if name not in skipped)
            for name, reason in skipped.items():
                print(f"note: skipping policy {name}: {reason}", file=sys.stderr)
        out = args.out or Path("results") / f"{scenario.name}-backtest"
        with BacktestProgress(scenario, policies, enabled=not args.quiet) as progress:
            result = run_backtest(
                scenario,
                policies,
                out,
                observer=progress,
                skipped=skipped,
                scenario_file=str(args.scenario),
            )
    except BacktestError as error:
        raise InputError(str(error)) from None
    if not args.quiet:
        print_backtest_summary(result)
    else:
        print(result.out_dir)
    return 0
