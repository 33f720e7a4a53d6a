"""A real ``run.py serve`` process for tests that need a server over TCP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from twin.scenario import PROJECT_ROOT
from twin.service.local_server import free_port, start_server

ROOT = PROJECT_ROOT

__all__ = ["ROOT", "command_line", "descendants", "free_port", "serve", "wait_gone"]


def serve(db_url: str, port: int) -> subprocess.Popen[bytes]:
    """The sandbox at 300x with only the API's workloads."""
    return start_server(db_url, port, ["--speed", "300", "--no-background-demand"])


def _parents() -> dict[int, int]:
    """Process id -> parent id of every running (not zombie) process (Linux /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if fields[0] != "Z":
            found[int(stat.parent.name)] = int(fields[1])
    return found


def descendants(pid: int) -> list[int]:
    """Every running process below ``pid`` (children, their children, ...)."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def wait_gone(pids: list[int], timeout_s: float = 10.0) -> None:
    """Fail unless every process in ``pids`` has exited (or is a zombie) in time."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if pid in _parents()]
        time.sleep(0.1)
    assert not alive, f"processes {alive} outlived the stopped server"


def command_line(pid: int) -> str:
    """The command line of process ``pid`` ("" once it has gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
