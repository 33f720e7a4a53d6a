"""``run.py serve --mode live``: the API's workloads run in the live controller's scheduler
against emulated miners, their status comes back as in sim mode, and SIGTERM leaves no twin
or emulator process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from models.hardware import GPU_CATALOG
from tests.twin.service.server import command_line, descendants, wait_gone
from twin.live import LiveOptions, run_live
from twin.scenario import PROJECT_ROOT, Scenario, load_scenario
from twin.service.keys import create_key
from twin.service.live_bridge import LiveBridgeController
from twin.service.local_server import free_port, start_server
from twin.service.twin_snapshot import TwinSnapshot
from twin.service.workload_exchange import BridgeJob, JobUpdate, WorkloadExchange

LIVE_DEMO = PROJECT_ROOT / "scenarios" / "live_demo.yaml"
PRICE_USD_PER_MWH = 50.0
SMALL_LAB = [
    "--set",
    "facilities[lab].asics=[{model: antminer_s19j_pro, count: 12}]",
    "--set",
    "facilities[lab].power_cap_mw=1.0",
    "--set",
    f"grid.prices={{kind: constant, value: {PRICE_USD_PER_MWH}}}",
]
"""The live demo with a few miners, a roomy cap and a constant price."""
TICK_S = 0.5
WORK_S = 3.0
GPUS = 2
BODY = {
    "workload_type": "ai_inference_batch",
    "requirements": {"gpu_count": GPUS, "gpu_type": "h100_sxm", "estimated_duration_s": WORK_S},
}


def _command(db_url: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "run.py",
        "serve",
        str(LIVE_DEMO),
        "--db",
        db_url,
        "--port",
        str(port),
        "--mode",
        "live",
        *extra,
    ]


def _serve_live(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``serve --mode live --drivers emulated`` on the small lab, once ``/healthz`` answers
    (the twin is ready after its first live tick)."""
    options = ["--mode", "live", "--drivers", "emulated", "--tick-s", str(TICK_S)]
    return start_server(
        db_url,
        port,
        [*options, "--no-background-demand", *SMALL_LAB],
        90.0,
        scenario=str(LIVE_DEMO),
        log=log,
    )


def _request(port: int, key: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=5.0) as reply:
        return json.loads(reply.read())


