"""Fleet state as numpy arrays, and the physics of power, hashrate and heat.

Every device is one row in a set of columns (``state``, ``power_fraction``, ``power_w``,
``hashrate_ths``, ``temp_c`` ...). Devices of one (facility, model) — an ASIC *class* — or of
one (facility, GPU type) — a GPU *pool* — sit in one contiguous slice, so counting and
choosing devices is slicing, and per-class sums are one ``np.add.reduceat``/``np.bincount``.
Nothing here loops over devices in Python; loops run over classes or pools at most.

Time is ``t_s`` (seconds since scenario start). Commands act at an instant ``t_s``; a step
integrates the physics over ``[t0_s, t0_s + dt_s)`` assuming the commanded states hold for
the whole interval, except wake-up ramps, whose energy is integrated analytically from
their start time. Readings (``power_w``, ``hashrate_ths``, ``temp_c``, ``util``) are the
instantaneous values at the end of the last step; step results are interval means.

Physics (pure functions below, vectorized, units in their docstrings):

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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from models.hardware import AsicSpec, GpuSpec


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


def _clamp_fraction(requested: float, lowest: float, field: str) -> ClampResult:
    if not np.isfinite(requested):
        raise FleetError(f"{field}: must be a finite number, got {requested!r}")
    applied = float(min(1.0, max(lowest, requested)))
    return ClampResult(float(requested), applied, float(lowest), 1.0)


def _device_indices(indices: Iterable[int] | np.ndarray, n_devices: int) -> np.ndarray:
    array = np.asarray(indices, dtype=np.int64).ravel()
    if array.size and (array.min() < 0 or array.max() >= n_devices):
        raise FleetError(f"indices: must lie in [0, {n_devices}), got {array.min()}..{array.max()}")
    return array


def _as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """``rows`` (sorted, unique) as a slice when they are contiguous: slicing beats gathers."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _facility_count(facilities: Sequence[int], n_facilities: int | None) -> int:
    highest = max(facilities, default=-1) + 1
    if n_facilities is None:
        return highest
    if n_facilities < highest:
        raise FleetError(f"n_facilities: {n_facilities} is less than the groups need ({highest})")
    return n_facilities


def _ambient(ambient_c_by_facility: np.ndarray, n_facilities: int) -> np.ndarray:
    ambient = np.asarray(ambient_c_by_facility, dtype=np.float32)
    if ambient.ndim != 1 or ambient.shape[0] < n_facilities:
        raise FleetError(
            f"ambient_c_by_facility: need one value per facility (at least {n_facilities}), "
            f"got shape {ambient.shape}"
        )
    if not np.all(np.isfinite(ambient)):
        raise FleetError("ambient_c_by_facility: values must be finite")
    return ambient


def _check_group_sizes(where: str, facility: int, count: int) -> None:
    if int(facility) != facility or facility < 0:
        raise FleetError(f"{where}: facility index must be an integer >= 0, got {facility}")
    if int(count) != count or count < 0:
        raise FleetError(f"{where}: count must be an integer >= 0, got {count}")


