"""Seasonal-naive forecasts: the baseline every learned forecaster must beat.

The value for a step is the value one period (a day by default, or a week) before it; past
one period ahead, the last period repeats. With less than one period of history the last
value is held (persistence) and the forecast says so in ``fallback_reason``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.forecast_types import Forecast, History, check_horizon, steps_in

DAY_S = 86400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class SeasonalNaive:
    """Repeat the last period: ``y[t + k] = y[t + k - m * period]`` with the smallest whole
    ``m`` that reaches into the past.

    It needs no training, so it is both a :class:`~optimizer.forecast_types.ForecastMethod`
    (``fit`` returns itself) and a :class:`~optimizer.forecast_types.FittedForecaster`.

    Attributes:
        period_s: the season [s]: ``DAY_S`` for prices, ``WEEK_S`` to repeat last week; a
            whole number of history steps.
        non_negative: clip predictions at 0 (counts).
    """

    period_s: float = DAY_S
    non_negative: bool = False

    @property
    def name(self) -> str:
        return "seasonal_naive" if self.period_s == DAY_S else f"seasonal_naive_{self.period_s:g}s"

    def fit(self, history: History) -> SeasonalNaive:
        """Nothing to learn; returns itself."""
        return self

    def predict(self, history: History, horizon_steps: int) -> Forecast:
        """The next ``horizon_steps`` values after ``history.t_end_s``.

        Raises:
            ForecastInputError: empty history, ``horizon_steps`` < 1, or a period that is not
                a whole number of steps.
        """
        horizon = check_horizon(horizon_steps, history.name)
        history.require_nonempty()
        period = steps_in(self.period_s, history.step_s, f"{history.name}: seasonal period")
        values = history.values
        reason = None
        if values.size < period:
            prediction = np.full(horizon, values[-1])
            reason = (
                f"{values.size} past steps are less than one period ({period} steps of "
                f"{history.step_s:g} s); holding the last value"
            )
        else:
            prediction = values[values.size - period + np.arange(horizon) % period]
        if self.non_negative:
            prediction = np.maximum(prediction, 0.0)
        return Forecast(
            np.array(prediction, dtype=float), history.t_end_s, history.step_s, self.name, reason
        )


@dataclass(frozen=True)
class Persistence:
    """Hold the last value over the whole horizon (a reference for short lead times)."""

    non_negative: bool = False

    @property
    def name(self) -> str:
        return "persistence"

    def fit(self, history: History) -> Persistence:
        """Nothing to learn; returns itself."""
        return self

    def predict(self, history: History, horizon_steps: int) -> Forecast:
        """The last value, ``horizon_steps`` times (ForecastInputError on empty history)."""
        horizon = check_horizon(horizon_steps, history.name)
        history.require_nonempty()
        last = float(history.values[-1])
        if self.non_negative:
            last = max(last, 0.0)
        return Forecast(np.full(horizon, last), history.t_end_s, history.step_s, self.name)
