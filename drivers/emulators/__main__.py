"""``python -m drivers.emulators --miners N --subnet CIDR ...``: run an emulated farm."""

from __future__ import annotations

import argparse
import sys

from drivers.emulators.cli import add_arguments, main


def run() -> int:
    """Parse the command line and run the farm; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m drivers.emulators",
        description="Emulated ASIC miners on loopback addresses, speaking real firmware APIs.",
    )
    add_arguments(parser)
    return main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(run())