def test_live_serve_runs_api_work_on_emulated_miners_and_stops_cleanly(tmp_path) -> None:
    """A GPU workload submitted with a customer key is queued, then running, then completed
    at the lab with a cost, in the live controller's scheduler: its metered GPU time is its
    gang times its work and its energy is its GPUs' busy draw times a PUE; the market shows
    the price the live pollers see and time on the wall clock. SIGTERM stops the service
    (exit 0) with its twin process and emulated miners."""
    db_url = f"sqlite:///{tmp_path / 'hcp.db'}"
    key = create_key(db_url, "customer", "Lena").key
    port = free_port()
    began = time.monotonic()
    server = _serve_live(db_url, port, tmp_path / "server.log")
    try:
        processes = descendants(server.pid)
        command_lines = [command_line(pid) for pid in processes]
        assert any("drivers.emulators" in c for c in command_lines), command_lines
        assert any("multiprocessing.spawn" in c for c in command_lines), command_lines

        accepted = _request(port, key, "/v1/workloads/submit", BODY)
        workload_id = accepted["workload_id"]
        statuses = [accepted["status"]]
        view: dict = {}
        deadline = time.monotonic() + 30.0
        while statuses[-1] not in ("completed", "rejected") and time.monotonic() < deadline:
            view = _request(port, key, f"/v1/workloads/{workload_id}/status")
            if view["status"] != statuses[-1]:
                statuses.append(view["status"])
            time.sleep(0.1)
        assert statuses == ["queued", "running", "completed"], (statuses, view)
        assert view["facility_id"] == "lab" and view["cost_usd"] > 0

        lines = {line["unit"]: line for line in _request(port, key, "/v1/billing/usage")["lines"]}
        assert lines["gpu_s"]["quantity"] == pytest.approx(GPUS * WORK_S)
        busy_kwh = GPUS * WORK_S * GPU_CATALOG["h100_sxm"].tdp_w / 1000.0 / 3600.0
        assert 1.0 <= lines["kwh"]["quantity"] / busy_kwh <= 1.6  # times the AI hall's PUE

        market = _request(port, key, "/v1/market")
        assert market["prices_usd_per_mwh"] == {"lab": PRICE_USD_PER_MWH}
        assert 0 < market["sim_time_s"] <= time.monotonic() - began
        assert market["sim_time_s"] % TICK_S == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert server.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]
    wait_gone(processes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--drivers", "real"], "--subnet"),
        (["--firmware", "nosuch", *SMALL_LAB], "emulated miners failed to start"),
    ],
)
def test_live_serve_that_cannot_start_says_why(tmp_path, options, message) -> None:
    """``--mode live --drivers real`` without miners to drive, or emulators that fail,
    exit 2 with a message that says why (the first before starting anything, the second
    from the twin process)."""
    done = subprocess.run(
        _command(f"sqlite:///{tmp_path / 'hcp.db'}", free_port(), *options),
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_the_live_loop_reports_each_tick_with_polled_prices() -> None:
    """In process: a job handed to the exchange before the loop starts runs in
    run_live's controller; every tick reports a snapshot at the end of its slot on the
    wall clock with the polled price, and the job's updates arrive in order, ending
    completed with its GPU time and energy. The snapshots carry the fleet as measured:
    the emulated miners' states and the device commands with their switch times."""
    scenario = load_scenario(
        LIVE_DEMO,
        {
            "facilities[lab].asics": [{"model": "antminer_s19j_pro", "count": 12}],
            "facilities[lab].power_cap_mw": 1.0,
            "grid.prices": {"kind": "constant", "value": PRICE_USD_PER_MWH},
        },
    )
    exchange = WorkloadExchange(background_demand=False)
    exchange.submit(
        BridgeJob("w", "c", "model_training", 8, None, 0.0, 1.0, None, None, 2.5),
    )
    reports: list[tuple[list[JobUpdate], TwinSnapshot]] = []
    stop = threading.Event()

    def report(updates: list[JobUpdate], snapshot: TwinSnapshot) -> None:
        reports.append((updates, snapshot))
        if any(u.status == "completed" for u in updates):
            stop.set()

    _run_live_bridge(scenario, exchange, report, stop)
    assert stop.is_set(), reports
    snapshots = [snapshot for _, snapshot in reports]
    times_s = [s.sim_time_s for s in snapshots]
    assert times_s[0] == TICK_S and all(t % TICK_S == 0 for t in times_s)
    assert times_s == sorted(set(times_s))
    assert all(s.prices_usd_per_mwh == {"lab": PRICE_USD_PER_MWH} for s in snapshots)
    assert all(s.tick_wall_s == TICK_S for s in snapshots)
    updates = [u for batch, _ in reports for u in batch]
    assert [u.status for u in updates] == ["running", "completed"]
    assert updates[-1].gpu_seconds == pytest.approx(8.0) and updates[-1].energy_kwh > 0
    fleet = snapshots[-1].fleet
    assert fleet is not None and [f.facility_id for f in fleet.facilities] == ["lab"]
    assert sum(fleet.facilities[0].asics.values()) == 12  # as the emulated miners report
    assert fleet.facilities[0].power_by_use_mw["mining"] == fleet.facilities[0].power_total_mw
    assert len([e for e in fleet.events if e.kind == "command"]) == fleet.commands_sent


def test_live_device_commands_are_logged_with_their_switch_times() -> None:
    """At a price far above the miners' strike the live loop puts them to sleep through
    the emulated firmware API; the fleet view logs each command verified, with the time
    from sending it to the read-back that verified it, and then counts the miners asleep."""
    scenario = load_scenario(
        LIVE_DEMO,
        {
            "facilities[lab].asics": [{"model": "antminer_s19j_pro", "count": 6}],
            "facilities[lab].gpus": [],
            "facilities[lab].power_cap_mw": 1.0,
            "grid.prices": {"kind": "constant", "value": 9000.0},
        },
    )
    snapshots: list[TwinSnapshot] = []
    stop = threading.Event()

    def report(updates: list[JobUpdate], snapshot: TwinSnapshot) -> None:
        snapshots.append(snapshot)
        fleet = snapshot.fleet
        if fleet is not None and fleet.facilities and fleet.facilities[0].asics["active"] == 0:
            stop.set()

    _run_live_bridge(scenario, WorkloadExchange(background_demand=False), report, stop)
    assert stop.is_set(), [s.fleet for s in snapshots]
    fleet = snapshots[-1].fleet
    assert fleet is not None
    commands = [e for e in fleet.events if e.kind == "command"]
    assert commands and len(commands) == fleet.commands_sent
    assert all(e.verified and e.facility_id == "lab" for e in commands)
    assert all(e.latency_ms is not None and 0 < e.latency_ms < 5000 for e in commands)
    assert fleet.switch_times.batches >= 1 and fleet.switch_times.max_ms > 0
    assert fleet.facilities[0].asics["sleeping"] == 6


def _run_live_bridge(
    scenario: Scenario,
    exchange: WorkloadExchange,
    report: Callable[[list[JobUpdate], TwinSnapshot], None],
    stop: threading.Event,
) -> None:
    """run_live with the service's live controller, for at most 10 s of ticks."""
    run_live(
        scenario,
        LiveOptions(tick_s=TICK_S, duration_s=10.0, timeout_s=1.0),
        stop=stop,
        controller_factory=lambda *args: LiveBridgeController(
            *args, exchange=exchange, on_report=report
        ),
    )
