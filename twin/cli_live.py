"""Command line for live mode and the miner emulators.

live SCENARIO [--drivers emulated|real] [--tick-s S] [--duration S] [--speed X]
     [--subnet CIDR | --miners A,B,...] [--firmware LIST] [--metrics-port P]
     [--price-max-age-s S] [--out DIR] [--set PATH=VALUE ...]
    run the controller on the wall clock against emulated or real miners.
emulate --miners N --subnet CIDR [--firmware LIST] [--model ID] [--fault KIND:FRACTION]
    start N emulated miners that pyasic can talk to; prints ``ready N miners``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twin.live import LiveOptions


def add_live_parsers(commands: Any, add_set: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``live`` and ``emulate`` commands to the main parser's subparsers."""
    live = commands.add_parser("live", help="run the controller on live (or emulated) miners")
    live.add_argument("scenario", type=Path, help="scenario YAML file")
    add_device_options(live)
    live.add_argument(
        "--speed", type=float, default=1.0, help="signal seconds replayed per wall second"
    )
    live.add_argument("--out", type=Path, help="results folder (default results/<name>-live)")
    add_set(live)
    live.set_defaults(handler=run_live_command)

    emulate = commands.add_parser("emulate", help="start emulated miners pyasic can talk to")
    from drivers.emulators.cli import add_arguments  # argparse only: no pyasic import

    add_arguments(emulate)
    emulate.set_defaults(handler=run_emulate_command)


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """The live options that say which devices the loop drives and how often (``live`` and
    ``serve --mode live`` share them; each adds its own ``--speed``)."""
    parser.add_argument("--drivers", choices=("emulated", "real"), default="emulated")
    parser.add_argument("--tick-s", type=float, default=1.0, help="loop period [s] (default 1)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--subnet", help="real miners: CIDR to scan")
    parser.add_argument("--miners", help="real miners: comma-separated IP addresses")
    parser.add_argument(
        "--firmware", default="luxos", help="emulated firmware, comma-separated (luxos,...)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:FRACTION",
        help="emulated miners only: inject a fault (timeout, malformed, refuse, wrong_reading)",
    )
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument(
        "--price-max-age-s", type=float, default=10.0, help="a price older than this is stale"
    )


def live_options(args: argparse.Namespace, speed: float) -> LiveOptions:
    """The :class:`twin.live.LiveOptions` of parsed :func:`add_device_options` arguments,
    replaying the price signal at ``speed`` signal seconds per wall second; InputError
    naming the option that is wrong."""
    from twin.cli import InputError
    from twin.live import LiveError, LiveOptions

    options = LiveOptions(
        drivers=args.drivers,
        tick_s=args.tick_s,
        duration_s=args.duration,
        speed=speed,
        price_max_age_s=args.price_max_age_s,
        metrics_port=args.metrics_port,
        subnet=args.subnet,
        addresses=tuple(a.strip() for a in (args.miners or "").split(",") if a.strip()),
        firmware=tuple(f.strip() for f in args.firmware.split(",") if f.strip()),
        faults=tuple(args.fault),
    )
    try:
        options.check()
    except LiveError as error:
        raise InputError(str(error)) from None
    return options


def run_live_command(args: argparse.Namespace) -> int:
    """``live``: run until --duration or SIGINT/SIGTERM, print the summary."""
    from twin.cli import InputError, _load
    from twin.live import LiveError, run_live

    scenario = _load(args)
    options = live_options(args, args.speed)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    out = args.out or Path("results") / f"{scenario.name}-live"
    try:
        result = run_live(scenario, options, stop=stop, out_dir=out)
    except LiveError as error:
        raise InputError(str(error)) from None
    summary = result.summary
    print(
        f"live: {summary.get('ticks', 0)} ticks, lag p50 {summary.get('lag_p50_s', 0):.3f} s "
        f"p99 {summary.get('lag_p99_s', 0):.3f} s, stale ticks {summary.get('stale_ticks', 0)}, "
        f"commands {summary.get('commands', 0)} ({summary.get('failed_commands', 0)} failed), "
        f"cap exceeded {summary.get('cap_exceeded_ticks', 0)} ticks"
    )
    print(result.out_dir)
    sys.stdout.flush()
    return 0


def run_emulate_command(args: argparse.Namespace) -> int:
    """``emulate``: the emulator farm's own entry point."""
    from drivers.emulators.cli import main

    return int(main(args))
