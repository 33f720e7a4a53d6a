"""A learned forecaster: gradient-boosted trees on calendar and lag features.

One model covers every lead time (direct multi-horizon): the lead is a feature, and each
training row pairs an origin inside the training history with a lead sampled from
``(0, max_lead_s]``, half uniformly and half log-uniformly so that short leads, where a
dispatch decision is most sensitive, are seen often. Features: :mod:`optimizer.forecast_features`.

Heavy tails. ERCOT prices sit near 20-60 USD/MWh most hours and spike to thousands (offer
cap 5,000 USD/MWh since 2022). Two choices keep the spikes from owning the fit:

* values are modelled as ``z = asinh(y / scale)`` with ``scale`` the median absolute value
  of the training history: linear near zero (negative prices keep their sign), logarithmic
  in the tail, so a 4,000 USD/MWh hour weighs like a few ordinary ones, not a hundred;
* the loss is the absolute error. Its minimiser is the conditional median, and a median
  survives any increasing transform, so ``scale * sinh(median of z)`` is the median of
  ``y``: the forecast that minimises the mean absolute error the twin is scored on. (A
  squared loss would chase the mean, which spikes drag far from typical hours.)

The trees learn a correction to an anchor rather than the level itself, which keeps
forecasts sensible when prices leave the range seen in training. The anchor slides with the
lead from persistence to seasonal naive, ``w * z_last + (1 - w) * z_same_time_yesterday``
with ``w = exp(-lead / blend_lead_s)``: the last value is the best single guess minutes
ahead, yesterday's profile a day ahead, and a tree ensemble cannot easily form such a
lead-dependent mix of two features by itself (on the bundled ERCOT data a blend anchor more
than doubled the skill at 15 min - 1 h over a seasonal anchor).

Training cost is about a second on a 56-day window of 300 s steps; retrain at most once per
simulated day (see :class:`~optimizer.forecast_backtest.RollingForecaster`). Prediction is a
feature build and one tree-ensemble pass over ``horizon_steps`` rows: a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from optimizer.forecast_features import (
    CATEGORICAL,
    FEATURE_NAMES,
    LAST_COLUMN,
    LEAD_COLUMN,
    SEASONAL_COLUMN,
    LagLayout,
    feature_rows,
)
from optimizer.forecast_naive import DAY_S, SeasonalNaive
from optimizer.forecast_types import (
    Forecast,
    ForecastInputError,
    History,
    check_horizon,
    steps_in,
)

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

Anchor = Literal["blend", "seasonal", "last", "none"]
Loss = Literal["absolute_error", "squared_error"]


@dataclass(frozen=True)
class BoostedConfig:
    """Settings of :class:`BoostedForecaster`.

    Attributes:
        train_window_s: trailing history used for training [s] (older values are ignored).
        origin_every_s: spacing of training origins [s]; a whole number of steps.
        leads_per_origin: leads sampled per training origin [-].
        max_lead_s: longest lead trained [s]; longer forecasts reuse the longest lead's
            behaviour on the repeated last day.
        min_train_rows: fewer training rows than this -> seasonal naive instead [-].
        anchor: what the trees correct: the lead-weighted mix of last value and same time
            yesterday (``blend``), the same time yesterday (``seasonal``), the last value
            (``last``) or nothing (``none``, the level itself).
        blend_lead_s: lead at which the blend anchor weighs the last value by 1/e [s].
        loss: ``absolute_error`` (median, robust to spikes) or ``squared_error`` (mean).
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization:
            passed to scikit-learn's HistGradientBoostingRegressor.
        random_state: seed of the lead sampling and of the trees (results are identical
            for identical inputs).
        non_negative: clip predictions at 0 (counts such as job arrivals per step).
    """

    train_window_s: float = 56 * DAY_S
    origin_every_s: float = 3600.0
    leads_per_origin: int = 24
    max_lead_s: float = DAY_S
    min_train_rows: int = 500
    anchor: Anchor = "blend"
    blend_lead_s: float = 6 * 3600.0
    loss: Loss = "absolute_error"
    max_iter: int = 150
    learning_rate: float = 0.08
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    random_state: int = 0
    non_negative: bool = False


@dataclass(frozen=True)
class BoostedForecaster:
    """Gradient boosting on calendar and lag features (a ForecastMethod)."""

    config: BoostedConfig = field(default_factory=BoostedConfig)

    @property
    def name(self) -> str:
        return "boosted"

    def fit(self, history: History) -> BoostedModel | NaiveFallback:
        """Train on the last ``train_window_s`` of ``history``.

        Returns a :class:`NaiveFallback` (seasonal naive, with the reason) when the history
        is too short for the lags and enough training rows.

        Raises:
            ForecastInputError: empty history, or a step that does not divide one hour.
        """
        cfg = self.config
        history.require_nonempty()
        layout = LagLayout.for_step(history.step_s, history.name)
        window = steps_in(cfg.train_window_s, history.step_s, f"{history.name}: train window")
        history = history.tail(window)
        stride = steps_in(cfg.origin_every_s, history.step_s, f"{history.name}: origin spacing")
        max_lead = steps_in(cfg.max_lead_s, history.step_s, f"{history.name}: max lead")
        naive = SeasonalNaive(non_negative=cfg.non_negative)
        n = len(history)
        origins = np.arange(layout.lookback, n, stride)
        rng = np.random.default_rng(cfg.random_state)
        leads = _sample_leads(rng, origins.size, cfg.leads_per_origin, max_lead)
        origins = np.repeat(origins, cfg.leads_per_origin)
        keep = origins + leads < n
        origins, leads = origins[keep], leads[keep]
        if origins.size < cfg.min_train_rows:
            return NaiveFallback(
                naive,
                f"{history.name}: {n} past steps give {origins.size} training rows after one "
                f"week of lags ({layout.lookback} steps); at least {cfg.min_train_rows} are "
                "needed, so seasonal naive stands in",
            )
        scale = _robust_scale(history.values)
        z = np.arcsinh(history.values / scale)
        rows = feature_rows(
            z, origins, leads, layout, history.time_s_at(origins + leads), history.calendar
        )
        target = z[origins + leads] - _anchor_values(rows, cfg.anchor, cfg.blend_lead_s)
        regressor = _regressor(cfg)
        with _single_thread():
            regressor.fit(rows, target)
        return BoostedModel(cfg, layout, scale, regressor, naive, history.t_end_s)


@dataclass(frozen=True, eq=False)
class BoostedModel:
    """A trained boosted forecaster (a FittedForecaster).

    Attributes:
        config: the settings it was trained with.
        layout: lag offsets of its grid.
        scale: the asinh scale [unit of the series].
        regressor: the fitted scikit-learn model (treat as read-only).
        naive: the fallback for histories shorter than one week.
        trained_until_s: origin of the training history [s].
    """

    config: BoostedConfig
    layout: LagLayout
    scale: float
    regressor: Any = field(repr=False)
    naive: SeasonalNaive = field(repr=False)
    trained_until_s: float = 0.0

    @property
    def name(self) -> str:
        return "boosted"

    def predict(self, history: History, horizon_steps: int) -> Forecast:
        """The next ``horizon_steps`` values after ``history.t_end_s``.

        Falls back to seasonal naive (with ``fallback_reason``) when the history holds less
        than one week plus one step.

        Raises:
            ForecastInputError: empty history, ``horizon_steps`` < 1, or a history step that
                differs from the training step.
        """
        horizon = check_horizon(horizon_steps, history.name)
        history.require_nonempty()
        if history.step_s != self.layout.step_s:
            raise ForecastInputError(
                f"{history.name}: history step {history.step_s:g} s differs from the "
                f"{self.layout.step_s:g} s the model was trained on"
            )
        need = self.layout.lookback + 1
        if len(history) < need:
            fallback = self.naive.predict(history, horizon)
            return _with_reason(
                fallback,
                f"{history.name}: {len(history)} past steps are fewer than the {need} the lag "
                "features need (one week); seasonal naive stands in",
            )
        recent = history.tail(need)
        z = np.arcsinh(recent.values / self.scale)
        leads = np.arange(horizon)
        origins = np.full(horizon, need)
        rows = feature_rows(
            z, origins, leads, self.layout, recent.time_s_at(origins + leads), recent.calendar
        )
        with _single_thread():
            z_hat_trees = self.regressor.predict(rows)
        z_hat = z_hat_trees + _anchor_values(rows, self.config.anchor, self.config.blend_lead_s)
        values = self.scale * np.sinh(z_hat)
        if self.config.non_negative:
            values = np.maximum(values, 0.0)
        return Forecast(values, history.t_end_s, history.step_s, self.name)


@dataclass(frozen=True)
class NaiveFallback:
    """Seasonal naive standing in for a model that could not be trained, with the reason."""

    naive: SeasonalNaive
    reason: str

    @property
    def name(self) -> str:
        return self.naive.name

    def predict(self, history: History, horizon_steps: int) -> Forecast:
        """Seasonal-naive forecast carrying this fallback's reason."""
        return _with_reason(self.naive.predict(history, horizon_steps), self.reason)


