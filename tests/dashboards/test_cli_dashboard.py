"""Tests of the ``dashboard`` command: options, the streamlit command line, and a real
headless start answering its health check and serving the app."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dashboards.settings import DashboardSettings
from twin.cli_dashboard import (
    APP_PATH,
    DashboardError,
    add_dashboard_parser,
    dashboard_environment,
    streamlit_command,
)
from twin.scenario import PROJECT_ROOT
from twin.service.local_server import free_port

START_TIMEOUT_S = 45.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python run.py")
    commands = parser.add_subparsers(dest="command", required=True)
    add_dashboard_parser(commands)
    return parser.parse_args(argv)


def test_options_reach_streamlit_and_the_pages(tmp_path: Path) -> None:
    """Port and address go to ``streamlit run`` (headless), options after ``--`` are
    passed on unchanged, and the folders and API URL reach the pages' settings."""
    args = _parse(
        [
            "dashboard",
            "--port",
            "8777",
            "--results",
            str(tmp_path),
            "--api",
            "http://10.0.0.5:8000/",
            "--",
            "--theme.base",
            "dark",
        ]
    )
    command = streamlit_command(args)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP_PATH)]
    assert command[command.index("--server.port") + 1] == "8777"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[-2:] == ["--theme.base", "dark"]
    env = dashboard_environment(args, {"PYTHONPATH": "/elsewhere"})
    settings = DashboardSettings.from_env(env)
    assert settings.results_dir == tmp_path.resolve()
    assert settings.scenarios_dir == (PROJECT_ROOT / "scenarios").resolve()
    assert settings.api_url == "http://10.0.0.5:8000"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(PROJECT_ROOT), "/elsewhere"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "--port 0"),
        (["--scenarios", "/no/such/folder"], "--scenarios"),
        (["--api", "ftp://x"], "--api"),
    ],
)
def test_bad_options_are_named(argv: list[str], message: str) -> None:
    """A bad port, a missing scenarios folder or a non-HTTP API URL is refused with
    exit code 2 and a message naming the option."""
    args = _parse(["dashboard", *argv])
    with pytest.raises(DashboardError, match=message):
        streamlit_command(args)
        dashboard_environment(args)
    assert args.handler(args) == 2


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read().decode("utf-8", "replace")


def test_dashboard_starts_headless_and_serves_the_app(tmp_path: Path) -> None:
    """The command line starts a server that answers its health check and serves the
    app page; it stops on terminate."""
    args = _parse(["dashboard", "--port", str(free_port()), "--results", str(tmp_path)])
    process = subprocess.Popen(
        streamlit_command(args),
        env=dashboard_environment(args),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = _get(f"{base}/_stcore/health")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)  # polling a starting server, not waiting a fixed time
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert health == (200, "ok")
        status, page = _get(base)
        assert status == 200 and '<div id="root">' in page.replace("'", '"')
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
