"""HCP Twin entry point: ``python run.py <command> ...`` (see ``python run.py --help``)."""

import sys

from twin.cli import main

if __name__ == "__main__":
    sys.exit(main())