def _with_reason(forecast: Forecast, reason: str) -> Forecast:
    if forecast.fallback_reason:
        reason = f"{reason}; {forecast.fallback_reason}"
    return Forecast(forecast.values, forecast.t0_s, forecast.step_s, forecast.method, reason)


def _sample_leads(
    rng: np.random.Generator, n_origins: int, per_origin: int, max_lead: int
) -> np.ndarray:
    """Leads k in [0, max_lead): half uniform, half log-uniform in lead time."""
    size = n_origins * per_origin
    uniform = rng.integers(0, max_lead, size=size)
    log_uniform = np.floor(np.exp(rng.uniform(0.0, np.log(max_lead), size=size))).astype(np.int64)
    pick_uniform = (np.arange(size) % 2) == 0
    return np.where(pick_uniform, uniform, np.minimum(log_uniform, max_lead) - 1)


def _robust_scale(values: np.ndarray) -> float:
    """Median absolute value, or 1 when that is 0 (a mostly-zero count series)."""
    scale = float(np.median(np.abs(values)))
    return scale if scale > 0 else 1.0


def _anchor_values(rows: np.ndarray, anchor: Anchor, blend_lead_s: float) -> np.ndarray:
    if anchor == "blend":
        weight = np.exp(-rows[:, LEAD_COLUMN] * 3600.0 / blend_lead_s)
        return weight * rows[:, LAST_COLUMN] + (1.0 - weight) * rows[:, SEASONAL_COLUMN]
    if anchor == "seasonal":
        return rows[:, SEASONAL_COLUMN]
    if anchor == "last":
        return rows[:, LAST_COLUMN]
    return np.zeros(rows.shape[0])


def _regressor(cfg: BoostedConfig) -> HistGradientBoostingRegressor:
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        raise ImportError(
            "the boosted forecaster needs scikit-learn (pip install 'hcp-twin[optimizer]')"
        ) from None
    categorical = [name in CATEGORICAL for name in FEATURE_NAMES]
    return HistGradientBoostingRegressor(
        loss=cfg.loss,
        learning_rate=cfg.learning_rate,
        max_iter=cfg.max_iter,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=cfg.l2_regularization,
        categorical_features=categorical,
        early_stopping=False,
        random_state=cfg.random_state,
    )


def _single_thread() -> Any:
    """Run scikit-learn's OpenMP code on one thread.

    The model is small (a few hundred rows per prediction, tens of thousands per fit): on a
    busy machine OpenMP's thread team costs far more than it saves — measured 0.4 s instead
    of 3 ms per 288-step prediction with other processes on both cores.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")
