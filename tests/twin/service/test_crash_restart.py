"""Durability with a real server process: SIGKILL while workloads are being submitted,
restart, and every acknowledged workload is there and runs to completion."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.twin.service.server import descendants, wait_gone
from tests.twin.service.server import free_port as _free_port
from tests.twin.service.server import serve as _serve
from twin.service.keys import create_key

ROOT = Path(__file__).resolve().parents[3]
BODY = json.dumps({"requirements": {"gpu_count": 1, "estimated_duration_s": 300}}).encode()


def _request(port: int, key: str, path: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=5.0) as reply:
        return json.loads(reply.read())


def test_sigkill_during_submissions_loses_no_acknowledged_workload(db_url) -> None:
    """Workloads acknowledged before a SIGKILL are all found after a restart, and the
    restarted twin runs every one of them to completion. The twin's own process dies with
    the server (nothing is left running)."""
    key = create_key(db_url, "customer", "Erin").key
    port = _free_port()
    server = _serve(db_url, port)
    acknowledged = []
    try:
        for _ in range(15):
            acknowledged.append(_request(port, key, "/v1/workloads/submit", BODY)["workload_id"])
        twins = descendants(server.pid)
        assert twins, "the server runs its twin in a child process"
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        wait_gone(twins)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    server = _serve(db_url, port)
    try:
        deadline = time.monotonic() + 30.0
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = {
                w: _request(port, key, f"/v1/workloads/{w}/status")["status"] for w in acknowledged
            }
            if all(s == "completed" for s in statuses.values()):
                break
            time.sleep(0.5)
        assert set(statuses) == set(acknowledged)
        assert all(s == "completed" for s in statuses.values()), statuses
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
