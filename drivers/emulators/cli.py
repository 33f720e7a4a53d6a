"""Command line: ``emulate`` a farm of miners until told to stop.

``emulate --miners N --subnet CIDR [--firmware luxos,whatsminer,braiins] [--model ID]
[--fault KIND:FRACTION ...] [--seed S]`` binds the farm, prints ``ready N miners`` once
every miner listens, and serves until SIGINT or SIGTERM, then stops cleanly (exit 0).
Bad arguments exit 2 with a message naming the option; an address already in use exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.farm import EmulatorFarm
from drivers.emulators.faults import FaultPlan, parse_fault_spec
from drivers.emulators.identities import FIRMWARES

EXIT_OK = 0
EXIT_BIND_FAILED = 1
EXIT_BAD_ARGUMENTS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``emulate`` options to ``parser``."""
    parser.add_argument("--miners", type=int, required=True, help="number of emulated miners")
    parser.add_argument(
        "--subnet",
        required=True,
        help="loopback CIDR; miner i listens on its i-th host address, e.g. 127.1.0.0/24",
    )
    parser.add_argument(
        "--firmware",
        default="luxos",
        help=f"comma-separated firmware, assigned round-robin ({', '.join(FIRMWARES)})",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="comma-separated catalog model ids, assigned round-robin "
        "(default: each firmware's usual model)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:FRACTION",
        help="give a fraction of the miners a fault: timeout, malformed, refuse, "
        "wrong_reading (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draw")


def build_farm(args: argparse.Namespace) -> EmulatorFarm:
    """The farm the parsed options describe (EmulatorConfigError when they are bad)."""
    faults = FaultPlan(seed=args.seed)
    for spec in args.fault:
        faults.inject_fraction(*parse_fault_spec(spec))
    firmware = [f.strip() for f in str(args.firmware).split(",") if f.strip()]
    models = None if args.model is None else [m.strip() for m in args.model.split(",") if m.strip()]
    return EmulatorFarm(args.miners, args.subnet, firmware=firmware, models=models, faults=faults)


def main(args: argparse.Namespace) -> int:
    """Run the ``emulate`` command; returns the exit status."""
    try:
        farm = build_farm(args)
    except EmulatorConfigError as error:
        print(f"emulate: {error}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    _raise_file_limit(2 * farm.count + 256)
    try:
        asyncio.run(_serve(farm))
    except OSError as error:
        print(f"emulate: {error}", file=sys.stderr)
        return EXIT_BIND_FAILED
    return EXIT_OK


def _raise_file_limit(wanted: int) -> None:
    """Raise the open-file soft limit towards ``wanted`` (one listening socket per miner
    plus connections), within the hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _serve(farm: EmulatorFarm) -> None:
    """Serve ``farm`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await farm.start()
        try:
            print(f"ready {farm.count} miners", flush=True)
            await stop.wait()
        finally:
            await farm.stop()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
