"""Rolling use and rolling-origin evaluation of forecasters.

:class:`RollingForecaster` is what a policy holds: it refits its method on the past at most
once per ``refit_every_s`` and predicts from the latest history every interval.
:func:`backtest` replays a recorded series through a RollingForecaster and a baseline,
origin after origin, giving each only the values before its origin, and scores both by the
mean absolute error at chosen lead times; :func:`skill` compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from optimizer.forecast_calendar import Calendar
from optimizer.forecast_naive import DAY_S, SeasonalNaive
from optimizer.forecast_types import (
    FittedForecaster,
    Forecast,
    ForecastInputError,
    ForecastMethod,
    History,
    steps_in,
)

DEFAULT_HORIZONS_S = (900.0, 3600.0, 4 * 3600.0, DAY_S)
"""Lead times scored by default: 15 min, 1 h, 4 h, 24 h [s]."""


def skill(model_errors: np.ndarray, naive_errors: np.ndarray) -> float:
    """Skill score ``1 - MAE_model / MAE_naive`` [-]: 0 = as good as the baseline, 1 = perfect,
    negative = worse.

    Raises:
        ForecastInputError: no errors, or a baseline MAE of 0 (skill undefined).
    """
    model_mae = float(np.mean(np.abs(model_errors))) if np.size(model_errors) else np.nan
    naive_mae = float(np.mean(np.abs(naive_errors))) if np.size(naive_errors) else np.nan
    if not (np.isfinite(model_mae) and np.isfinite(naive_mae)):
        raise ForecastInputError("skill: need at least one finite error for model and baseline")
    if naive_mae == 0.0:
        raise ForecastInputError("skill: the baseline MAE is 0, so skill is undefined")
    return 1.0 - model_mae / naive_mae


class RollingForecaster:
    """A forecasting method refitted on the past at most every ``refit_every_s``.

    Args:
        method: the recipe to fit (e.g. ``BoostedForecaster()``).
        refit_every_s: time between refits [s] (a day by default); a history whose origin
            is earlier than the last fit also triggers a refit, so a model never predicts
            from an origin before the data it was trained on.
    """

    def __init__(self, method: ForecastMethod, refit_every_s: float = DAY_S) -> None:
        if not refit_every_s > 0:
            raise ForecastInputError(f"refit_every_s must be > 0, got {refit_every_s}")
        self.method = method
        self.refit_every_s = float(refit_every_s)
        self._fitted: FittedForecaster | None = None
        self._fitted_at_s = -np.inf
        self.fit_count = 0

    @property
    def fitted(self) -> FittedForecaster | None:
        """The model in use (None before the first forecast)."""
        return self._fitted

    @property
    def fitted_at_s(self) -> float:
        """Origin of the history of the last fit [s] (-inf before the first)."""
        return self._fitted_at_s

    def forecast(self, history: History, horizon_steps: int) -> Forecast:
        """Refit when due, then predict ``horizon_steps`` steps after ``history.t_end_s``."""
        due = history.t_end_s - self._fitted_at_s >= self.refit_every_s
        if self._fitted is None or due or history.t_end_s < self._fitted_at_s:
            self._fitted = self.method.fit(history)
            self._fitted_at_s = history.t_end_s
            self.fit_count += 1
        return self._fitted.predict(history, horizon_steps)


@dataclass(frozen=True, eq=False)
class HorizonScore:
    """Scores at one lead time.

    Attributes:
        horizon_s: lead time [s] (origin to the end of the scored interval).
        mae_model, mae_baseline: mean absolute errors (unit of the series).
        skill: ``1 - mae_model / mae_baseline`` [-].
        count: scored origins [-].
    """

    horizon_s: float
    mae_model: float
    mae_baseline: float
    skill: float
    count: int


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Forecast paths of a model and a baseline at every origin of a backtest.

    Attributes:
        origins_s: origin of each forecast [s], shape ``[O]``.
        model, baseline: forecasts, shape ``[O, H]`` (``H`` steps after each origin).
        actual: the recorded values over the same steps, shape ``[O, H]``.
        step_s: grid step [s].
        model_name, baseline_name: the methods compared.
        fallbacks: origins at which the model fell back to a simpler method [-].
    """

    origins_s: np.ndarray
    model: np.ndarray
    baseline: np.ndarray
    actual: np.ndarray
    step_s: float
    model_name: str
    baseline_name: str
    fallbacks: int = 0
    fallback_reasons: tuple[str, ...] = field(default=(), repr=False)

    def score(self, horizon_s: float) -> HorizonScore:
        """MAE of model and baseline and the skill at lead time ``horizon_s`` [s]."""
        k = steps_in(horizon_s, self.step_s, "horizon") - 1
        if k >= self.model.shape[1]:
            raise ForecastInputError(
                f"horizon {horizon_s:g} s is longer than the {self.model.shape[1]} steps forecast"
            )
        return self._score(horizon_s, self.model[:, k], self.baseline[:, k], self.actual[:, k])

    def score_all_leads(self) -> HorizonScore:
        """Scores over every lead from one step to the full forecast length."""
        horizon_s = self.model.shape[1] * self.step_s
        return self._score(horizon_s, self.model, self.baseline, self.actual)

    def _score(
        self, horizon_s: float, model: np.ndarray, baseline: np.ndarray, actual: np.ndarray
    ) -> HorizonScore:
        model_errors = model - actual
        baseline_errors = baseline - actual
        return HorizonScore(
            horizon_s=horizon_s,
            mae_model=float(np.mean(np.abs(model_errors))),
            mae_baseline=float(np.mean(np.abs(baseline_errors))),
            skill=skill(model_errors, baseline_errors),
            count=int(model.shape[0]),
        )


