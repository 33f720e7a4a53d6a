"""Price and demand forecasts for the model-predictive policy: one import for all of it.

The policy solves its dispatch over a rolling horizon on forecasts, never on the future.
Everything here takes the past only: a :class:`History` holds a series up to an origin
(the policy's "now") and nothing after it, and a forecast is asked for by a step count.

Typical rolling use, one forecaster per series (a price per settlement point, arrivals per
workload type)::

    calendar = Calendar.from_start(scenario.start)
    prices = RollingForecaster(BoostedForecaster())              # refits once a day
    ...
    history = History(past_prices, t_end_s=t_now_s, step_s=300.0, calendar=calendar)
    forecast = prices.forecast(history, horizon_steps=288)         # next 24 h
    forecast.values            # [USD/MWh] per 300 s step from t_now_s
    forecast.fallback_reason   # None, or why seasonal naive stood in (short history)

For job arrivals pass ``BoostedForecaster(BoostedConfig(non_negative=True))``.

Modules: types and errors (:mod:`optimizer.forecast_types`), local calendar
(:mod:`optimizer.forecast_calendar`), baselines (:mod:`optimizer.forecast_naive`), features
(:mod:`optimizer.forecast_features`), the learned model (:mod:`optimizer.forecast_boosted`),
rolling use and backtests (:mod:`optimizer.forecast_backtest`).
"""

from __future__ import annotations

from optimizer.forecast_backtest import (
    DEFAULT_HORIZONS_S,
    BacktestResult,
    HorizonScore,
    RollingForecaster,
    backtest,
    skill,
)
from optimizer.forecast_boosted import BoostedConfig, BoostedForecaster, BoostedModel, NaiveFallback
from optimizer.forecast_calendar import Calendar, CalendarFeatures, nerc_holidays
from optimizer.forecast_naive import DAY_S, WEEK_S, Persistence, SeasonalNaive
from optimizer.forecast_types import (
    FittedForecaster,
    Forecast,
    ForecastInputError,
    ForecastMethod,
    History,
)

__all__ = [
    "DAY_S",
    "DEFAULT_HORIZONS_S",
    "WEEK_S",
    "BacktestResult",
    "BoostedConfig",
    "BoostedForecaster",
    "BoostedModel",
    "Calendar",
    "CalendarFeatures",
    "FittedForecaster",
    "Forecast",
    "ForecastInputError",
    "ForecastMethod",
    "History",
    "HorizonScore",
    "NaiveFallback",
    "Persistence",
    "RollingForecaster",
    "SeasonalNaive",
    "backtest",
    "forecast",
    "nerc_holidays",
    "skill",
]


def forecast(
    history: History, horizon_steps: int, method: ForecastMethod | None = None
) -> Forecast:
    """Fit ``method`` (seasonal naive by default) on ``history`` and forecast the next
    ``horizon_steps`` steps: a one-off; for a rolling run keep a :class:`RollingForecaster`."""
    chosen = method if method is not None else SeasonalNaive()
    return chosen.fit(history).predict(history, horizon_steps)
