"""Metering: energy attributed per workload by the twin bridge, and the usage records
(GPU time, inference requests, storage, energy) a finished workload becomes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.hardware import GPU_CATALOG
from twin.scenario import load_scenario
from twin.service.billing import (
    HOURS_PER_MONTH,
    INFERENCE_USD_PER_1K_REQUESTS,
    STORAGE_USD_PER_GB_MONTH,
    gpu_hour_rate,
)
from twin.service.db.models import Workload
from twin.service.metering import (
    MeteringError,
    charged_usd,
    gpu_cost_usd,
    usage_records,
)
from twin.service.twin_bridge import BridgeJob, JobUpdate, TwinBridge

BASELINE = Path(__file__).resolve().parents[3] / "scenarios" / "baseline.yaml"
WORK_POWER_COLUMNS = ("power_inference_mw", "power_batch_mw", "power_training_mw")
"""The recorder's IT power of GPUs doing customer work [MW]."""

MIX = (
    # workload type, GPUs, GPU type, work [s]
    ("ai_inference_batch", 2, "h100_sxm", 600.0),
    ("ai_inference_realtime", 1, None, 1000.0),
    ("model_training", 8, None, 5000.0),
    ("ai_inference_batch", 3, None, 450.0),
    ("ai_inference_batch", 1, "no_such_gpu", 300.0),
)


def _job(workload_id: str, customer: str, kind: tuple, usd_per_gpu_hour: float) -> BridgeJob:
    workload_type, gpus, gpu_type, work_s = kind
    return BridgeJob(
        workload_id=workload_id,
        customer=customer,
        workload_type=workload_type,
        gpus=gpus,
        gpu_type=gpu_type,
        hashrate_ths=0.0,
        work_s=work_s,
        deadline_s=None,
        checkpoint_interval_s=None,
        price_usd_per_gpu_hour=usd_per_gpu_hour,
    )


def _run(jobs: list[BridgeJob], max_ticks: int = 100) -> tuple[TwinBridge, dict[str, JobUpdate]]:
    """Run ``jobs`` in a fresh one-day baseline twin without background demand until all
    finish; returns the bridge and each workload's last update."""
    bridge = TwinBridge(
        load_scenario(BASELINE, {"duration_days": 1}), speed=1e6, background_demand=False
    )
    for job in jobs:
        bridge.submit(job)
    last: dict[str, JobUpdate] = {}
    for _ in range(max_ticks):
        last.update({u.workload_id: u for u in bridge.step()})
        if len(last) == len(jobs) and all(
            u.status in ("completed", "rejected") for u in last.values()
        ):
            return bridge, last
    raise AssertionError(f"workloads still unfinished after {max_ticks} ticks: {last}")


def _recorded(bridge: TwinBridge, column: str) -> np.ndarray:
    """A recorder column over the intervals stepped, ``[intervals, facilities]``."""
    return bridge.controller.recorder.column(column)[
        : bridge.controller.recorder.recorded_intervals
    ]


def test_energy_of_all_api_work_adds_up_to_the_twins_gpu_work_energy() -> None:
    """With only API work in the twin, the energy attributed to the workloads sums to the
    twin's own GPU work energy (IT power of inference, batch and training GPUs x AI-hall
    PUE over every interval), up to float rounding; its cost per kWh lies within the
    facilities' energy cost per kWh."""
    jobs = [_job(f"w{i}", f"c{i % 3}", MIX[i % len(MIX)], 2.5) for i in range(15)]
    bridge, last = _run(jobs)
    completed = [u for u in last.values() if u.status == "completed"]
    assert len(completed) == 12 and all(u.energy_kwh > 0 for u in completed)
    assert all(u.energy_kwh == 0 for u in last.values() if u.status == "rejected")

    dt_h = bridge.controller.interval_s / 3600.0
    it_mw = sum(_recorded(bridge, c) for c in WORK_POWER_COLUMNS)
    twin_kwh = float((it_mw * _recorded(bridge, "pue_ai")).sum() * dt_h * 1000.0)
    attributed_kwh = sum(u.energy_kwh for u in completed)
    terms = it_mw.size * len(jobs)
    tolerance = terms * np.finfo(float).eps * twin_kwh
    assert twin_kwh > 0
    assert abs(attributed_kwh - twin_kwh) <= tolerance

    cost = _recorded(bridge, "cost_energy_usd")
    energy_kwh = _recorded(bridge, "energy_mwh") * 1000.0
    usd_per_kwh = cost[energy_kwh > 0] / energy_kwh[energy_kwh > 0]
    mean_usd_per_kwh = sum(u.energy_cost_usd for u in completed) / attributed_kwh
    assert usd_per_kwh.min() <= mean_usd_per_kwh <= usd_per_kwh.max()


