"""Device telemetry in bulk: readings at the PRD rates, generated per dispatch interval.

Devices report every ``interval_s`` (GPU 1 s, ASIC 10 s in the seed PRD); a dispatch interval
holds ``n = ceil(dt_s / interval_s)`` readings at offsets ``interval_s, 2 interval_s, ...,
dt_s`` from its start. A reading is the true value plus Gaussian sensor noise
(:class:`NoiseModel`), so the mean of one device's ``n`` readings is the true mean plus noise
of ``sigma / sqrt(n)``: the whole fleet's interval means cost one draw per device and field,
and only the sampled devices (and the ones the health monitor drills into) get every reading
materialised.

True values inside an interval: power, hashrate and utilisation hold the end-of-interval
value; temperature follows the first-order lag between the interval's start and end values
(exact for constant power). Pure functions; randomness only from the generator passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class NoiseModel:
    """Standard deviation of one reading's sensor noise.

    Attributes:
        power_fraction: of the device's nameplate power [-].
        hashrate_fraction: of the device's nameplate hashrate [-] (ASICs; chip-level
            counters over a 10 s window).
        temp_c: chip temperature [°C].
        util: GPU utilisation [-].
    """

    power_fraction: float = 0.01
    hashrate_fraction: float = 0.02
    temp_c: float = 0.5
    util: float = 0.02


NOISE = NoiseModel()


def reading_offsets_s(dt_s: float, interval_s: float) -> np.ndarray:
    """Offsets [s] of the readings in an interval of ``dt_s`` [s], one at the end of every
    ``interval_s`` [s] reporting period (the last at ``dt_s``)."""
    count = max(1, math.ceil(dt_s / interval_s - 1e-9))
    return np.minimum(np.arange(1, count + 1, dtype=np.float64) * interval_s, dt_s)


def lagged_profile(
    start_c: np.ndarray, end_c: np.ndarray, offsets_s: np.ndarray, dt_s: float, tau_s: float
) -> np.ndarray:
    """First-order lag from ``start_c`` to ``end_c`` over ``dt_s``, at ``offsets_s`` [°C].

    With ``d = exp(-dt_s / tau_s)`` the steady value is ``(end - start * d) / (1 - d)``; the
    result is ``[devices, offsets]``.
    """
    d = math.exp(-dt_s / tau_s)
    steady = (end_c - start_c * d) / (1.0 - d)
    decay = np.exp(-offsets_s / tau_s)
    return steady[:, None] + (start_c - steady)[:, None] * decay[None, :]


def lagged_mean(
    start_c: np.ndarray, end_c: np.ndarray, offsets_s: np.ndarray, dt_s: float, tau_s: float
) -> np.ndarray:
    """Mean of :func:`lagged_profile` over the offsets, without building it [°C]."""
    d = math.exp(-dt_s / tau_s)
    weight = float(np.exp(-offsets_s / tau_s).mean())
    steady = (end_c - start_c * d) / (1.0 - d)
    return steady + (start_c - steady) * weight


def noisy_means(
    rng: np.random.Generator, true_mean: np.ndarray, sigma: np.ndarray | float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Interval means of ``n`` noisy readings, and their standardised noise ``z`` [-]:
    ``true_mean + z * sigma / sqrt(n)`` with ``z`` standard normal."""
    z = rng.standard_normal(true_mean.shape)
    return true_mean + z * (np.asarray(sigma) / math.sqrt(n)), z


class NoisePool:
    """Standard normal noise for whole-fleet arrays, cheaply, from a seeded table.

    Drawing fresh normals for every device and field each interval dominates the cost of
    fleet telemetry (hundreds of thousands per interval). The pool draws ``size`` normals
    once; each request is a copy of a window at a random offset. Values within a request
    are distinct independent draws; a device sees a fresh pool entry each interval (the
    offsets are uniform), so its sequence behaves as independent noise for the control
    charts. The pool's extremes (about 5.5 sigma for 10 million entries) bound the
    noise: limits above them can only be crossed by a real shift.
    """

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self._rng = rng
        self._pool = rng.standard_normal(int(size), dtype=np.float32)

    def draw(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of ``shape`` of standard normal values (a fresh copy)."""
        count = int(np.prod(shape))
        if count > self._pool.size:
            return self._rng.standard_normal(shape, dtype=np.float32)
        start = int(self._rng.integers(0, self._pool.size - count + 1))
        return self._pool[start : start + count].reshape(shape).copy()


def noisy_readings(
    rng: np.random.Generator, profile: np.ndarray, sigma: np.ndarray | float
) -> np.ndarray:
    """Readings ``[devices, n]``: the true ``profile`` plus noise of ``sigma`` per device."""
    scale = np.asarray(sigma, dtype=np.float64)
    if scale.ndim == 1:
        scale = scale[:, None]
    return profile + rng.standard_normal(profile.shape) * scale


def group_summary(
    starts: np.ndarray, reporting: np.ndarray, **values: np.ndarray
) -> dict[str, np.ndarray]:
    """Per contiguous group ``starts[g]:starts[g + 1]`` (a class or pool):
    ``devices_reporting``, and for each named per-device value the sum over reporting devices
    (``<name>_sum``) and, for names ending in ``_c``, their mean and max (``<name>_mean``,
    ``<name>_max``; NaN where none reports)."""
    n_groups = starts.size - 1
    sizes = np.diff(starts)
    nonempty = sizes > 0
    bounds = starts[:-1][nonempty]

    def per_group(array: np.ndarray, reduce: np.ufunc, empty: float) -> np.ndarray:
        out = np.full(n_groups, empty)
        if bounds.size:
            out[nonempty] = reduce.reduceat(array, bounds, dtype=np.float64)
        return out

    everyone = bool(reporting.all())
    count = sizes.astype(np.float64) if everyone else per_group(reporting, np.add, 0.0)
    out = {"devices_reporting": count}
    for name, value in values.items():
        total = per_group(value if everyone else np.where(reporting, value, 0), np.add, 0.0)
        if name.endswith("_c"):
            out[f"{name}_mean"] = np.divide(
                total, count, out=np.full(n_groups, np.nan), where=count > 0
            )
            reported = value if everyone else np.where(reporting, value, -np.inf)
            peak = per_group(reported, np.maximum, -np.inf)
            out[f"{name}_max"] = np.where(count > 0, peak, np.nan)
        else:
            out[f"{name}_sum"] = total
    return out


def sample_rows(starts: np.ndarray, per_group: int) -> np.ndarray:
    """A deterministic device sample: up to ``per_group`` rows spread evenly over each
    group ``starts[g]:starts[g + 1]`` (first, last and between)."""
    picks = []
    for lo, hi in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        size = hi - lo
        if size <= 0 or per_group <= 0:
            continue
        count = min(per_group, size)
        picks.append(lo + np.unique(np.linspace(0, size - 1, count).round().astype(np.int64)))
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
