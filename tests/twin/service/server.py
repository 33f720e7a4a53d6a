"""A real ``run.py serve`` process for tests that need a server over TCP."""

from __future__ import annotations

import subprocess

from twin.scenario import PROJECT_ROOT
from twin.service.local_server import free_port, start_server

ROOT = PROJECT_ROOT

__all__ = ["ROOT", "free_port", "serve"]


def serve(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """The sandbox at 300x with only the API's workloads."""
    return start_server(db_url, port, ["--speed", "300", "--no-background-demand"])