def test_a_lone_job_is_attributed_its_gpus_power_times_pue_while_it_ran() -> None:
    """One 2-GPU job filling two whole intervals: its GPUs are busy all the time, so it is
    attributed 2 x TDP x PUE of each interval it ran, and 1,200 GPU-seconds over 600 s."""
    bridge, last = _run([_job("w", "c", MIX[0], 2.5)])
    update = last["w"]
    assert update.status == "completed"
    assert update.gpu_seconds == pytest.approx(1200.0)
    assert update.run_wall_s == pytest.approx(600.0)
    facility = bridge.world.facility_ids.index(update.facility_id)
    pue = _recorded(bridge, "pue_ai")[:2, facility]
    tdp_kw = GPU_CATALOG["h100_sxm"].tdp_w / 1000.0
    expected_kwh = float((2 * tdp_kw * pue * bridge.controller.interval_s / 3600.0).sum())
    assert update.energy_kwh == pytest.approx(expected_kwh, rel=1e-6)


def _workload(update: JobUpdate, customer: str, **requirements: object) -> Workload:
    """The stored workload behind ``update`` (not in a database: metering only reads it)."""
    ended = datetime(2026, 11, 1, 12, tzinfo=UTC)
    return Workload(
        id=update.workload_id,
        customer_id=customer,
        workload_type=requirements.pop("workload_type", "ai_inference_batch"),
        requirements={"estimated_duration_s": 600.0, **requirements},
        started_at=ended - timedelta(seconds=update.run_wall_s),
        completed_at=ended,
    )


def _lines(records: list) -> dict[tuple[str, str, str], tuple[float, float]]:
    """Records summed per (resource_type, unit, pricing), as the usage endpoint does."""
    lines: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in records:
        line = lines[(r.resource_type, r.unit, r.pricing)]
        line[0] += r.quantity
        line[1] += float(r.price_usd)
    return {key: (q, usd) for key, (q, usd) in lines.items()}


