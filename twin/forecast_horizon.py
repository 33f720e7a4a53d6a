"""The horizon ``mpc`` sees: forecasts built only from the past.

Prices: step 0 is the real-time price now (in the snapshot, as for every policy); steps
1..T-1 come from a rolling forecaster per settlement point (gradient boosting on calendar
and lag features, refitted every ``retrain_every_h`` on the trailing window, or seasonal
naive), fed with the prices observed so far in the run. Until the history is long enough
the forecaster says so and falls back to seasonal naive, then to persistence.

4CP: the current interval's flag is in the snapshot; later steps get a risk weight
``four_cp_risk`` on weekday steps within an hour of the configured peak hour in 4CP months
(the system peak is not known in advance). Grid requests, ancillary prices, hashprice,
spot prices and demand are held at their current values (twin.horizon).
"""

from __future__ import annotations

import numpy as np

from models.grid import Grid
from optimizer.dispatch import HorizonData
from optimizer.forecast import (
    DAY_S,
    BoostedForecaster,
    Calendar,
    History,
    RollingForecaster,
    SeasonalNaive,
)
from optimizer.interval_result import IntervalResult
from optimizer.types import Snapshot
from twin.horizon import HorizonBase
from twin.scenario import Scenario

FOUR_CP_RISK = 0.25
"""Probability weight on a weekday peak-window step in a 4CP month [-]."""


class ForecastHorizon(HorizonBase):
    """Forecast prices and 4CP risk; everything else held (module docstring)."""

    def __init__(
        self,
        grid: Grid,
        scenario: Scenario,
        scheduler_pools: list[int],
        pue_mining: np.ndarray,
        pue_ai: np.ndarray,
        horizon_h: float,
        forecaster: str = "boosted",
        retrain_every_h: float = 24.0,
        training_window_days: float = 28.0,
    ) -> None:
        super().__init__(scenario, scheduler_pools, pue_mining, pue_ai, horizon_h)
        self.grid = grid
        self.calendar = Calendar.from_start(scenario.start)
        self.window_steps = max(1, round(training_window_days * DAY_S / self.step_s))
        self.points = sorted({f.settlement_point for f in scenario.facilities})
        self._forecasters = {
            point: RollingForecaster(
                BoostedForecaster() if forecaster == "boosted" else SeasonalNaive(),
                refit_every_s=retrain_every_h * 3600.0,
            )
            for point in self.points
        }
        four_cp = scenario.grid.four_cp
        self._four_cp_months = set(four_cp.months) if four_cp.enabled else set()
        self._peak_hour = four_cp.peak_hour_local
        self.fallbacks: dict[str, str] = {}
        """Latest reason per settlement point why a simpler forecast stood in."""

    def horizon(
        self, snapshot: Snapshot, index: int, last_result: IntervalResult | None
    ) -> HorizonData:
        steps = self.steps_at(index)
        t0 = snapshot.t_s
        forecasts = {point: self._price_path(point, t0, steps) for point in self.points}
        prices = np.column_stack([forecasts[f.settlement_point] for f in self.scenario.facilities])
        four_cp = self._four_cp_risk(t0, steps)
        four_cp[0] = float(any(f.four_cp_interval for f in snapshot.facilities))
        requests = np.array([f.curtail_request_fraction for f in snapshot.facilities])
        return HorizonData(
            step_s=self.step_s,
            price_usd_per_mwh=prices,
            four_cp_probability=four_cp,
            curtail_request_fraction=np.tile(requests, (steps, 1)),
            ancillary_usd_per_mw_h={
                name: np.full(steps, price)
                for name, price in snapshot.ancillary_usd_per_mw_h.items()
            },
            **self.held_arrays(snapshot, index, steps, last_result),
        )

    def _price_path(self, point: str, t0: float, steps: int) -> np.ndarray:
        """Price now, then the forecast of the next ``steps - 1`` steps [USD/MWh]."""
        signal = self.grid.prices[point]
        now = signal.at(t0)
        path = np.full(steps, now)
        if steps == 1:
            return path
        first = max(signal.start_s, t0 - (self.window_steps - 1) * self.step_s)
        past = signal.over(first, t0 + self.step_s, self.step_s)
        history = History(
            past,
            t_end_s=t0 + self.step_s,
            step_s=self.step_s,
            calendar=self.calendar,
            name=f"price.{point}",
        )
        forecast = self._forecasters[point].forecast(history, steps - 1)
        if forecast.fallback_reason:
            self.fallbacks[point] = forecast.fallback_reason
        path[1:] = forecast.values
        return path

    def _four_cp_risk(self, t0: float, steps: int) -> np.ndarray:
        """Risk weight per step: weekday steps near the peak hour in 4CP months [-]."""
        risk = np.zeros(steps)
        if not self._four_cp_months:
            return risk
        times = t0 + self.step_s * np.arange(steps)
        features = self.calendar.features(times)
        hour = np.asarray(features.hour_of_day, dtype=float)
        weekday = np.asarray(features.day_of_week) < 5
        in_month = np.isin(np.asarray(features.month), list(self._four_cp_months))
        near_peak = np.abs(hour - self._peak_hour) <= 1.0
        risk[weekday & in_month & near_peak] = FOUR_CP_RISK
        return risk
