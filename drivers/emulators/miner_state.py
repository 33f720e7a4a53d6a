"""The physics behind emulated miners: a table of virtual ASICs advanced on a clock.

Every miner is one row of numpy columns (spec figures, state, power target, wake-up ramp
start, temperature). The firmware emulators command it (sleep, wake, power limit) and read
it; tests and the twin read the same table to know the true state. Time comes from a clock
passed in (seconds, any origin): ``time.monotonic`` when serving real clients, a fake
clock in tests, so ramps and thermal lags can be stepped exactly.

Physics comes from :mod:`models.fleet_physics` (the same functions the simulated fleet
uses): hashing power and hashrate at a power target, a linear wake-up ramp from the sleep
level, a first-order chip temperature lag. Added here, because a firmware reports them:
the split of hashrate over hashboards, a board (PCB) temperature below the chip
temperature, and fan speed rising with power.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from drivers.emulators.errors import EmulatorConfigError
from models.fleet_physics import (
    ACTIVE,
    ASIC_THERMAL_TIME_CONSTANT_S,
    FAILED,
    OFF,
    SLEEPING,
    asic_active_power_w,
    asic_hashrate_ths,
    device_indices,
    lagged_temp_c,
    ramp_progress,
    read_only,
    steady_temp_c,
)
from models.hardware import AsicSpec

Clock = Callable[[], float]
"""A source of time [s]; only differences matter."""

HASHBOARDS = 3
"""Hashboards per miner; the hashrate is split evenly over them [-]."""

BOARD_TEMP_RISE_SHARE = 0.8
"""Board (PCB) temperature rise over ambient as a share of the chip temperature rise [-]."""

FAN_IDLE_RPM = 1000.0
"""Fan speed of a powered miner that draws (almost) nothing: asleep, control board only
[rpm]."""

FAN_FULL_RPM = 6000.0
"""Fan speed at nameplate power [rpm]; in between, speed is linear in power."""

DEFAULT_AMBIENT_C = 25.0
"""Inlet air temperature unless told otherwise [°C]."""


@dataclass(frozen=True, slots=True)
class MinerReadings:
    """What a set of miners reports at one instant; arrays have one row per miner asked.

    Attributes:
        t_s: clock time of the readings [s].
        indices: table rows the readings belong to.
        state: :class:`models.fleet_physics.AsicState` codes (int8).
        power_w: wall power [W].
        power_limit_w: applied power limit (target) [W].
        hashrate_ths: total hashrate [TH/s].
        board_hashrate_ths: hashrate per hashboard, shape ``[n, HASHBOARDS]`` [TH/s].
        chip_temp_c: chip temperature [°C].
        board_temp_c: hashboard (PCB) temperature [°C].
        fan_rpm: fan speed [rpm].
        uptime_s: time since the miner (the emulator) started [s].
    """

    t_s: float
    indices: np.ndarray
    state: np.ndarray
    power_w: np.ndarray
    power_limit_w: np.ndarray
    hashrate_ths: np.ndarray
    board_hashrate_ths: np.ndarray
    chip_temp_c: np.ndarray
    board_temp_c: np.ndarray
    fan_rpm: np.ndarray
    uptime_s: np.ndarray


class MinerTable:
    """N virtual miners as numpy columns, commanded by index and read at the clock's time.

    Miners start hashing at nameplate power, warmed up (at their steady temperature).
    Commands act at the clock's current time: ``sleep`` is instant (the firmware stops
    hashing within seconds), ``wake`` starts a ramp of the spec's ``ramp_s`` from the sleep
    level to the power target, ``set_power_limit_w`` changes the target of a hashing miner
    at once. Temperatures are advanced lazily, whenever a miner is read or commanded, over
    the time since its last update, towards the steady temperature of its power at that
    moment (exact between commands except during ramps, where it is a step-wise
    approximation).

    Public columns are read-only views: ``state`` (int8), ``power_fraction`` (target as a
    fraction of nameplate), ``nameplate_w``, ``nameplate_ths``, ``sleep_power_w``,
    ``min_power_fraction``, ``ramp_s``.

    Args:
        specs: one catalog spec per miner.
        clock: time source [s].
        ambient_c: inlet air temperature [°C].
    """

    def __init__(
        self, specs: Sequence[AsicSpec], clock: Clock, ambient_c: float = DEFAULT_AMBIENT_C
    ) -> None:
        if not specs:
            raise EmulatorConfigError("specs: need at least one miner")
        self.specs = tuple(specs)
        self._clock = clock
        self._ambient_c = _checked_ambient(ambient_c)
        n = len(self.specs)

        def column(name: str) -> np.ndarray:
            return np.array([getattr(spec, name) for spec in self.specs], dtype=np.float64)

        self._nameplate_w = column("power_w")
        self._nameplate_ths = column("hashrate_ths")
        self._exponent = column("efficiency_exponent")
        self._sleep_w = column("sleep_power_w")
        self._ramp_s = column("ramp_s")
        self._min_fraction = column("min_power_fraction")
        self._thermal_c_per_kw = column("thermal_c_per_kw")

        t0_s = self.now()
        self._state = np.full(n, ACTIVE, dtype=np.int8)
        self._power_fraction = np.ones(n, dtype=np.float64)
        self._ramp_start_s = np.full(n, -np.inf, dtype=np.float64)
        self._boot_s = np.full(n, t0_s, dtype=np.float64)
        all_rows = np.arange(n)
        self._temp_c = np.asarray(self._steady_temp_c(all_rows, t0_s), dtype=np.float64)
        self._temp_updated_s = np.full(n, t0_s, dtype=np.float64)

        self.state = read_only(self._state)
        self.power_fraction = read_only(self._power_fraction)
        self.nameplate_w = read_only(self._nameplate_w)
        self.nameplate_ths = read_only(self._nameplate_ths)
        self.sleep_power_w = read_only(self._sleep_w)
        self.min_power_fraction = read_only(self._min_fraction)
        self.ramp_s = read_only(self._ramp_s)

    # ------------------------------------------------------------------ basics

    @property
    def n_miners(self) -> int:
        """Number of miners in the table."""
        return len(self.specs)

    @property
    def ambient_c(self) -> float:
        """Inlet air temperature [°C]."""
        return self._ambient_c

    def now(self) -> float:
        """The clock's current time [s]."""
        return float(self._clock())

    def set_ambient_c(self, ambient_c: float) -> None:
        """Change the inlet air temperature [°C] from now on (temperatures then drift)."""
        value = _checked_ambient(ambient_c)
        self._advance_temps(np.arange(self.n_miners), self.now())
        self._ambient_c = value

    def power_limit_w(self, indices: Iterable[int] | np.ndarray | int) -> np.ndarray:
        """Applied power limit (target) of the miners [W]."""
        rows = self._rows(indices)
        return np.asarray(asic_active_power_w(self._nameplate_w[rows], self._power_fraction[rows]))

    # ------------------------------------------------------------------ commands

    def sleep(self, indices: Iterable[int] | np.ndarray | int) -> None:
        """Put hashing miners to sleep now (they draw ``sleep_power_w``, no hashrate).
        Sleeping, off and failed miners are left as they are."""
        rows = self._rows(indices)
        t_s = self.now()
        self._advance_temps(rows, t_s)
        hashing = rows[self._state[rows] == ACTIVE]
        self._state[hashing] = SLEEPING
        self._ramp_start_s[hashing] = -np.inf

    def wake(self, indices: Iterable[int] | np.ndarray | int) -> None:
        """Wake sleeping (or power on off) miners now: they ramp to their power target over
        ``ramp_s``. Hashing miners keep their ramp; failed miners stay failed."""
        rows = self._rows(indices)
        t_s = self.now()
        self._advance_temps(rows, t_s)
        waking = rows[(self._state[rows] == SLEEPING) | (self._state[rows] == OFF)]
        self._state[waking] = ACTIVE
        self._ramp_start_s[waking] = t_s

    def power_off(self, indices: Iterable[int] | np.ndarray | int) -> None:
        """Cut power to miners now (0 W); a later ``wake`` starts them again."""
        rows = self._rows(indices)
        self._advance_temps(rows, self.now())
        live = rows[self._state[rows] != FAILED]
        self._state[live] = OFF
        self._ramp_start_s[live] = -np.inf

    def set_power_limit_w(
        self, indices: Iterable[int] | np.ndarray | int, watts: float | np.ndarray
    ) -> np.ndarray:
        """Set the power limit (target) of miners [W]; returns the applied limits [W].

        Each request is clamped to ``[min_power_fraction, 1] * nameplate_w`` of its spec,
        as firmware does. A hashing miner moves to the new target at once.

        Raises:
            EmulatorConfigError: ``watts`` is not finite and positive, or does not match
                the number of miners.
        """
        rows = self._rows(indices)
        requested = np.broadcast_to(np.asarray(watts, dtype=np.float64), rows.shape)
        if not (np.isfinite(requested).all() and (requested > 0).all()):
            raise EmulatorConfigError(
                f"watts: a power limit must be finite and > 0 W, got {np.asarray(watts)!r}"
            )
        self._advance_temps(rows, self.now())
        fraction = np.clip(requested / self._nameplate_w[rows], self._min_fraction[rows], 1.0)
        self._power_fraction[rows] = fraction
        return self.power_limit_w(rows)

    # ------------------------------------------------------------------ readings

    def read(self, indices: Iterable[int] | np.ndarray | int | None = None) -> MinerReadings:
        """Readings of the miners (all when ``indices`` is None) at the clock's time."""
        rows = np.arange(self.n_miners) if indices is None else self._rows(indices)
        t_s = self.now()
        self._advance_temps(rows, t_s)
        power = self._power_w(rows, t_s)
        hashrate = self._hashrate_ths(rows, t_s)
        chip = self._temp_c[rows].copy()
        board = self._ambient_c + BOARD_TEMP_RISE_SHARE * (chip - self._ambient_c)
        load = np.clip(power / self._nameplate_w[rows], 0.0, 1.0)
        fans = np.where(
            self._state[rows] == OFF, 0.0, FAN_IDLE_RPM + (FAN_FULL_RPM - FAN_IDLE_RPM) * load
        )
        return MinerReadings(
            t_s=t_s,
            indices=rows,
            state=self._state[rows].copy(),
            power_w=power,
            power_limit_w=self.power_limit_w(rows),
            hashrate_ths=hashrate,
            board_hashrate_ths=np.repeat(hashrate[:, None] / HASHBOARDS, HASHBOARDS, axis=1),
            chip_temp_c=chip,
            board_temp_c=board,
            fan_rpm=fans,
            uptime_s=t_s - self._boot_s[rows],
        )

    # ------------------------------------------------------------------ internals

    def _rows(self, indices: Iterable[int] | np.ndarray | int) -> np.ndarray:
        if isinstance(indices, int | np.integer):
            indices = [int(indices)]
        try:
            return device_indices(indices, self.n_miners)
        except ValueError as error:
            raise EmulatorConfigError(str(error)) from error

    def _power_w(self, rows: np.ndarray, t_s: float) -> np.ndarray:
        state = self._state[rows]
        sleep_w = self._sleep_w[rows]
        target_w = np.asarray(
            asic_active_power_w(self._nameplate_w[rows], self._power_fraction[rows])
        )
        progress = ramp_progress(t_s, self._ramp_start_s[rows], self._ramp_s[rows])
        hashing_w = sleep_w + (target_w - sleep_w) * progress
        return np.select([state == ACTIVE, state == SLEEPING], [hashing_w, sleep_w], 0.0)

    def _hashrate_ths(self, rows: np.ndarray, t_s: float) -> np.ndarray:
        steady = np.asarray(
            asic_hashrate_ths(
                self._nameplate_ths[rows], self._power_fraction[rows], self._exponent[rows]
            )
        )
        progress = ramp_progress(t_s, self._ramp_start_s[rows], self._ramp_s[rows])
        return np.where(self._state[rows] == ACTIVE, steady * progress, 0.0)

    def _steady_temp_c(self, rows: np.ndarray, t_s: float) -> np.ndarray:
        power_kw = self._power_w(rows, t_s) / 1000.0
        return np.asarray(steady_temp_c(self._ambient_c, power_kw, self._thermal_c_per_kw[rows]))

    def _advance_temps(self, rows: np.ndarray, t_s: float) -> None:
        """Relax the temperatures of ``rows`` from their last update to ``t_s``."""
        dt_s = np.maximum(t_s - self._temp_updated_s[rows], 0.0)
        steady = self._steady_temp_c(rows, t_s)
        # lagged_temp_c is vectorized over dt_s too: one interval per miner.
        self._temp_c[rows] = lagged_temp_c(
            self._temp_c[rows],
            steady,
            dt_s,  # type: ignore[arg-type]
            ASIC_THERMAL_TIME_CONSTANT_S,
        )
        self._temp_updated_s[rows] = t_s


def _checked_ambient(ambient_c: float) -> float:
    value = float(ambient_c)
    if not np.isfinite(value):
        raise EmulatorConfigError(f"ambient_c: must be a finite temperature, got {ambient_c!r}")
    return value