def _slice_table(
    rows: Sequence[tuple[int, int, int]],
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Distinct sorted (facility, spec index) keys of ``(facility, spec, count)`` rows and
    the start offset of each key's slice (one more entry than keys)."""
    totals: dict[tuple[int, int], int] = {}
    for facility, spec_index, count in rows:
        totals[(facility, spec_index)] = totals.get((facility, spec_index), 0) + count
    keys = sorted(totals)
    starts = np.zeros(len(keys) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([totals[k] for k in keys], dtype=np.int64)
    return keys, starts


def _spec_index(specs: Sequence[AsicSpec] | Sequence[GpuSpec], key: int | str, field: str) -> int:
    """Position in ``specs`` of a spec given by position or by id (``model_id``/``type_id``)."""
    if isinstance(key, str):
        for i, spec in enumerate(specs):
            if getattr(spec, field) == key:
                return i
        raise FleetError(f"{field}: {key!r} is not in this fleet")
    if int(key) != key or not 0 <= int(key) < len(specs):
        raise FleetError(f"{field}: index {key} outside [0, {len(specs)})")
    return int(key)


def _check_interval(t0_s: float, dt_s: float) -> None:
    if not (np.isfinite(t0_s) and np.isfinite(dt_s) and dt_s > 0):
        raise FleetError(f"step: need finite t0_s and dt_s > 0, got t0_s={t0_s}, dt_s={dt_s}")


# --------------------------------------------------------------------------- ASICs


@dataclass(frozen=True, slots=True)
class AsicStepResult:
    """ASIC fleet over one interval, per (facility, model) class: arrays ``[n_facilities,
    n_models]`` indexed by facility index and model index (``AsicFleet.models``).

    Attributes:
        t0_s: interval start [s].
        dt_s: interval length [s].
        mean_power_kw: mean IT power drawn over the interval [kW].
        energy_kwh: IT energy drawn, ``mean_power_kw * dt_s / 3600`` [kWh].
        mean_hashrate_ths: mean hashrate over the interval [TH/s].
        active, sleeping, off, failed: devices in each state during the interval [-].
        ramping: active devices whose wake-up ramp overlapped the interval [-].
    """

    t0_s: float
    dt_s: float
    mean_power_kw: np.ndarray
    energy_kwh: np.ndarray
    mean_hashrate_ths: np.ndarray
    active: np.ndarray
    sleeping: np.ndarray
    off: np.ndarray
    failed: np.ndarray
    ramping: np.ndarray

    def facility_power_kw(self) -> np.ndarray:
        """Mean IT power of all ASICs per facility [kW], shape ``[n_facilities]``."""
        return self.mean_power_kw.sum(axis=1)

    def facility_energy_kwh(self) -> np.ndarray:
        """IT energy of all ASICs per facility [kWh], shape ``[n_facilities]``."""
        return self.energy_kwh.sum(axis=1)

    def facility_hashrate_ths(self) -> np.ndarray:
        """Mean hashrate per facility [TH/s], shape ``[n_facilities]``."""
        return self.mean_hashrate_ths.sum(axis=1)


class AsicFleet:
    """All ASIC miners as columns; build with :meth:`from_groups`.

    Public columns (read-only views, one row per device, updated in place by the fleet):
    ``facility`` (int16), ``model`` (int16 index into ``models``), ``state`` (int8
    :class:`AsicState`), ``power_fraction`` (float32 target, fraction of nameplate),
    ``ramp_start_s`` (float64, NaN when not ramping), readings ``power_w``,
    ``hashrate_ths``, ``temp_c`` (float32, instantaneous at the end of the last step).

    Class table: class ``c`` covers devices ``class_start[c]:class_start[c + 1]`` at facility
    ``class_facility[c]`` of model ``class_model[c]``; ``class_grid[f, m]`` is the class of
    (facility, model) or -1.

    Speed: the steady (ramp-free) power and hashrate of every miner, and their per-class
    sums and state counts, are kept up to date by the commands, which touch one class at a
    time. A step then only corrects for ramping miners and updates temperatures, so it
    costs little more than one pass over the temperature column. Change state only through
    the command methods.
    """

    def __init__(
        self,
        models: list[AsicSpec],
        n_facilities: int,
        class_facility: np.ndarray,
        class_model: np.ndarray,
        class_start: np.ndarray,
        power_fraction: np.ndarray,
        ambient_c: float,
    ) -> None:
        """Use :meth:`from_groups`; this takes the already sorted class table."""
        self.models = list(models)
        self.n_facilities = int(n_facilities)
        self.class_facility = _read_only(class_facility.astype(np.int16))
        self.class_model = _read_only(class_model.astype(np.int16))
        self.class_start = _read_only(class_start.astype(np.int64))
        n_classes = class_facility.shape[0]
        grid = np.full((self.n_facilities, len(self.models)), -1, dtype=np.int32)
        grid[class_facility, class_model] = np.arange(n_classes)
        self.class_grid = _read_only(grid)
        self._class_size = np.diff(self.class_start)

        def per_model(attribute: str) -> np.ndarray:
            return np.array([getattr(m, attribute) for m in self.models], dtype=np.float64)

        self._model_nameplate_w = per_model("power_w")
        self._model_nameplate_ths = per_model("hashrate_ths")
        self._model_sleep_w = per_model("sleep_power_w")
        self._model_ramp_s = per_model("ramp_s")
        self._model_exponent = per_model("efficiency_exponent")
        self._model_min_fraction = per_model("min_power_fraction")

        n = int(self.class_start[-1])
        self._facility = np.repeat(self.class_facility, self._class_size).astype(np.int16)
        self._model = np.repeat(self.class_model, self._class_size).astype(np.int16)
        self._state = np.full(n, ACTIVE, dtype=np.int8)
        self._power_fraction = power_fraction.astype(np.float32)
        self._ramp_start_s = np.full(n, np.nan, dtype=np.float64)
        self._maybe_ramping = False
        thermal = per_model("thermal_c_per_kw")[self._model] / 1000.0
        self._thermal_c_per_w = thermal.astype(np.float32)
        # caches kept current by _refresh_class: see the class docstring
        self._hash_fraction = np.empty(n, dtype=np.float32)
        self._steady_w = np.zeros(n, dtype=np.float32)
        self._steady_ths = np.zeros(n, dtype=np.float32)
        self._class_counts = np.zeros((n_classes, N_ASIC_STATES), dtype=np.int64)
        self._class_steady_w = np.zeros(n_classes, dtype=np.float64)
        self._class_steady_ths = np.zeros(n_classes, dtype=np.float64)
        for class_id in range(n_classes):
            self._refresh_class(class_id, power_fraction_changed=True)

        self._power_w = self._steady_w.copy()
        self._hashrate_ths = self._steady_ths.copy()
        self._temp_c = (ambient_c + self._thermal_c_per_w * self._power_w).astype(np.float32)

        self.facility = _read_only(self._facility)
        self.model = _read_only(self._model)
        self.state = _read_only(self._state)
        self.power_fraction = _read_only(self._power_fraction)
        self.ramp_start_s = _read_only(self._ramp_start_s)
        self.power_w = _read_only(self._power_w)
        self.hashrate_ths = _read_only(self._hashrate_ths)
        self.temp_c = _read_only(self._temp_c)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[tuple[int, AsicSpec, int, float]],
        n_facilities: int | None = None,
        ambient_c: float = 25.0,
    ) -> AsicFleet:
        """Build a fleet from ``(facility_index, spec, count, power_target_fraction)`` groups.

        Groups of one (facility, model) merge into one class; classes are ordered by
        facility, then by first appearance of the model. Every miner starts ACTIVE and fully
        ramped at its group's power target, its temperature at steady state for
        ``ambient_c`` [°C]. ``n_facilities`` defaults to the highest facility index + 1.

        Raises:
            FleetError: negative facility or count, a power target outside
                ``[spec.min_power_fraction, 1]``, or two different specs with one model id.
        """
        models: list[AsicSpec] = []
        index_of: dict[str, int] = {}
        rows: list[tuple[int, int, int, float]] = []
        for i, (facility, spec, count, fraction) in enumerate(groups):
            where = f"asic group {i} ({spec.model_id})"
            _check_group_sizes(where, facility, count)
            if not spec.min_power_fraction <= fraction <= 1.0:
                raise FleetError(
                    f"{where}: power_target_fraction {fraction} is outside "
                    f"[{spec.min_power_fraction}, 1]"
                )
            known = index_of.get(spec.model_id)
            if known is None:
                index_of[spec.model_id] = len(models)
                models.append(spec)
            elif models[known] != spec:
                raise FleetError(f"{where}: two different specs share model id {spec.model_id!r}")
            rows.append((int(facility), index_of[spec.model_id], int(count), float(fraction)))
        facilities = _facility_count([r[0] for r in rows], n_facilities)

        rows.sort(key=lambda r: (r[0], r[1]))
        keys, starts = _slice_table([(r[0], r[1], r[2]) for r in rows])
        power_fraction = np.repeat(
            np.array([r[3] for r in rows], dtype=np.float32), [r[2] for r in rows]
        )
        return cls(
            models,
            facilities,
            np.array([k[0] for k in keys], dtype=np.int16),
            np.array([k[1] for k in keys], dtype=np.int16),
            starts,
            power_fraction,
            ambient_c,
        )

    # ---------------------------------------------------------------- lookup

    @property
    def n_devices(self) -> int:
        """Number of miners."""
        return int(self.class_start[-1])

    @property
    def n_classes(self) -> int:
        """Number of (facility, model) classes."""
        return int(self.class_facility.shape[0])

    def model_index(self, model: int | str) -> int:
        """Index into ``models`` of a model given by index or ``model_id``."""
        return _spec_index(self.models, model, "model_id")

    def class_index(self, facility: int, model: int | str) -> int:
        """The class id of (facility, model); FleetError if the facility has no such miners."""
        m = self.model_index(model)
        if not 0 <= facility < self.n_facilities or self.class_grid[facility, m] < 0:
            raise FleetError(f"facility {facility} has no ASICs of model {self.models[m].model_id}")
        return int(self.class_grid[facility, m])

    def class_slice(self, class_id: int) -> slice:
        """Device rows of one class."""
        if not 0 <= class_id < self.n_classes:
            raise FleetError(f"class_id: {class_id} outside [0, {self.n_classes})")
        return slice(int(self.class_start[class_id]), int(self.class_start[class_id + 1]))

    def state_counts(self) -> np.ndarray:
        """Miners per state now, ``[n_facilities, n_models, 4]`` indexed by AsicState."""
        grid = np.zeros((self.n_facilities, len(self.models), N_ASIC_STATES), dtype=np.int64)
        grid[self.class_facility, self.class_model] = self._class_counts
        return grid

    # ---------------------------------------------------------------- commands

    def set_active_count(self, facility: int, model: int | str, n: int, t_s: float) -> int:
        """Make exactly ``min(n, healthy)`` miners of a class hash; return how many changed.

        Wakes sleeping miners (lowest index first), then OFF ones, each starting a ramp at
        ``t_s`` [s]; or sleeps active miners (highest index first), instantly. Failed
        miners are never chosen.
        """
        if int(n) != n or n < 0:
            raise FleetError(f"active_count: must be an integer >= 0, got {n}")
        if not np.isfinite(t_s):
            raise FleetError(f"t_s: must be finite, got {t_s}")
        class_id = self.class_index(facility, model)
        rows = self.class_slice(class_id)
        counts = self._class_counts[class_id]
        target = min(int(n), int(self._class_size[class_id] - counts[FAILED]))
        active_now = int(counts[ACTIVE])
        if target == active_now:
            return 0
        state = self._state[rows]
        if target > active_now:
            wake = np.concatenate([np.flatnonzero(state == SLEEPING), np.flatnonzero(state == OFF)])
            changed = wake[: target - active_now] + rows.start
            ramp_s = self._model_ramp_s[self.class_model[class_id]]
            self._set_states(class_id, changed, ACTIVE, t_s if ramp_s > 0 else np.nan)
            self._maybe_ramping |= bool(ramp_s > 0)
        else:
            changed = np.flatnonzero(state == ACTIVE)[target:] + rows.start
            self._set_states(class_id, changed, SLEEPING, np.nan)
        return int(changed.size)

    def set_power_fraction(
        self, facility: int, model: int | str, fraction: float, t_s: float
    ) -> ClampResult:
        """Set the power target of every miner of a class (hashing or not) at ``t_s`` [s].

        The target is clamped to ``[spec.min_power_fraction, 1]``; the result says whether it
        was. The change is instant for hashing miners and sets the ramp target of waking
        ones.
        """
        class_id = self.class_index(facility, model)
        lowest = self._model_min_fraction[self.class_model[class_id]]
        result = _clamp_fraction(fraction, lowest, "power_fraction")
        self._power_fraction[self.class_slice(class_id)] = result.applied
        self._refresh_class(class_id, power_fraction_changed=True)
        return result

    def fail(self, indices: Iterable[int] | np.ndarray) -> None:
        """Mark miners FAILED (they draw nothing and cannot be woken until repaired)."""
        rows = _device_indices(indices, self.n_devices)
        self._state[rows] = FAILED
        self._ramp_start_s[rows] = np.nan
        self._refresh_rows(rows)

    def repair(self, indices: Iterable[int] | np.ndarray) -> None:
        """Return FAILED miners to service as SLEEPING; other miners are left alone."""
        rows = _device_indices(indices, self.n_devices)
        rows = rows[self._state[rows] == FAILED]
        self._state[rows] = SLEEPING
        self._refresh_rows(rows)

    def power_off(self, indices: Iterable[int] | np.ndarray) -> None:
        """Switch non-failed miners OFF (no draw); ``set_active_count`` may wake them later."""
        rows = _device_indices(indices, self.n_devices)
        rows = rows[self._state[rows] != FAILED]
        self._state[rows] = OFF
        self._ramp_start_s[rows] = np.nan
        self._refresh_rows(rows)

    # ---------------------------------------------------------------- physics

    def power_w_at(self, t_s: float) -> np.ndarray:
        """Instantaneous wall power of every miner at ``t_s`` for the current states [W]."""
        power = self._steady_w.copy()
        ramping = self._ramping_rows()
        if ramping.size:
            progress = ramp_progress(t_s, self._ramp_start_s[ramping], self._ramp_s(ramping))
            sleep_w = self._model_sleep_w[self._model[ramping]]
            power[ramping] = sleep_w + (power[ramping] - sleep_w) * progress
        return power

    def hashrate_ths_at(self, t_s: float) -> np.ndarray:
        """Instantaneous hashrate of every miner at ``t_s`` for the current states [TH/s]."""
        hashrate = self._steady_ths.copy()
        ramping = self._ramping_rows()
        if ramping.size:
            progress = ramp_progress(t_s, self._ramp_start_s[ramping], self._ramp_s(ramping))
            hashrate[ramping] *= progress
        return hashrate

    def step(self, t0_s: float, dt_s: float, ambient_c_by_facility: np.ndarray) -> AsicStepResult:
        """Advance the fleet over ``[t0_s, t0_s + dt_s)``; update readings; return class means.

        Args:
            t0_s: interval start [s].
            dt_s: interval length [s], > 0.
            ambient_c_by_facility: outdoor temperature per facility index [°C]; may be longer
                than ``n_facilities`` (results then have one row per entry).

        Ramps are averaged exactly over the interval; ramps that end by ``t0_s + dt_s`` are
        cleared. Temperatures relax towards the end-of-interval power.
        """
        _check_interval(t0_s, dt_s)
        ambient = _ambient(ambient_c_by_facility, self.n_facilities)
        n_classes = self.n_classes
        sum_power_w = self._class_steady_w.copy()
        sum_hash_ths = self._class_steady_ths.copy()
        ramping_per_class = np.zeros(n_classes, dtype=np.int64)
        self._power_w[:] = self._steady_w
        self._hashrate_ths[:] = self._steady_ths

        ramping = self._ramping_rows()
        if ramping.size:
            bounds = np.searchsorted(ramping, self.class_start)
            for class_id in np.flatnonzero(np.diff(bounds)):
                rows = _as_slice(ramping[bounds[class_id] : bounds[class_id + 1]])
                power_short_w, hash_short_ths, overlapping = self._ramp_class(
                    int(class_id), rows, t0_s, dt_s
                )
                sum_power_w[class_id] -= power_short_w
                sum_hash_ths[class_id] -= hash_short_ths
                ramping_per_class[class_id] = overlapping

        ambient_by_device = np.repeat(ambient[self.class_facility], self._class_size)
        steady_c = ambient_by_device + self._thermal_c_per_w * self._power_w
        decay = np.float32(np.exp(-dt_s / ASIC_THERMAL_TIME_CONSTANT_S))
        self._temp_c -= steady_c
        self._temp_c *= decay
        self._temp_c += steady_c

        rows = ambient.shape[0]

        def grid(per_class: np.ndarray) -> np.ndarray:
            out = np.zeros((rows, len(self.models), *per_class.shape[1:]), dtype=per_class.dtype)
            out[self.class_facility, self.class_model] = per_class
            return out

        mean_power_kw = grid(sum_power_w / 1000.0)
        counts = grid(self._class_counts)
        return AsicStepResult(
            t0_s=float(t0_s),
            dt_s=float(dt_s),
            mean_power_kw=mean_power_kw,
            energy_kwh=mean_power_kw * (dt_s / 3600.0),
            mean_hashrate_ths=grid(sum_hash_ths),
            active=counts[:, :, ACTIVE],
            sleeping=counts[:, :, SLEEPING],
            off=counts[:, :, OFF],
            failed=counts[:, :, FAILED],
            ramping=grid(ramping_per_class),
        )

    # ---------------------------------------------------------------- internals

    def _ramp_class(
        self, class_id: int, rows: slice | np.ndarray, t0_s: float, dt_s: float
    ) -> tuple[float, float, int]:
        """Ramp bookkeeping of one class's ramping ``rows`` over ``[t0_s, t0_s + dt_s)``.

        Writes end-of-interval readings, clears finished ramps, and returns how much less
        power [W] and hashrate [TH/s] the ramping miners delivered on average than their
        steady values, and how many ramps overlapped the interval.
        """
        m = self.class_model[class_id]
        ramp_s = float(self._model_ramp_s[m])
        sleep_w = float(self._model_sleep_w[m])
        start = self._ramp_start_s[rows]
        x0 = (t0_s - start) / ramp_s
        x1 = x0 + dt_s / ramp_s
        end_progress = np.minimum(np.maximum(x1, 0.0), 1.0)
        start_progress = np.minimum(np.maximum(x0, 0.0), 1.0)
        # exact mean of clip(x, 0, 1) over [x0, x1]: antiderivative x**2/2 on [0, 1], x - 1/2 after
        area = 0.5 * (end_progress * end_progress - start_progress * start_progress)
        area += np.maximum(x1 - 1.0, 0.0) - np.maximum(x0 - 1.0, 0.0)
        missing = 1.0 - area * (ramp_s / dt_s)
        span_w = self._steady_w[rows] - sleep_w
        full_ths = self._steady_ths[rows]
        self._power_w[rows] = sleep_w + span_w * end_progress
        self._hashrate_ths[rows] = full_ths * end_progress
        overlapping = int(np.count_nonzero((x1 > 0.0) & (x0 < 1.0)))
        finished = x1 >= 1.0
        if isinstance(rows, slice):
            self._ramp_start_s[rows][finished] = np.nan
        else:
            self._ramp_start_s[rows[finished]] = np.nan
        return float(span_w @ missing), float(full_ths @ missing), overlapping

    def _ramp_s(self, rows: np.ndarray) -> np.ndarray:
        return self._model_ramp_s[self._model[rows]]

    def _ramping_rows(self) -> np.ndarray:
        """Rows with a ramp in progress (a full scan only after a wake-up)."""
        if not self._maybe_ramping:
            return np.zeros(0, dtype=np.int64)
        rows = np.flatnonzero(~np.isnan(self._ramp_start_s))
        self._maybe_ramping = rows.size > 0
        return rows

    def _set_states(
        self, class_id: int, rows: np.ndarray, new_state: int, ramp_start_s: float
    ) -> None:
        """Move ``rows`` of one class to ``new_state`` and update the caches by difference.

        The cached sums hold float32 values in float64, which add and subtract exactly at
        fleet scale, so updating by difference does not drift.
        """
        counts = self._class_counts[class_id]
        counts -= np.bincount(self._state[rows], minlength=N_ASIC_STATES)
        counts[new_state] += rows.size
        self._class_steady_w[class_id] -= self._steady_w[rows].sum(dtype=np.float64)
        self._class_steady_ths[class_id] -= self._steady_ths[rows].sum(dtype=np.float64)
        self._state[rows] = new_state
        self._ramp_start_s[rows] = ramp_start_s
        m = self.class_model[class_id]
        if new_state == ACTIVE:
            power_w = np.float32(self._model_nameplate_w[m]) * self._power_fraction[rows]
            hash_ths = np.float32(self._model_nameplate_ths[m]) * self._hash_fraction[rows]
        else:
            level_w = self._model_sleep_w[m] if new_state == SLEEPING else 0.0
            power_w = np.full(rows.size, level_w, dtype=np.float32)
            hash_ths = np.zeros(rows.size, dtype=np.float32)
        self._steady_w[rows] = power_w
        self._steady_ths[rows] = hash_ths
        self._class_steady_w[class_id] += power_w.sum(dtype=np.float64)
        self._class_steady_ths[class_id] += hash_ths.sum(dtype=np.float64)

    def _refresh_rows(self, rows: np.ndarray) -> None:
        owners = np.searchsorted(self.class_start, rows, side="right") - 1
        for class_id in np.unique(owners):
            self._refresh_class(int(class_id))

    def _refresh_class(self, class_id: int, power_fraction_changed: bool = False) -> None:
        """Recompute one class's steady power and hashrate, their sums and state counts."""
        rows = self.class_slice(class_id)
        m = self.class_model[class_id]
        if power_fraction_changed:
            exponent = np.float32(self._model_exponent[m])
            self._hash_fraction[rows] = np.power(self._power_fraction[rows], exponent)
        state = self._state[rows]
        active = state == ACTIVE
        sleep_w = np.float32(self._model_sleep_w[m])
        self._steady_w[rows] = np.where(
            active,
            np.float32(self._model_nameplate_w[m]) * self._power_fraction[rows],
            np.where(state == SLEEPING, sleep_w, np.float32(0)),
        )
        self._steady_ths[rows] = np.where(
            active, np.float32(self._model_nameplate_ths[m]) * self._hash_fraction[rows], 0
        )
        self._class_counts[class_id] = np.bincount(state, minlength=N_ASIC_STATES)
        self._class_steady_w[class_id] = self._steady_w[rows].sum(dtype=np.float64)
        self._class_steady_ths[class_id] = self._steady_ths[rows].sum(dtype=np.float64)


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True, slots=True)
class UseAssignment:
    """Outcome of :meth:`GpuFleet.apply_uses`: GPUs per use asked for and labelled [-].

    ``requested`` and ``applied`` are indexed by :class:`GpuUse`; ``applied[IDLE]`` is every
    healthy GPU left over. ``shortfall`` counts non-idle GPUs asked for but not available.
    """

    requested: tuple[int, ...]
    applied: tuple[int, ...]
    shortfall: int


