"""Command line: ``python run.py <command> ...``.

Commands:
  simulate SCENARIO [--out DIR] [--seed N] [--days D] [--set PATH=VALUE ...]
      run a scenario in simulated time and write results/<run>/ with its report.
  validate SCENARIO [--set PATH=VALUE ...]
      check a scenario file and print the resolved scenario as YAML.

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
    return parser


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
