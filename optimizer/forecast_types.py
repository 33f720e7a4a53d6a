"""The values and interfaces every forecaster shares: past data in, a forecast out.

A forecaster never sees the future because its inputs cannot hold any: a :class:`History`
is the series up to an origin ``t_end_s`` (the "now" of the caller) and nothing after it,
and a forecast is asked for by a number of steps only.

Two roles, so that expensive training and cheap prediction run at different cadences:

* a :class:`ForecastMethod` is a recipe; ``fit(history)`` trains it on the past (at most
  once per simulated day in a rolling run) and returns a frozen :class:`FittedForecaster`;
* a :class:`FittedForecaster` turns the latest history into a :class:`Forecast` every
  dispatch interval (``predict(history, horizon_steps)``, a few milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from optimizer.forecast_calendar import Calendar


class ForecastInputError(ValueError):
    """A forecaster was given unusable input (empty or non-finite history, bad step)."""


@dataclass(frozen=True, eq=False)
class History:
    """The past of one series on a fixed grid, up to the origin ``t_end_s``.

    ``values[i]`` holds on ``[t_end_s - (n - i) * step_s, t_end_s - (n - i - 1) * step_s)``
    with ``n = len(values)``: the last value is the interval that ends at the origin. Values
    are copied and made read-only.

    Attributes:
        values: the series (any unit: USD/MWh for prices, arrivals per step for demand).
        t_end_s: the origin [s since scenario start]; the forecast starts here.
        step_s: grid step [s], > 0.
        calendar: local calendar of simulation time.
        name: what the series is, for error messages (``price.HB_WEST``).

    Raises:
        ForecastInputError: values not 1-D, a NaN or infinite value (the message names its
            index and time), or a step that is not > 0.
    """

    values: np.ndarray
    t_end_s: float
    step_s: float
    calendar: Calendar
    name: str = "series"

    def __post_init__(self) -> None:
        array = np.array(self.values, dtype=float, copy=True)
        if array.ndim != 1:
            raise ForecastInputError(f"{self.name}: history must be 1-D, got shape {array.shape}")
        if not (np.isfinite(self.step_s) and self.step_s > 0):
            raise ForecastInputError(f"{self.name}: step_s must be > 0, got {self.step_s}")
        if not np.isfinite(self.t_end_s):
            raise ForecastInputError(f"{self.name}: t_end_s must be finite, got {self.t_end_s}")
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            index = int(bad[0])
            time_s = self.t_end_s - (array.size - index) * self.step_s
            raise ForecastInputError(
                f"{self.name}: history value at index {index} (t={time_s:.0f} s) "
                f"is {array[index]}; every value must be finite"
            )
        array.setflags(write=False)
        object.__setattr__(self, "values", array)
        object.__setattr__(self, "t_end_s", float(self.t_end_s))
        object.__setattr__(self, "step_s", float(self.step_s))

    def __len__(self) -> int:
        return int(self.values.size)

    def time_s_at(self, index: np.ndarray) -> np.ndarray:
        """Start time of the interval of ``values[index]`` for each position [s]; positions
        at or past ``len(values)`` give the times of the steps after the origin."""
        return self.t_end_s - (len(self.values) - np.asarray(index, dtype=float)) * self.step_s

    @property
    def start_s(self) -> float:
        """Start of the first interval [s]."""
        return self.t_end_s - len(self.values) * self.step_s

    def tail(self, count: int) -> History:
        """The last ``count`` values (all of them when fewer), same origin."""
        if count >= len(self.values):
            return self
        return History(self.values[-count:], self.t_end_s, self.step_s, self.calendar, self.name)

    def require_nonempty(self) -> None:
        """Raise :class:`ForecastInputError` when there is no value at all."""
        if self.values.size == 0:
            raise ForecastInputError(
                f"{self.name}: empty history at t={self.t_end_s:.0f} s; a forecast needs at "
                "least one past value"
            )


@dataclass(frozen=True, eq=False)
class Forecast:
    """Predicted values for the steps after an origin.

    ``values[k]`` is the prediction for ``[t0_s + k * step_s, t0_s + (k + 1) * step_s)``; its
    lead time (origin to the end of that interval) is ``(k + 1) * step_s``.

    Attributes:
        values: one prediction per step (unit of the history).
        t0_s: the origin [s since scenario start].
        step_s: grid step [s].
        method: the forecaster that made it (``seasonal_naive``, ``boosted``).
        fallback_reason: why a simpler method stood in for the one asked for, or None.
    """

    values: np.ndarray
    t0_s: float
    step_s: float
    method: str
    fallback_reason: str | None = None

    def __post_init__(self) -> None:
        self.values.setflags(write=False)


@runtime_checkable
class FittedForecaster(Protocol):
    """A trained forecaster: latest history in, forecast out (cheap, every interval)."""

    @property
    def name(self) -> str: ...

    def predict(self, history: History, horizon_steps: int) -> Forecast:
        """The next ``horizon_steps`` values after ``history.t_end_s``."""
        ...


@runtime_checkable
class ForecastMethod(Protocol):
    """A forecasting recipe; ``fit`` trains it on the past only."""

    @property
    def name(self) -> str: ...

    def fit(self, history: History) -> FittedForecaster:
        """A forecaster trained on ``history`` (it may fall back to a simpler one)."""
        ...


def check_horizon(horizon_steps: int, name: str) -> int:
    """``horizon_steps`` as an int >= 1, else :class:`ForecastInputError`."""
    if int(horizon_steps) != horizon_steps or horizon_steps < 1:
        raise ForecastInputError(
            f"{name}: horizon_steps must be an integer >= 1, got {horizon_steps}"
        )
    return int(horizon_steps)


def steps_in(duration_s: float, step_s: float, what: str) -> int:
    """How many grid steps make ``duration_s``; it must be a whole multiple of ``step_s``."""
    ratio = duration_s / step_s
    count = round(ratio)
    if count < 1 or abs(ratio - count) > 1e-9 * max(1.0, ratio):
        raise ForecastInputError(
            f"{what} ({duration_s:g} s) must be a whole number of steps of {step_s:g} s"
        )
    return count
