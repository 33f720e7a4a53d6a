"""Facility statuses for the operators' view, from what each mode's controller already has:
the recorder's settled rows in sim mode, the measured live samples in live mode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from models.fleet_physics import GpuUse
from models.job_table import RUNNING, JobTable
from twin.recorder import Recorder
from twin.service.fleet_view import FacilityStatus

if TYPE_CHECKING:
    from models.gpu_fleet import GpuFleet
    from twin.live_controller import LiveSample

POWER_USES: dict[str, str] = {
    "mining": "power_mining_mw",
    "inference": "power_inference_mw",
    "batch": "power_batch_mw",
    "training": "power_training_mw",
    "spot": "power_spot_mw",
    "gpu_idle": "power_gpu_idle_mw",
    "overhead": "power_overhead_mw",
}
"""Power use name in the API -> recorder column [MW]."""

GPU_STATES: dict[str, str] = {
    "inference": "gpus_inference",
    "batch": "gpus_batch",
    "training": "gpus_training",
    "spot": "gpus_spot",
    "idle": "gpus_idle",
    "failed": "gpus_failed",
}
"""GPU use or state name in the API -> recorder column (mean GPUs over the interval)."""

_GPU_USE_NAMES = {
    GpuUse.INFERENCE: "inference",
    GpuUse.BATCH: "batch",
    GpuUse.TRAINING: "training",
    GpuUse.SPOT: "spot",
    GpuUse.IDLE: "idle",
}


def recorded_statuses(recorder: Recorder, index: int) -> tuple[FacilityStatus, ...]:
    """Each facility as the sim controller settled and recorded interval ``index``."""

    def value(column: str, f: int) -> float:
        number = float(recorder.column(column)[index, f])
        return 0.0 if math.isnan(number) else number

    return tuple(
        FacilityStatus(
            facility_id=facility_id,
            price_usd_per_mwh=value("price_usd_per_mwh", f),
            power_cap_mw=value("power_cap_mw", f),
            power_total_mw=value("power_total_mw", f),
            power_by_use_mw={use: value(column, f) for use, column in POWER_USES.items()},
            curtailed_mw=value("curtailed_mw", f),
            hashrate_ths=value("hashrate_ths", f),
            asics={
                "active": round(value("asics_active", f)),
                "sleeping": round(value("asics_sleeping", f)),
                "failed": round(value("asics_failed", f)),
            },
            gpus={name: round(value(column, f)) for name, column in GPU_STATES.items()},
            running_jobs=round(value("running_jobs", f)),
            grid_event_fraction=value("grid_event_fraction", f),
            four_cp=value("four_cp", f) > 0,
        )
        for f, facility_id in enumerate(recorder.facility_ids)
    )


def live_statuses(
    samples: Sequence[LiveSample], gpu_fleet: GpuFleet, jobs: JobTable
) -> tuple[FacilityStatus, ...]:
    """Each facility from the latest live tick's samples (one per facility, in facility
    order): the miners as measured; GPUs from the GPU fleet (simulated in emulated mode);
    running jobs from the job table."""
    running = jobs.status == RUNNING
    running_by_facility = np.bincount(
        jobs.facility[running].astype(np.int64), minlength=len(samples)
    )
    by_use = gpu_fleet.counts_by_use()
    failed = gpu_fleet.failed_by_pool()
    statuses = []
    for f, sample in enumerate(samples):
        pools = gpu_fleet.pool_facility == f
        gpus = {name: int(by_use[pools, use].sum()) for use, name in _GPU_USE_NAMES.items()}
        gpus["failed"] = int(failed[pools].sum())
        statuses.append(
            FacilityStatus(
                facility_id=sample.facility_id,
                price_usd_per_mwh=sample.price_usd_per_mwh,
                power_cap_mw=sample.power_cap_mw,
                power_total_mw=sample.measured_mw,
                power_by_use_mw={"mining": sample.measured_mw},
                curtailed_mw=0.0,
                hashrate_ths=sample.hashrate_ths,
                asics={
                    "active": sample.miners_active,
                    "sleeping": sample.miners_sleeping,
                    "failed": sample.miners_failed,
                },
                gpus=gpus,
                running_jobs=int(running_by_facility[f]),
                grid_event_fraction=0.0,
                four_cp=False,
            )
        )
    return tuple(statuses)
