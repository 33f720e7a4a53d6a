"""Fleet state as numpy arrays, and the physics of power, hashrate and heat.

Every device is one row in a set of columns (``state``, ``power_fraction``, ``power_w``,
``hashrate_ths``, ``temp_c`` ...). Devices of one (facility, model) — an ASIC *class* — or of
one (facility, GPU type) — a GPU *pool* — sit in one contiguous slice, so counting and
choosing devices is slicing, and per-class sums are one ``np.add.reduceat``/``np.bincount``.
Nothing here loops over devices in Python; loops run over classes or pools at most.

Time is ``t_s`` (seconds since scenario start). Commands act at an instant ``t_s``; a step
integrates the physics over ``[t0_s, t0_s + dt_s)``. Readings (``power_w``,
``hashrate_ths``, ``temp_c``, ``util``) are the instantaneous values at the end of the last
step; step results are interval means.

This module gathers the public names of :mod:`models.fleet_physics` (states, constants,
physics functions), :mod:`models.asic_fleet` and :mod:`models.gpu_fleet`.
"""

from models.asic_fleet import AsicFleet, AsicStepResult
from models.fleet_physics import (
    ACTIVE,
    ASIC_THERMAL_TIME_CONSTANT_S,
    FAILED,
    GPU_THERMAL_C_PER_KW,
    GPU_THERMAL_TIME_CONSTANT_S,
    N_ASIC_STATES,
    N_GPU_USES,
    OFF,
    SLEEPING,
    SPOT_LOAD_FRACTION,
    WORK_USES,
    AsicState,
    ClampResult,
    FleetError,
    GpuHealth,
    GpuUse,
    asic_active_power_w,
    asic_class_power_bound_w,
    asic_efficiency_j_per_th,
    asic_hashrate_ths,
    gpu_throughput_factor,
    lagged_temp_c,
    ramp_mean_progress,
    ramp_progress,
    steady_temp_c,
)
from models.gpu_fleet import GpuFleet, GpuStepResult, UseAssignment

__all__ = [
    "ACTIVE",
    "ASIC_THERMAL_TIME_CONSTANT_S",
    "FAILED",
    "GPU_THERMAL_C_PER_KW",
    "GPU_THERMAL_TIME_CONSTANT_S",
    "N_ASIC_STATES",
    "N_GPU_USES",
    "OFF",
    "SLEEPING",
    "SPOT_LOAD_FRACTION",
    "WORK_USES",
    "AsicFleet",
    "AsicState",
    "AsicStepResult",
    "ClampResult",
    "FleetError",
    "GpuFleet",
    "GpuHealth",
    "GpuStepResult",
    "GpuUse",
    "UseAssignment",
    "asic_active_power_w",
    "asic_class_power_bound_w",
    "asic_efficiency_j_per_th",
    "asic_hashrate_ths",
    "gpu_throughput_factor",
    "lagged_temp_c",
    "ramp_mean_progress",
    "ramp_progress",
    "steady_temp_c",
]
