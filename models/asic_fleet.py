"""The ASIC fleet: every miner one row of numpy columns, commanded per class.

A class is the miners of one (facility, model); its devices sit in one contiguous slice, so
counting and choosing miners is slicing. Commands act at an instant ``t_s`` (seconds since
scenario start); a step integrates power and hashrate over ``[t0_s, t0_s + dt_s)`` assuming
the commanded states hold for the whole interval, except wake-up ramps, whose energy is
integrated analytically from their start. Physics: :mod:`models.fleet_physics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.fleet_physics import (
    ACTIVE,
    ASIC_THERMAL_TIME_CONSTANT_S,
    FAILED,
    N_ASIC_STATES,
    OFF,
    SLEEPING,
    ClampResult,
    FleetError,
    as_slice,
    check_interval,
    checked_ambient,
    clamp_fraction,
    device_indices,
    ramp_progress,
    read_only,
    uniform_value,
)
from models.fleet_table import GroupTable, group_slice, merge_groups, spec_column, spec_index
from models.hardware import AsicSpec


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


def _checked_power_target(where: str, spec: AsicSpec, count: int, fraction: float) -> float:
    """A group's power target [-]; FleetError naming ``where`` unless it lies in
    ``[spec.min_power_fraction, 1]``."""
    if not spec.min_power_fraction <= fraction <= 1.0:
        raise FleetError(
            f"{where}: power_target_fraction {fraction} is outside [{spec.min_power_fraction}, 1]"
        )
    return float(fraction)


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
        table: GroupTable,
        power_fraction: np.ndarray,
        ambient_c: float,
    ) -> None:
        """Use :meth:`from_groups`; this takes the already sorted class table."""
        self.models = list(models)
        self.n_facilities = int(table.n_facilities)
        self.class_facility = read_only(table.facility.astype(np.int16))
        self.class_model = read_only(table.spec.astype(np.int16))
        self.class_start = read_only(table.start.astype(np.int64))
        n_classes = table.facility.shape[0]
        grid = np.full((self.n_facilities, len(self.models)), -1, dtype=np.int32)
        grid[table.facility, table.spec] = np.arange(n_classes)
        self.class_grid = read_only(grid)
        self._class_size = np.diff(self.class_start)
        self._class_cell = self.class_facility.astype(np.int64) * len(models) + self.class_model
        """Flat index of each class in a ``[facilities * models]`` table."""
        self._model_nameplate_w = spec_column(self.models, "power_w")
        self._model_nameplate_ths = spec_column(self.models, "hashrate_ths")
        self._model_sleep_w = spec_column(self.models, "sleep_power_w")
        self._model_ramp_s = spec_column(self.models, "ramp_s")
        self._model_exponent = spec_column(self.models, "efficiency_exponent")
        self._model_min_fraction = spec_column(self.models, "min_power_fraction")

        n = int(self.class_start[-1])
        self._facility = np.repeat(self.class_facility, self._class_size).astype(np.int16)
        self._model = np.repeat(self.class_model, self._class_size).astype(np.int16)
        self._state = np.full(n, ACTIVE, dtype=np.int8)
        self._power_fraction = power_fraction.astype(np.float32)
        self._ramp_start_s = np.full(n, np.nan, dtype=np.float64)
        self._maybe_ramping = False
        thermal = spec_column(self.models, "thermal_c_per_kw")[self._model] / 1000.0
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
        self._class_fraction = np.array(
            [uniform_value(self._power_fraction[self.class_slice(c)]) for c in range(n_classes)],
            dtype=np.float64,
        )
        """The power target every miner of a class shares, NaN when they differ [-]."""

        self._power_w = self._steady_w.copy()
        self._hashrate_ths = self._steady_ths.copy()
        self._temp_c = (ambient_c + self._thermal_c_per_w * self._power_w).astype(np.float32)

        self.facility = read_only(self._facility)
        self.model = read_only(self._model)
        self.state = read_only(self._state)
        self.power_fraction = read_only(self._power_fraction)
        self.ramp_start_s = read_only(self._ramp_start_s)
        self.power_w = read_only(self._power_w)
        self.hashrate_ths = read_only(self._hashrate_ths)
        self.temp_c = read_only(self._temp_c)

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
        merged = merge_groups(groups, "asic", "model_id", _checked_power_target, n_facilities)
        rows = merged.rows
        power_fraction = np.repeat(
            np.array([r[3] for r in rows], dtype=np.float32), [r[2] for r in rows]
        )
        return cls(merged.specs, merged.table, power_fraction, ambient_c)

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
        return spec_index(self.models, model, "model_id")

    def class_index(self, facility: int, model: int | str) -> int:
        """The class id of (facility, model); FleetError if the facility has no such miners."""
        m = self.model_index(model)
        if not 0 <= facility < self.n_facilities or self.class_grid[facility, m] < 0:
            raise FleetError(f"facility {facility} has no ASICs of model {self.models[m].model_id}")
        return int(self.class_grid[facility, m])

    def class_slice(self, class_id: int) -> slice:
        """Device rows of one class."""
        return group_slice(self.class_start, class_id, "class_id")

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
        result = clamp_fraction(fraction, lowest, "power_fraction")
        target = float(np.float32(result.applied))
        if self._class_fraction[class_id] == target:
            return result  # every miner already has this target: nothing to change
        self._power_fraction[self.class_slice(class_id)] = result.applied
        self._refresh_class(class_id, power_fraction_changed=True)
        self._class_fraction[class_id] = target
        return result

    def fail(self, indices: Iterable[int] | np.ndarray) -> None:
        """Mark miners FAILED (they draw nothing and cannot be woken until repaired)."""
        rows = device_indices(indices, self.n_devices)
        self._state[rows] = FAILED
        self._ramp_start_s[rows] = np.nan
        self._refresh_rows(rows)

    def repair(self, indices: Iterable[int] | np.ndarray) -> None:
        """Return FAILED miners to service as SLEEPING; other miners are left alone."""
        rows = device_indices(indices, self.n_devices)
        rows = rows[self._state[rows] == FAILED]
        self._state[rows] = SLEEPING
        self._refresh_rows(rows)

    def power_off(self, indices: Iterable[int] | np.ndarray) -> None:
        """Switch non-failed miners OFF (no draw); ``set_active_count`` may wake them later."""
        rows = device_indices(indices, self.n_devices)
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
        check_interval(t0_s, dt_s)
        ambient = checked_ambient(ambient_c_by_facility, self.n_facilities)
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
                rows = as_slice(ramping[bounds[class_id] : bounds[class_id + 1]])
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
        n_models = len(self.models)

        def grid(per_class: np.ndarray) -> np.ndarray:
            extra = per_class.shape[1:]
            out = np.zeros((rows * n_models, *extra), dtype=per_class.dtype)
            out[self._class_cell] = per_class
            return out.reshape(rows, n_models, *extra)

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
