"""Status callbacks: signed with HMAC, retried with backoff, sent on every status change."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.twin.service.server import free_port, serve
from twin.scenario import load_scenario
from twin.service.api.app import ServiceConfig, create_app
from twin.service.callbacks import CallbackSender, verify_signature
from twin.service.keys import create_key
from twin.service.twin_bridge import TwinBridge

BASELINE = Path(__file__).resolve().parents[3] / "scenarios" / "baseline.yaml"
SECRET = b"test-secret"


class Receiver:
    """A local HTTP endpoint that records notices; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict, str, str, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(
                    (
                        json.loads(body),
                        self.headers["X-HCP-Timestamp"],
                        self.headers["X-HCP-Signature"],
                        body,
                    )
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(fail_first: int = 0) -> Receiver:
        made.append(Receiver(fail_first))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_a_failed_delivery_is_retried_and_the_signature_verifies(receiver) -> None:
    """Two 500 answers, then success on the third attempt; the receiver can verify the
    signature with the shared secret, and a tampered body would not verify."""
    endpoint = receiver(fail_first=2)
    sender = CallbackSender(SECRET, max_attempts=4, backoff_s=0.01)
    delivery = sender.notify(endpoint.url, {"workload_id": "wl_1", "status": "running"})
    assert sender.flush(10.0)
    sender.close()
    assert delivery.delivered and delivery.attempts == 3 and delivery.errors == ["HTTP 500"] * 2
    payload, timestamp, signature, body = endpoint.received[0]
    assert payload == {"workload_id": "wl_1", "status": "running"}
    assert verify_signature(SECRET, timestamp, body, signature)
    assert not verify_signature(SECRET, timestamp, body.replace(b"running", b"done"), signature)
    assert not verify_signature(b"other", timestamp, body, signature)


def test_delivery_gives_up_after_max_attempts(receiver) -> None:
    """An endpoint that always fails gets exactly max_attempts tries."""
    endpoint = receiver(fail_first=100)
    sender = CallbackSender(SECRET, max_attempts=3, backoff_s=0.01)
    delivery = sender.notify(endpoint.url, {"x": 1})
    assert sender.flush(10.0)
    sender.close()
    assert not delivery.delivered and delivery.attempts == 3 and endpoint.received == []


def test_status_changes_of_a_workload_reach_its_callback_url(db_url, receiver) -> None:
    """A workload submitted with a callback_url is told when it starts and completes."""
    endpoint = receiver()
    bridge = TwinBridge(
        load_scenario(BASELINE, {"duration_days": 1}), speed=600.0, background_demand=False
    )
    key = create_key(db_url, "customer", "Gina").key
    app = create_app(ServiceConfig(db_url=db_url, bridge=bridge, callback_secret=SECRET))
    with TestClient(app) as client:
        body = {
            "requirements": {"gpu_count": 1, "estimated_duration_s": 600},
            "callback_url": endpoint.url,
        }
        workload_id = client.post(
            "/v1/workloads/submit", json=body, headers={"X-API-Key": key}
        ).json()["workload_id"]
        for _ in range(4):
            bridge.step()
        assert app.state.callbacks.flush(10.0)
    deadline = time.monotonic() + 5.0
    while len(endpoint.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses = [p["status"] for p, *_ in endpoint.received if p["workload_id"] == workload_id]
    assert statuses == ["running", "completed"]
    assert all(verify_signature(SECRET, t, b, s) for _p, t, s, b in endpoint.received)


def test_a_served_twin_s_status_changes_reach_the_callback_url(
    db_url, receiver, monkeypatch
) -> None:
    """Under ``run.py serve`` the twin's status changes reach the database and the
    subscriber by way of the writer process (service.status_sync.StatusFeed): the
    workload reads completed through the API, and both notices arrive signed with the
    service's secret."""
    endpoint = receiver()
    monkeypatch.setenv("HCP_CALLBACK_SECRET", SECRET.decode())
    key = create_key(db_url, "customer", "Hana").key
    port = free_port()
    server = serve(db_url, port)
    try:
        body = json.dumps(
            {
                "requirements": {"gpu_count": 1, "estimated_duration_s": 300},
                "callback_url": endpoint.url,
            }
        ).encode()
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        submit = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/workloads/submit", data=body, headers=headers
        )
        with urllib.request.urlopen(submit, timeout=5.0) as reply:
            workload_id = json.loads(reply.read())["workload_id"]
        status = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/workloads/{workload_id}/status", headers=headers
        )
        deadline = time.monotonic() + 30.0
        seen = ""
        while seen != "completed" and time.monotonic() < deadline:
            with urllib.request.urlopen(status, timeout=5.0) as reply:
                seen = json.loads(reply.read())["status"]
            time.sleep(0.1)
        assert seen == "completed"
        while len(endpoint.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(15)
    statuses = [p["status"] for p, *_ in endpoint.received if p["workload_id"] == workload_id]
    assert statuses == ["running", "completed"]
    assert all(verify_signature(SECRET, t, b, s) for _p, t, s, b in endpoint.received)
