"""Start ``run.py serve`` as a separate process and wait until it answers (for tests,
benchmarks and drills that need a real server over TCP)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from twin.scenario import PROJECT_ROOT


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    db_url: str,
    port: int,
    extra: Sequence[str] = (),
    timeout_s: float = 60.0,
    *,
    scenario: str = "scenarios/baseline.yaml",
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``run.py serve SCENARIO --db db_url --port port *extra``, returned once ``/healthz``
    answers. Its output goes to ``log`` (None: discarded). Killed, and RuntimeError (with
    the log's tail), if it exits or does not answer within ``timeout_s``."""
    command = [
        sys.executable,
        "run.py",
        "serve",
        scenario,
        "--db",
        db_url,
        "--port",
        str(port),
        *extra,
    ]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        server = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0).read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    server.wait(10)
    tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
    raise RuntimeError(f"server on port {port} did not come up in {timeout_s:.0f} s {tail}")