def test_a_customers_usage_shows_gpu_time_requests_storage_and_energy() -> None:
    """A customer's completed inference (with data and a declared request count) and
    training workloads give lines in gpu_s, requests, gb_h and kwh; requests and storage
    are billed at their pay-per-use prices, energy is attributed at no charge, and the
    lines add up to the workloads' costs."""
    kinds = {"inference": MIX[0], "realtime": MIX[1], "training": MIX[2]}
    _, last = _run([_job(name, "c", kind, 2.5) for name, kind in kinds.items()])
    workloads = {
        "inference": _workload(
            last["inference"],
            "c",
            pricing="pay_per_use",
            usd_per_gpu_hour=2.5,
            requests=20_000,
            data_gb=500.0,
        ),
        "realtime": _workload(
            last["realtime"],
            "c",
            workload_type="ai_inference_realtime",
            pricing="spot",
            usd_per_gpu_hour=gpu_hour_rate("spot", 1.3),
            requests=5_000,
        ),
        "training": _workload(
            last["training"],
            "c",
            workload_type="model_training",
            pricing="reserved",
            usd_per_gpu_hour=gpu_hour_rate("reserved"),
            requests=99,
            data_gb=2000.0,
        ),
    }
    records = []
    costs = []
    for name, workload in workloads.items():
        own = usage_records(workload, last[name], gpu_cost_usd(workload, last[name]))
        records += own
        costs.append(charged_usd(own))
    lines = _lines(records)
    assert {unit for _, unit, _ in lines} == {"gpu_s", "requests", "gb_h", "kwh"}

    requests = lines[("inference", "requests", "pay_per_use")]
    assert requests[0] == 25_000  # training's declared count is not inference
    assert requests[1] == pytest.approx(25_000 / 1000 * INFERENCE_USD_PER_1K_REQUESTS)
    gb_h = 500.0 * last["inference"].run_wall_s / 3600 + 2000.0 * last["training"].run_wall_s / 3600
    storage = lines[("storage", "gb_h", "pay_per_use")]
    assert storage[0] == pytest.approx(gb_h)
    assert storage[1] == pytest.approx(gb_h * STORAGE_USD_PER_GB_MONTH / HOURS_PER_MONTH, abs=1e-6)
    energy = [line for (kind, unit, _), line in lines.items() if unit == "kwh"]
    assert sum(q for q, _ in energy) == pytest.approx(sum(u.energy_kwh for u in last.values()))
    assert all(usd == 0 for _, usd in energy)
    for name, workload in workloads.items():
        gpu = lines[(f"gpu:{last[name].gpu_type}", "gpu_s", workload.requirements["pricing"])]
        rate = workload.requirements["usd_per_gpu_hour"]
        assert gpu[1] == pytest.approx(last[name].gpu_seconds / 3600 * rate, abs=1e-6)
    assert sum(usd for _, usd in lines.values()) == pytest.approx(sum(costs), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    gpu_seconds=st.floats(0, 1e7),
    rate=st.floats(0, 50),
    requests=st.integers(0, 10**9),
    data_gb=st.floats(0, 1e6),
    run_wall_s=st.floats(0, 1e6),
    energy_kwh=st.floats(0, 1e5),
    workload_type=st.sampled_from(["ai_inference_batch", "model_training"]),
)
def test_records_charge_the_sum_of_their_prices(
    gpu_seconds, rate, requests, data_gb, run_wall_s, energy_kwh, workload_type
) -> None:
    """For any usage, a workload's charge is its GPU cost plus requests (inference only)
    and storage at their rates; energy adds nothing; no record has a negative quantity and
    only GPU time is written at zero."""
    update = JobUpdate(
        "w", "completed", "f", 0.0, 0.0, "", gpu_seconds, "h100_sxm", energy_kwh, 0.0, run_wall_s
    )
    workload = _workload(
        update,
        "c",
        workload_type=workload_type,
        usd_per_gpu_hour=rate,
        requests=requests,
        data_gb=data_gb,
    )
    gpu_usd = gpu_cost_usd(workload, update)
    records = usage_records(workload, update, gpu_usd)
    billed_requests = requests if workload_type == "ai_inference_batch" else 0
    expected = (
        gpu_usd
        + round(billed_requests / 1000 * INFERENCE_USD_PER_1K_REQUESTS, 6)
        + round(data_gb * run_wall_s / 3600 * STORAGE_USD_PER_GB_MONTH / HOURS_PER_MONTH, 6)
    )
    assert charged_usd(records) == pytest.approx(expected, abs=1e-6)
    assert records[0].unit == "gpu_s" and records[0].quantity == gpu_seconds
    assert all(r.quantity > 0 for r in records[1:])
    assert all(r.quantity >= 0 and float(r.price_usd) >= 0 for r in records)


@pytest.mark.parametrize(
    ("requirements", "field"),
    [
        ({"requests": -1}, "requests"),
        ({"requests": 2.5}, "requests"),
        ({"requests": "many"}, "requests"),
        ({"data_gb": -3.0}, "data_gb"),
        ({"usd_per_gpu_hour": float("inf")}, "usd_per_gpu_hour"),
    ],
)
def test_a_bad_stored_value_is_refused_naming_its_field(requirements, field) -> None:
    """Metering refuses values it cannot bill and says which requirement is wrong."""
    update = JobUpdate("w", "completed", "f", 0.0, 0.0, "", 60.0, "h100_sxm", 1.0, 0.0, 60.0)
    workload = _workload(update, "c", **requirements)
    with pytest.raises(MeteringError, match=field):
        usage_records(workload, update, gpu_cost_usd(workload, update))
