"""Fleet vocabulary and physics: device states, constants, and pure vectorized functions
for power, hashrate and heat, plus the small input checks both fleets share (the group
tables that map device rows to classes and pools: :mod:`models.fleet_table`).

Physics (units in each function's docstring):

* hashing miner: ``power = nameplate_w * f`` and ``hashrate = nameplate_ths * f**e`` for a
  power target ``f`` (``e = efficiency_exponent < 1``: J/TH improves when underclocked);
* sleeping miner: ``sleep_power_w`` (fans and control board), no hashrate; off and failed: 0;
* waking miner: power and hashrate rise linearly from the sleep level to the target over
  ``ramp_s`` (a cold start from OFF is approximated by the same ramp);
* sleeping a miner is instant (firmware stops hashing within seconds);
* GPUs: busy draws ``tdp_w * power_limit_fraction`` (full load under the cap), spot-rented
  draws ``tdp_w * min(SPOT_LOAD_FRACTION, power_limit_fraction)``, idle ``idle_w``, off 0;
* chip temperature relaxes to ``ambient_c + thermal_c_per_kw * power_kw`` with a first-order
  lag of a few minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from models.hardware import AsicSpec


class FleetError(ValueError):
    """A fleet was built, commanded or stepped with bad input; the message names the field."""


class AsicState(IntEnum):
    """Operating state of one ASIC miner (stored as int8)."""

    ACTIVE = 0
    SLEEPING = 1
    OFF = 2
    FAILED = 3


ACTIVE = int(AsicState.ACTIVE)
SLEEPING = int(AsicState.SLEEPING)
OFF = int(AsicState.OFF)
FAILED = int(AsicState.FAILED)
N_ASIC_STATES = len(AsicState)


class GpuUse(IntEnum):
    """What a GPU is assigned to this interval (stored as int8)."""

    IDLE = 0
    INFERENCE = 1
    BATCH = 2
    TRAINING = 3
    SPOT = 4
    OFF = 5


N_GPU_USES = len(GpuUse)
WORK_USES = (GpuUse.INFERENCE, GpuUse.BATCH, GpuUse.TRAINING)
"""Uses whose busy time comes from the scheduler (customer jobs)."""
WORK_COLUMNS = slice(GpuUse.INFERENCE, GpuUse.TRAINING + 1)
"""WORK_USES as a column slice of ``[pools, N_GPU_USES]`` tables (they are consecutive)."""


class GpuHealth(IntEnum):
    """Health of one GPU (stored as int8)."""

    OK = 0
    FAILED = 1


SPOT_LOAD_FRACTION = 0.85
"""Mean draw of a GPU rented on the spot market as a fraction of TDP [-]. The renter's load is
unknown to us; rented GPUs are counted busy for the whole interval at this average load (the
power cap still applies: ``min(SPOT_LOAD_FRACTION, power_limit_fraction)``)."""

ASIC_THERMAL_TIME_CONSTANT_S = 180.0
"""First-order time constant of a miner's chip temperature [s] (heat sinks, a few minutes)."""

GPU_THERMAL_C_PER_KW = 60.0
"""Steady-state GPU temperature rise over inlet per kW drawn [°C/kW] (700 W -> +42 °C)."""

GPU_THERMAL_TIME_CONSTANT_S = 60.0
"""First-order time constant of a GPU's temperature [s]."""


# --------------------------------------------------------------------------- physics


def asic_hashrate_ths(
    nameplate_ths: np.ndarray | float,
    power_fraction: np.ndarray | float,
    efficiency_exponent: np.ndarray | float,
) -> np.ndarray | float:
    """Hashrate of a hashing miner at a power target [TH/s].

    ``nameplate_ths * power_fraction ** efficiency_exponent``; with an exponent below 1 the
    hashrate falls more slowly than power, so underclocking improves J/TH.

    Args:
        nameplate_ths: hashrate at stock tuning [TH/s].
        power_fraction: power target as a fraction of nameplate power [-].
        efficiency_exponent: the spec's exponent [-].
    """
    return nameplate_ths * np.power(power_fraction, efficiency_exponent)


