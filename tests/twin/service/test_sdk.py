"""The Python SDK and the ``workloads`` CLI against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.twin.service.server import ROOT, free_port, serve
from twin.service.keys import create_key
from twin.service.sdk import ApiError, Client


@pytest.fixture
def server(db_url):
    """A running server and a customer key."""
    key = create_key(db_url, "customer", "Frank").key
    port = free_port()
    process = serve(db_url, port)
    yield f"http://127.0.0.1:{port}", key
    process.send_signal(signal.SIGTERM)
    process.wait(15)


def test_sdk_submits_once_per_idempotency_key_and_follows_pages(server) -> None:
    """submit with one key twice gives one workload; list follows every page; errors name
    the field; cancel works."""
    url, key = server
    client = Client(url, key)
    first = client.submit({"gpu_count": 1, "estimated_duration_s": 3600}, idempotency_key="k1")
    again = client.submit({"gpu_count": 1, "estimated_duration_s": 3600}, idempotency_key="k1")
    assert again["workload_id"] == first["workload_id"]
    for _ in range(4):
        client.submit({"gpu_count": 1, "estimated_duration_s": 3600})
    listed = list(client.list(page_size=2))
    assert len(listed) == 5 and len({w["workload_id"] for w in listed}) == 5
    with pytest.raises(ApiError) as error:
        client.submit({"gpu_count": 1, "estimated_duration_s": -5})
    assert error.value.status == 422
    assert error.value.errors[0]["field"] == "requirements.estimated_duration_s"
    assert client.cancel(first["workload_id"])["status"] == "cancelled"


def test_workloads_cli_prints_json(server) -> None:
    """``run.py workloads submit`` then ``status`` print the API's JSON; a missing key is
    a usage error (exit 2)."""
    url, key = server
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HCP_API_KEY": key}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "run.py", "workloads", *args, "--url", url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    submitted = run("submit", "--duration-s", "600", "--gpus", "2")
    assert submitted.returncode == 0, submitted.stderr
    workload_id = json.loads(submitted.stdout)["workload_id"]
    status = run("status", workload_id)
    assert json.loads(status.stdout)["workload_id"] == workload_id
    env.pop("HCP_API_KEY")
    assert run("list").returncode == 2