@dataclass(frozen=True, slots=True)
class GpuStepResult:
    """GPU fleet over one interval, per pool (arrays ``[n_pools, N_GPU_USES]`` by GpuUse).

    Attributes:
        t0_s, dt_s: interval start and length [s].
        pool_facility: facility index of each pool.
        n_facilities: rows of the per-facility sums.
        gpus_by_use: healthy GPUs labelled with each use during the interval [-].
        failed: failed GPUs per pool [-].
        busy_gpu_s: GPU-seconds of work counted per use, after clipping to the labelled
            GPUs; the SPOT column is the whole rented time [GPU-s].
        clipped_busy_gpu_s: busy GPU-seconds reported beyond what the labelled GPUs could
            do, not counted [GPU-s].
        mean_power_kw_by_use: mean IT power per use [kW].
        energy_kwh_by_use: IT energy per use [kWh].
    """

    t0_s: float
    dt_s: float
    pool_facility: np.ndarray
    n_facilities: int
    gpus_by_use: np.ndarray
    failed: np.ndarray
    busy_gpu_s: np.ndarray
    clipped_busy_gpu_s: np.ndarray
    mean_power_kw_by_use: np.ndarray
    energy_kwh_by_use: np.ndarray

    @property
    def mean_power_kw(self) -> np.ndarray:
        """Mean IT power per pool [kW]."""
        return self.mean_power_kw_by_use.sum(axis=1)

    @property
    def energy_kwh(self) -> np.ndarray:
        """IT energy per pool [kWh]."""
        return self.energy_kwh_by_use.sum(axis=1)

    def by_facility(self, per_pool: np.ndarray) -> np.ndarray:
        """Sum a per-pool array (``[n_pools]`` or ``[n_pools, k]``) per facility."""
        values = np.asarray(per_pool, dtype=np.float64)
        out = np.zeros((self.n_facilities, *values.shape[1:]), dtype=np.float64)
        np.add.at(out, self.pool_facility, values)
        return out