def asic_active_power_w(
    nameplate_w: np.ndarray | float, power_fraction: np.ndarray | float
) -> np.ndarray | float:
    """Wall power of a hashing miner at a power target [W]: ``nameplate_w * power_fraction``."""
    return nameplate_w * power_fraction


def asic_efficiency_j_per_th(spec: AsicSpec, power_fraction: np.ndarray | float) -> np.ndarray:
    """Efficiency of a hashing miner of ``spec`` at a power target [J/TH]."""
    power_w = asic_active_power_w(spec.power_w, power_fraction)
    hashrate = asic_hashrate_ths(spec.hashrate_ths, power_fraction, spec.efficiency_exponent)
    return np.asarray(power_w) / np.asarray(hashrate)


def asic_class_power_bound_w(
    spec: AsicSpec, active: int, sleeping: int, power_fraction: float
) -> float:
    """Most a class of miners can draw at any instant with ``active`` hashing at
    ``power_fraction`` and ``sleeping`` asleep [W], ramps included.

    A ramp moves linearly between the sleep level and the target, so an active miner never
    draws more than ``max(sleep_power_w, power_w * power_fraction)``.
    """
    per_active_w = max(spec.sleep_power_w, spec.power_w * power_fraction)
    return active * per_active_w + sleeping * spec.sleep_power_w


def ramp_progress(
    t_s: np.ndarray | float, ramp_start_s: np.ndarray | float, ramp_s: np.ndarray | float
) -> np.ndarray:
    """Share of a wake-up ramp done at ``t_s`` [-], 0 before the start, 1 after the end.

    Args:
        t_s: time [s].
        ramp_start_s: when the miner was told to wake [s].
        ramp_s: ramp length [s]; 0 means a step at ``ramp_start_s``.
    """
    ramp = np.asarray(ramp_s, dtype=np.float64)
    elapsed = np.asarray(t_s, dtype=np.float64) - ramp_start_s
    safe = np.where(ramp > 0, ramp, 1.0)
    return np.where(ramp > 0, np.clip(elapsed / safe, 0.0, 1.0), (elapsed >= 0).astype(float))


def ramp_mean_progress(
    t0_s: float, t1_s: float, ramp_start_s: np.ndarray | float, ramp_s: np.ndarray | float
) -> np.ndarray:
    """Mean of :func:`ramp_progress` over ``[t0_s, t1_s]`` [-], computed exactly.

    With ``x = (t - start) / ramp_s`` the progress is ``clip(x, 0, 1)``, whose antiderivative
    is ``G(x) = clip(x, 0, 1)**2 / 2 + max(x - 1, 0)``; the mean is
    ``ramp_s * (G(x1) - G(x0)) / (t1_s - t0_s)``.
    """
    duration_s = t1_s - t0_s
    if not duration_s > 0:
        raise FleetError(f"interval: t1_s must be after t0_s, got [{t0_s}, {t1_s}]")
    ramp = np.asarray(ramp_s, dtype=np.float64)
    start = np.asarray(ramp_start_s, dtype=np.float64)
    safe = np.where(ramp > 0, ramp, 1.0)

    def antiderivative(t_s: float) -> np.ndarray:
        x = (t_s - start) / safe
        inside = np.clip(x, 0.0, 1.0)
        return 0.5 * inside * inside + np.maximum(x - 1.0, 0.0)

    smooth = ramp * (antiderivative(t1_s) - antiderivative(t0_s)) / duration_s
    step = np.clip((t1_s - np.maximum(start, t0_s)) / duration_s, 0.0, 1.0)
    return np.where(ramp > 0, smooth, step)


