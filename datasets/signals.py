"""One interface for every time signal the twin reads (prices, BTC, fees, rental rates).

A signal maps simulation time ``t_s`` (seconds since scenario start, the only clock the
model knows) to a value. Three kinds share the :class:`Signal` protocol:

* :class:`ConstantSignal` — one value for all time;
* :class:`SeriesSignal` — a step series on a fixed grid (what synthetic generators and
  historical replay produce, already resampled to the dispatch interval);
* live pollers (live mode, a later layer) that return a cached value.

A query outside the data raises :class:`SignalRangeError`; nothing is extrapolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class SignalRangeError(LookupError):
    """A signal was queried at a time outside the data it holds."""


@runtime_checkable
class Signal(Protocol):
    """A scalar time signal; ``at`` is valid on ``[start_s, end_s)``."""

    @property
    def name(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def start_s(self) -> float: ...

    @property
    def end_s(self) -> float: ...

    def at(self, t_s: float) -> float:
        """Value at simulation time ``t_s`` [s]; raises SignalRangeError outside the data."""
        ...

    def over(self, t0_s: float, t1_s: float, step_s: float) -> np.ndarray:
        """Values at ``t0_s, t0_s + step_s, ... < t1_s`` as a float array."""
        ...


@dataclass(frozen=True)
class ConstantSignal:
    """The same value at every time."""

    value: float
    name: str = "constant"
    unit: str = ""

    @property
    def start_s(self) -> float:
        return float("-inf")

    @property
    def end_s(self) -> float:
        return float("inf")

    def at(self, t_s: float) -> float:
        return float(self.value)

    def over(self, t0_s: float, t1_s: float, step_s: float) -> np.ndarray:
        return np.full(_count(t0_s, t1_s, step_s), float(self.value))


class SeriesSignal:
    """A step-wise series: ``values[i]`` holds on ``[t0_s + i*step_s, t0_s + (i+1)*step_s)``.

    Args:
        values: one value per step (unit given by ``unit``).
        step_s: grid step [s], > 0.
        t0_s: simulation time of the first value [s].
        name: what the series is, for error messages (``price.HB_WEST``).
        unit: unit of the values (``USD/MWh``).
    """

    def __init__(
        self,
        values: np.ndarray,
        step_s: float,
        t0_s: float = 0.0,
        name: str = "series",
        unit: str = "",
    ) -> None:
        array = np.asarray(values, dtype=float)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"{name}: a series needs a non-empty 1-D array of values")
        if not step_s > 0:
            raise ValueError(f"{name}: step_s must be > 0, got {step_s}")
        if not np.all(np.isfinite(array)):
            bad = int(np.flatnonzero(~np.isfinite(array))[0])
            raise ValueError(f"{name}: value {bad} is not finite ({array[bad]})")
        self.values = array
        self.values.setflags(write=False)
        self._list: list[float] = array.tolist()  # scalar lookups without numpy overhead
        self._size = array.size
        self.step_s = float(step_s)
        self.t0_s = float(t0_s)
        self.name = name
        self.unit = unit

    @property
    def start_s(self) -> float:
        return self.t0_s

    @property
    def end_s(self) -> float:
        return self.t0_s + self.step_s * self.values.size

    def _index(self, t_s: np.ndarray) -> np.ndarray:
        index = np.floor((t_s - self.t0_s) / self.step_s + 1e-9).astype(np.int64)
        outside = (index < 0) | (index >= self.values.size)
        if np.any(outside):
            first = float(np.asarray(t_s)[outside].flat[0])
            raise SignalRangeError(
                f"{self.name}: no data at t={first:.0f} s; data covers "
                f"[{self.start_s:.0f}, {self.end_s:.0f}) s"
            )
        return index

    def at(self, t_s: float) -> float:
        index = math.floor((t_s - self.t0_s) / self.step_s + 1e-9)
        if 0 <= index < self._size:
            return self._list[index]
        self._index(np.asarray([t_s], dtype=float))  # raises with the covered range
        raise AssertionError("unreachable")  # pragma: no cover

    def over(self, t0_s: float, t1_s: float, step_s: float) -> np.ndarray:
        times = t0_s + step_s * np.arange(_count(t0_s, t1_s, step_s))
        return self.values[self._index(times)].copy()

    def __repr__(self) -> str:
        return (
            f"SeriesSignal({self.name!r}, {self.values.size} x {self.step_s:.0f} s "
            f"from t={self.t0_s:.0f} s, unit={self.unit!r})"
        )


def _count(t0_s: float, t1_s: float, step_s: float) -> int:
    if not step_s > 0:
        raise ValueError(f"step_s must be > 0, got {step_s}")
    return max(0, int(np.ceil((t1_s - t0_s) / step_s - 1e-9)))