class GpuFleet:
    """All GPUs as columns; build with :meth:`from_groups`.

    Public columns (read-only views): ``facility`` (int16), ``type`` (int16 index into
    ``types``), ``node`` (int32 global node id), ``state`` (int8 :class:`GpuHealth`),
    ``power_limit_fraction`` (float32 NVML cap, fraction of TDP), ``use`` (int8
    :class:`GpuUse`), readings ``power_w``, ``util`` (0-1), ``temp_c`` (float32, end of the
    last step). Pool ``p`` covers devices ``pool_start[p]:pool_start[p + 1]`` at facility
    ``pool_facility[p]`` of type ``pool_type[p]``.
    """

    def __init__(
        self,
        types: list[GpuSpec],
        n_facilities: int,
        pool_facility: np.ndarray,
        pool_type: np.ndarray,
        pool_start: np.ndarray,
        node: np.ndarray,
        ambient_c: float,
    ) -> None:
        """Use :meth:`from_groups`; this takes the already sorted pool table."""
        self.types = list(types)
        self.n_facilities = int(n_facilities)
        self.pool_facility = _read_only(pool_facility.astype(np.int16))
        self.pool_type = _read_only(pool_type.astype(np.int16))
        self.pool_start = _read_only(pool_start.astype(np.int64))
        sizes = np.diff(self.pool_start)
        n = int(self.pool_start[-1])

        def per_type(attribute: str) -> np.ndarray:
            return np.array([getattr(t, attribute) for t in self.types], dtype=np.float64)

        self._type_min_fraction = per_type("min_power_fraction")
        self._facility = np.repeat(self.pool_facility, sizes).astype(np.int16)
        self._type = np.repeat(self.pool_type, sizes).astype(np.int16)
        self._node = node.astype(np.int32)
        self._state = np.full(n, GpuHealth.OK, dtype=np.int8)
        self._power_limit_fraction = np.ones(n, dtype=np.float32)
        self._use = np.full(n, GpuUse.IDLE, dtype=np.int8)
        self._tdp_w = per_type("tdp_w")[self._type].astype(np.float32)
        self._idle_w = per_type("idle_w")[self._type].astype(np.float32)
        self._pool_key = np.repeat(np.arange(len(sizes)) * N_GPU_USES, sizes).astype(np.int32)
        self._power_w = self._idle_w.copy()
        self._util = np.zeros(n, dtype=np.float32)
        self._temp_c = (ambient_c + GPU_THERMAL_C_PER_KW * self._power_w / 1000.0).astype(
            np.float32
        )

        self.facility = _read_only(self._facility)
        self.type = _read_only(self._type)
        self.node = _read_only(self._node)
        self.state = _read_only(self._state)
        self.power_limit_fraction = _read_only(self._power_limit_fraction)
        self.use = _read_only(self._use)
        self.power_w = _read_only(self._power_w)
        self.util = _read_only(self._util)
        self.temp_c = _read_only(self._temp_c)

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[tuple[int, GpuSpec, int, int]],
        n_facilities: int | None = None,
        ambient_c: float = 25.0,
    ) -> GpuFleet:
        """Build a fleet from ``(facility_index, spec, count, node_size)`` groups.

        Groups of one (facility, type) merge into one pool; pools are ordered by facility,
        then by first appearance of the type. Nodes of ``node_size`` consecutive GPUs get
        global ids in that order. Every GPU starts healthy, IDLE, uncapped.

        Raises:
            FleetError: negative facility or count, node_size < 1, count not a multiple of
                node_size, or two different specs with one type id.
        """
        types: list[GpuSpec] = []
        index_of: dict[str, int] = {}
        rows: list[tuple[int, int, int, int]] = []
        for i, (facility, spec, count, node_size) in enumerate(groups):
            where = f"gpu group {i} ({spec.type_id})"
            _check_group_sizes(where, facility, count)
            if int(node_size) != node_size or node_size < 1:
                raise FleetError(f"{where}: node_size must be an integer >= 1, got {node_size}")
            if count % node_size:
                raise FleetError(f"{where}: count {count} is not a multiple of node_size")
            known = index_of.get(spec.type_id)
            if known is None:
                index_of[spec.type_id] = len(types)
                types.append(spec)
            elif types[known] != spec:
                raise FleetError(f"{where}: two different specs share type id {spec.type_id!r}")
            rows.append((int(facility), index_of[spec.type_id], int(count), int(node_size)))
        facilities = _facility_count([r[0] for r in rows], n_facilities)

        rows.sort(key=lambda r: (r[0], r[1]))
        keys, starts = _slice_table([(r[0], r[1], r[2]) for r in rows])
        nodes = [np.zeros(0, dtype=np.int64)]
        next_node = 0
        for _, _, count, node_size in rows:
            nodes.append(next_node + np.arange(count) // node_size)
            next_node += count // node_size
        return cls(
            types,
            facilities,
            np.array([k[0] for k in keys], dtype=np.int16),
            np.array([k[1] for k in keys], dtype=np.int16),
            starts,
            np.concatenate(nodes),
            ambient_c,
        )

    # ---------------------------------------------------------------- lookup

    @property
    def n_devices(self) -> int:
        """Number of GPUs."""
        return int(self.pool_start[-1])

    @property
    def n_pools(self) -> int:
        """Number of (facility, type) pools."""
        return int(self.pool_facility.shape[0])

    def type_index(self, gpu_type: int | str) -> int:
        """Index into ``types`` of a type given by index or ``type_id``."""
        return _spec_index(self.types, gpu_type, "type_id")

    def pool_index(self, facility: int, gpu_type: int | str) -> int:
        """The pool of (facility, type); FleetError if the facility has no such GPUs."""
        t = self.type_index(gpu_type)
        hits = np.flatnonzero((self.pool_facility == facility) & (self.pool_type == t))
        if hits.size == 0:
            raise FleetError(f"facility {facility} has no GPUs of type {self.types[t].type_id}")
        return int(hits[0])

    def pool_slice(self, pool_index: int) -> slice:
        """Device rows of one pool."""
        if not 0 <= pool_index < self.n_pools:
            raise FleetError(f"pool_index: {pool_index} outside [0, {self.n_pools})")
        return slice(int(self.pool_start[pool_index]), int(self.pool_start[pool_index + 1]))

    def counts_by_use(self) -> np.ndarray:
        """Healthy GPUs per pool and use now, ``[n_pools, N_GPU_USES]``."""
        healthy = (self._state == GpuHealth.OK).astype(np.float64)
        counts = np.bincount(
            self._pool_key + self._use, weights=healthy, minlength=self.n_pools * N_GPU_USES
        )
        return counts.reshape(self.n_pools, N_GPU_USES).astype(np.int64)

    def failed_by_pool(self) -> np.ndarray:
        """Failed GPUs per pool now."""
        failed = self._state == GpuHealth.FAILED
        return np.bincount(self._pool_key[failed] // N_GPU_USES, minlength=self.n_pools)

    # ---------------------------------------------------------------- commands

    def apply_uses(self, pool_index: int, gpus_by_use: Mapping[int, float]) -> UseAssignment:
        """Label the healthy GPUs of a pool so each use has its (rounded) count.

        Labels go on the first healthy GPUs in the order INFERENCE, BATCH, TRAINING, SPOT,
        then IDLE for the rest, with OFF on the last ones. When the pool is short, uses are
        served in the order INFERENCE, BATCH, TRAINING, SPOT, OFF. An IDLE entry is ignored:
        idle is whatever is left.

        Args:
            pool_index: the pool.
            gpus_by_use: mean GPUs per use over the interval (GpuUse or int keys) [-].
        """
        rows = self.pool_slice(pool_index)
        requested = [0] * N_GPU_USES
        for key, value in gpus_by_use.items():
            try:
                use = GpuUse(int(key))
            except ValueError:
                raise FleetError(f"gpus_by_use: unknown use {key!r}") from None
            if not (np.isfinite(value) and value >= 0):
                raise FleetError(f"gpus_by_use[{use.name}]: must be >= 0, got {value}")
            requested[use] = int(np.rint(value))
        requested[GpuUse.IDLE] = 0
        healthy = np.flatnonzero(self._state[rows] == GpuHealth.OK) + rows.start
        remaining = healthy.size
        applied = [0] * N_GPU_USES
        for use in (*WORK_USES, GpuUse.SPOT, GpuUse.OFF):
            applied[use] = min(requested[use], remaining)
            remaining -= applied[use]
        applied[GpuUse.IDLE] = remaining
        layout = (*WORK_USES, GpuUse.SPOT, GpuUse.IDLE, GpuUse.OFF)
        labels = np.repeat(np.array(layout, dtype=np.int8), [applied[u] for u in layout])
        self._use[healthy] = labels
        shortfall = sum(requested) - (sum(applied) - applied[GpuUse.IDLE])
        return UseAssignment(tuple(requested), tuple(applied), shortfall)

    def set_power_limit(self, pool_index: int, fraction: float) -> ClampResult:
        """Set the NVML power cap of every GPU of a pool, clamped to
        ``[spec.min_power_fraction, 1]`` of TDP; the result says whether it was clamped."""
        rows = self.pool_slice(pool_index)
        lowest = self._type_min_fraction[self.pool_type[pool_index]]
        result = _clamp_fraction(fraction, lowest, "power_limit_fraction")
        self._power_limit_fraction[rows] = result.applied
        return result

    def fail(self, indices: Iterable[int] | np.ndarray) -> None:
        """Mark GPUs failed: they draw nothing and get no use label until repaired."""
        rows = _device_indices(indices, self.n_devices)
        self._state[rows] = GpuHealth.FAILED
        self._use[rows] = GpuUse.OFF

    def repair(self, indices: Iterable[int] | np.ndarray) -> None:
        """Return failed GPUs to service as IDLE; healthy GPUs are left alone."""
        rows = _device_indices(indices, self.n_devices)
        rows = rows[self._state[rows] == GpuHealth.FAILED]
        self._state[rows] = GpuHealth.OK
        self._use[rows] = GpuUse.IDLE

    # ---------------------------------------------------------------- physics

    def step(
        self,
        t0_s: float,
        dt_s: float,
        busy_gpu_s_by_pool_and_use: np.ndarray,
        ambient_c_by_facility: np.ndarray,
    ) -> GpuStepResult:
        """Advance the fleet over ``[t0_s, t0_s + dt_s)``; update readings; return pool means.

        Args:
            t0_s: interval start [s].
            dt_s: interval length [s], > 0.
            busy_gpu_s_by_pool_and_use: ``[n_pools, N_GPU_USES]`` GPU-seconds of customer
                work per use in the interval [GPU-s]. Only INFERENCE, BATCH and TRAINING
                columns are read; each is clipped to ``labelled GPUs * dt_s``. Spot-rented
                GPUs count busy all interval.
            ambient_c_by_facility: outdoor temperature per facility index [°C].

        A busy GPU draws ``tdp_w * power_limit_fraction``; a labelled GPU not busy draws
        ``idle_w``; a spot GPU ``tdp_w * min(SPOT_LOAD_FRACTION, power_limit_fraction)``;
        IDLE draws ``idle_w``; OFF and failed draw 0. Which GPUs of a use are busy is not
        known, so every GPU of a use gets the use's busy share as ``util``.
        """
        _check_interval(t0_s, dt_s)
        ambient = _ambient(ambient_c_by_facility, self.n_facilities)
        busy = np.asarray(busy_gpu_s_by_pool_and_use, dtype=np.float64)
        if busy.shape != (self.n_pools, N_GPU_USES):
            raise FleetError(
                f"busy_gpu_s_by_pool_and_use: shape must be ({self.n_pools}, {N_GPU_USES}), "
                f"got {busy.shape}"
            )
        if not np.all(np.isfinite(busy)) or np.any(busy < 0):
            raise FleetError("busy_gpu_s_by_pool_and_use: values must be finite and >= 0")

        counts = self.counts_by_use()
        capacity_s = counts * dt_s
        counted = np.zeros_like(busy)
        work = list(WORK_USES)
        counted[:, work] = np.minimum(busy[:, work], capacity_s[:, work])
        counted[:, GpuUse.SPOT] = capacity_s[:, GpuUse.SPOT]
        clipped = np.zeros_like(busy)
        clipped[:, work] = busy[:, work] - counted[:, work]
        util_table = np.divide(
            counted, capacity_s, out=np.zeros_like(counted), where=capacity_s > 0
        ).astype(np.float32)

        key = self._pool_key + self._use
        util = util_table.ravel()[key]
        on = (self._state == GpuHealth.OK) & (self._use != GpuUse.OFF)
        util *= on
        limit = np.where(
            self._use == GpuUse.SPOT,
            np.minimum(self._power_limit_fraction, np.float32(SPOT_LOAD_FRACTION)),
            self._power_limit_fraction,
        )
        busy_w = self._tdp_w * limit
        power = (util * busy_w + (1 - util) * self._idle_w) * on
        sum_w = np.bincount(key, weights=power, minlength=self.n_pools * N_GPU_USES)
        mean_power_kw = sum_w.reshape(self.n_pools, N_GPU_USES) / 1000.0

        sizes = np.diff(self.pool_start)
        ambient_by_device = np.repeat(ambient[self.pool_facility], sizes)
        steady = steady_temp_c(ambient_by_device, power / 1000.0, GPU_THERMAL_C_PER_KW)
        self._temp_c[:] = lagged_temp_c(self._temp_c, steady, dt_s, GPU_THERMAL_TIME_CONSTANT_S)
        self._power_w[:] = power
        self._util[:] = util

        return GpuStepResult(
            t0_s=float(t0_s),
            dt_s=float(dt_s),
            pool_facility=np.asarray(self.pool_facility, dtype=np.int64),
            n_facilities=int(ambient.shape[0]),
            gpus_by_use=counts,
            failed=self.failed_by_pool(),
            busy_gpu_s=counted,
            clipped_busy_gpu_s=clipped,
            mean_power_kw_by_use=mean_power_kw,
            energy_kwh_by_use=mean_power_kw * (dt_s / 3600.0),
        )