def steady_temp_c(
    ambient_c: np.ndarray | float,
    power_kw: np.ndarray | float,
    thermal_c_per_kw: np.ndarray | float,
) -> np.ndarray | float:
    """Steady-state chip temperature [°C]: ``ambient_c + thermal_c_per_kw * power_kw``."""
    return ambient_c + thermal_c_per_kw * power_kw


def lagged_temp_c(
    previous_c: np.ndarray | float,
    steady_c: np.ndarray | float,
    dt_s: float,
    time_constant_s: float,
) -> np.ndarray | float:
    """Temperature after ``dt_s`` of first-order relaxation towards ``steady_c`` [°C]."""
    decay = np.exp(-dt_s / time_constant_s) if time_constant_s > 0 else 0.0
    return steady_c + (previous_c - steady_c) * decay


def gpu_throughput_factor(
    power_limit_fraction: np.ndarray | float, throughput_exponent: np.ndarray | float
) -> np.ndarray | float:
    """Throughput of a GPU under an NVML power cap relative to uncapped [-].

    ``power_limit_fraction ** throughput_exponent``: with an exponent below 1, throughput
    falls less than power near the top of the curve.
    """
    return np.power(power_limit_fraction, throughput_exponent)


# --------------------------------------------------------------------------- shared helpers


@dataclass(frozen=True, slots=True)
class ClampResult:
    """Outcome of a power-target command: what was asked, what was applied [-]."""

    requested: float
    applied: float
    lowest: float
    highest: float

    @property
    def clamped(self) -> bool:
        """True when the request was outside ``[lowest, highest]`` and was clamped."""
        return self.applied != self.requested


def clamp_fraction(requested: float, lowest: float, field: str) -> ClampResult:
    """A power target [-] clamped to ``[lowest, 1]``; FleetError naming ``field`` if it is
    not a finite number."""
    if not np.isfinite(requested):
        raise FleetError(f"{field}: must be a finite number, got {requested!r}")
    applied = float(min(1.0, max(lowest, requested)))
    return ClampResult(float(requested), applied, float(lowest), 1.0)


def uniform_value(values: np.ndarray) -> float:
    """The value every element of ``values`` holds, or NaN when they differ (or are none)."""
    if values.size and bool(np.all(values == values[0])):
        return float(values[0])
    return float("nan")


def device_indices(indices: Iterable[int] | np.ndarray, n_devices: int) -> np.ndarray:
    """Device rows as a flat int64 array; FleetError if any lies outside ``[0, n_devices)``."""
    array = np.asarray(indices, dtype=np.int64).ravel()
    if array.size and (array.min() < 0 or array.max() >= n_devices):
        raise FleetError(f"indices: must lie in [0, {n_devices}), got {array.min()}..{array.max()}")
    return array


def as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """``rows`` (sorted, unique) as a slice when they are contiguous: slicing beats gathers."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written through (public fleet columns)."""
    view = array.view()
    view.flags.writeable = False
    return view


def checked_ambient(ambient_c_by_facility: np.ndarray, n_facilities: int) -> np.ndarray:
    """Outdoor temperature per facility [°C] as float32, at least one finite value per
    facility; FleetError otherwise."""
    ambient = np.asarray(ambient_c_by_facility, dtype=np.float32)
    if ambient.ndim != 1 or ambient.shape[0] < n_facilities:
        raise FleetError(
            f"ambient_c_by_facility: need one value per facility (at least {n_facilities}), "
            f"got shape {ambient.shape}"
        )
    if not np.isfinite(ambient).all():
        raise FleetError("ambient_c_by_facility: values must be finite")
    return ambient


def check_interval(t0_s: float, dt_s: float) -> None:
    """FleetError unless a step's start [s] is finite and its length [s] finite and > 0."""
    if not (np.isfinite(t0_s) and np.isfinite(dt_s) and dt_s > 0):
        raise FleetError(f"step: need finite t0_s and dt_s > 0, got t0_s={t0_s}, dt_s={dt_s}")
