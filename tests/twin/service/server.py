"""A real ``run.py serve`` process for tests that need a server over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """``run.py serve`` on ``db_url`` at ``port`` (sandbox twin at 300x, API jobs only),
    returned once /healthz answers."""
    command = [
        sys.executable,
        "run.py",
        "serve",
        "scenarios/baseline.yaml",
        "--db",
        db_url,
        "--port",
        str(port),
        "--speed",
        "300",
        "--no-background-demand",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0).read()
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    server.kill()
    raise AssertionError("server did not come up")