def backtest(
    series: np.ndarray,
    step_s: float,
    calendar: Calendar,
    method: ForecastMethod,
    *,
    first_origin: int,
    origin_every: int,
    horizons_s: Sequence[float] = DEFAULT_HORIZONS_S,
    t0_s: float = 0.0,
    refit_every_s: float = DAY_S,
    baseline: ForecastMethod | None = None,
    name: str = "series",
) -> BacktestResult:
    """Rolling-origin evaluation of ``method`` against ``baseline`` on a recorded series.

    Origins are ``first_origin, first_origin + origin_every, ...`` (positions in ``series``)
    while a full forecast of ``max(horizons_s)`` still fits in the data. At each origin both
    forecasters get a :class:`History` of ``series[:origin]`` only; the model is refitted
    through a :class:`RollingForecaster` every ``refit_every_s``.

    Args:
        series: the recorded values on a grid of ``step_s`` [s], first value at ``t0_s``.
        calendar: local calendar of simulation time.
        method: the forecaster under test.
        first_origin: position of the first origin (>= 1).
        origin_every: steps between origins (>= 1).
        horizons_s: lead times to be able to score [s]; the longest sets the forecast length.
        baseline: the reference (seasonal naive by default).
        name: the series, for messages.

    Raises:
        ForecastInputError: bad origins or horizons, a non-finite value in the series, or no
            origin that leaves room for the longest horizon.
    """
    values = np.asarray(series, dtype=float)
    if values.ndim != 1:
        raise ForecastInputError(f"{name}: series must be 1-D, got shape {values.shape}")
    if first_origin < 1 or origin_every < 1:
        raise ForecastInputError(
            f"{name}: first_origin and origin_every must be >= 1, got {first_origin}, "
            f"{origin_every}"
        )
    if not horizons_s:
        raise ForecastInputError(f"{name}: no horizons to score")
    horizon = max(steps_in(h, step_s, f"{name}: horizon") for h in horizons_s)
    origins = np.arange(first_origin, values.size - horizon + 1, origin_every)
    if origins.size == 0:
        raise ForecastInputError(
            f"{name}: {values.size} values leave no origin from {first_origin} with room for "
            f"{horizon} steps ahead"
        )
    rolling = RollingForecaster(method, refit_every_s)
    reference = RollingForecaster(baseline or SeasonalNaive(), refit_every_s)
    model_paths = np.empty((origins.size, horizon))
    baseline_paths = np.empty((origins.size, horizon))
    reasons: list[str] = []
    for row, origin in enumerate(origins):
        history = History(values[:origin], t0_s + origin * step_s, step_s, calendar, name)
        forecast = rolling.forecast(history, horizon)
        model_paths[row] = forecast.values
        baseline_paths[row] = reference.forecast(history, horizon).values
        if forecast.fallback_reason:
            reasons.append(forecast.fallback_reason)
    actual = values[origins[:, None] + np.arange(horizon)[None, :]]
    return BacktestResult(
        origins_s=t0_s + origins * step_s,
        model=model_paths,
        baseline=baseline_paths,
        actual=actual,
        step_s=float(step_s),
        model_name=method.name,
        baseline_name=(baseline or SeasonalNaive()).name,
        fallbacks=len(reasons),
        fallback_reasons=tuple(dict.fromkeys(reasons)),
    )
