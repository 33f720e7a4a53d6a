"""The service's twin in a child process: workloads go in, status changes and snapshots
come back, and it stops cleanly."""

from __future__ import annotations

import threading
import time

from twin.scenario import load_scenario
from twin.service.twin_bridge import BridgeJob, JobUpdate
from twin.service.twin_process import TwinProcess

BASELINE = "scenarios/baseline.yaml"


def _job(workload_id: str) -> BridgeJob:
    return BridgeJob(
        workload_id=workload_id,
        customer="cus_test",
        workload_type="ai_inference_batch",
        gpus=2,
        gpu_type=None,
        hashrate_ths=0.0,
        work_s=600.0,
        deadline_s=None,
        checkpoint_interval_s=None,
        price_usd_per_gpu_hour=2.5,
    )


def test_a_twin_process_runs_submitted_workloads_and_reports_back() -> None:
    """Jobs submitted before and after start both complete in the child's scheduler; the
    parent gets running then completed updates with GPU time, and snapshots whose
    simulated time advances tick by tick; stop() ends the child."""
    scenario = load_scenario(BASELINE, {"duration_days": 1})
    twin = TwinProcess(scenario, speed=3000.0, background_demand=False)
    seen: dict[str, list[JobUpdate]] = {}
    done = threading.Event()

    def on_update(updates: list[JobUpdate]) -> None:
        for update in updates:
            seen.setdefault(update.workload_id, []).append(update)
        if all(seen.get(w, [None])[-1] and seen[w][-1].status == "completed" for w in ("a", "b")):
            done.set()

    twin.on_update = on_update
    twin.submit(_job("a"))  # before start: held, then sent
    twin.start()
    try:
        first = twin.snapshot()
        assert twin.alive and first.pools and first.prices_usd_per_mwh
        assert first.tick_wall_s == scenario.dispatch_interval_s / 3000.0
        twin.submit(_job("b"))
        assert done.wait(60.0), seen
        later = twin.snapshot()
        assert later.sim_time_s > first.sim_time_s
        assert later.sim_time_s % scenario.dispatch_interval_s == 0
    finally:
        twin.stop()
    assert not twin.alive
    for workload_id in ("a", "b"):
        statuses = [u.status for u in seen[workload_id]]
        assert statuses[-1] == "completed"
        assert set(statuses) <= {"queued", "running", "completed"}
        assert seen[workload_id][-1].gpu_seconds >= 2 * 600.0


def test_stopping_a_twin_process_does_not_hang() -> None:
    """stop() returns promptly even while the child waits for its next tick."""
    scenario = load_scenario(BASELINE, {"duration_days": 1})
    twin = TwinProcess(scenario, speed=1.0, background_demand=False)
    twin.start()
    began = time.monotonic()
    twin.stop()
    assert time.monotonic() - began < 10.0
    assert not twin.alive
