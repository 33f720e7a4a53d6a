"""Command line for the dashboards.

dashboard [--port P] [--host H] [--results DIR] [--scenarios DIR] [--api URL]
          [-- STREAMLIT OPTIONS ...]
    start the Streamlit app (dashboards/app.py) headless on http://H:P. The folders and
    the API URL reach the pages as environment variables (dashboards.settings); anything
    after ``--`` goes to ``streamlit run`` as is (e.g. ``-- --theme.base dark``).

Streamlit comes with the ``dashboards`` extra: ``pip install -e '.[dashboards]'``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dashboards.settings import DashboardSettings  # plain settings: no streamlit import
from twin.scenario import PROJECT_ROOT

APP_PATH = PROJECT_ROOT / "dashboards" / "app.py"
DEFAULT_PORT = 8501
EXIT_BAD_INPUT = 2


class DashboardError(ValueError):
    """Bad ``dashboard`` options or a missing dependency (names the option)."""


def add_dashboard_parser(commands: Any) -> None:
    """Add ``dashboard`` to the main parser's subparsers."""
    dashboard = commands.add_parser("dashboard", help="open the Streamlit dashboards")
    dashboard.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)"
    )
    dashboard.add_argument(
        "--results",
        type=Path,
        default=PROJECT_ROOT / "results",
        metavar="DIR",
        help="results folder the pages read and new runs are written to (default results/)",
    )
    dashboard.add_argument(
        "--scenarios",
        type=Path,
        default=PROJECT_ROOT / "scenarios",
        metavar="DIR",
        help="scenario files offered in the pickers (default scenarios/)",
    )
    dashboard.add_argument(
        "--api",
        default="http://127.0.0.1:8000",
        metavar="URL",
        help="base URL of a running `serve` or `live` instance (operations pages)",
    )
    dashboard.add_argument(
        "streamlit_args",
        nargs="*",
        metavar="-- STREAMLIT_OPTION",
        help="after --: options passed to `streamlit run` unchanged",
    )
    dashboard.set_defaults(handler=_dashboard)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line for ``args`` (headless, no usage statistics).

    Raises:
        DashboardError: a port outside 1-65535.
    """
    if not 1 <= args.port <= 65535:
        raise DashboardError(f"--port {args.port}: must be in 1..65535")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(args.port),
        "--server.address",
        str(args.host),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        *args.streamlit_args,
    ]


def dashboard_environment(
    args: argparse.Namespace, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (the process environment by default) plus the settings the pages read and
    the project root on PYTHONPATH (the pages import the project's packages).

    Raises:
        DashboardError: ``--scenarios`` is not a folder, or ``--api`` is not an http(s) URL.
    """
    scenarios = Path(args.scenarios).expanduser().resolve()
    if not scenarios.is_dir():
        raise DashboardError(f"--scenarios {args.scenarios}: no such folder")
    if not str(args.api).startswith(("http://", "https://")):
        raise DashboardError(f"--api {args.api}: expected an http:// or https:// URL")
    env = dict(os.environ if base is None else base)
    python_path = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    settings = DashboardSettings(
        results_dir=Path(args.results).expanduser().resolve(),
        scenarios_dir=scenarios,
        api_url=str(args.api).rstrip("/"),
    )
    env.update(settings.to_env())
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
    return env


def _dashboard(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        print(
            "error: the dashboards need streamlit: pip install -e '.[dashboards]'",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        command = streamlit_command(args)
        env = dashboard_environment(args)
    except DashboardError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"dashboards on http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr)
    return subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=False).returncode
