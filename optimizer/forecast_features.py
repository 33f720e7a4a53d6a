"""Feature rows for direct multi-horizon forecasting, built from the past only.

One row describes one (origin, lead) pair: the origin ``o`` is a position in the series
(``z[:o]`` is the past) and the lead ``k >= 0`` picks the target ``z[o + k]``, whose
interval ends ``(k + 1) * step_s`` after the origin. Every lag feature reads ``z`` strictly
before ``o``, so rows can be built for training (many origins inside one history) and for
prediction (the single origin at the end of the history) by the same code.

Columns (see :data:`FEATURE_NAMES`): lead time; the target's local hour, weekday, month and
holiday flag; the last value; values 1 h, 24 h and 168 h before the origin; the value at the
target's time of day yesterday and at its time last week (the seasonal-naive forecasts, the
last day or week repeated for longer leads); mean over the last hour; mean, max, min and
standard deviation over the last 24 h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from optimizer.forecast_calendar import Calendar
from optimizer.forecast_types import ForecastInputError, steps_in

HOUR_S = 3600.0
DAY_S = 86400.0
WEEK_S = 7 * DAY_S

FEATURE_NAMES = (
    "lead_h",
    "hour_of_day",
    "day_of_week",
    "month",
    "is_holiday",
    "last",
    "hour_ago",
    "day_ago",
    "week_ago",
    "same_time_yesterday",
    "same_time_last_week",
    "mean_1h",
    "mean_24h",
    "max_24h",
    "min_24h",
    "std_24h",
)
CATEGORICAL = ("day_of_week", "is_holiday")
"""Columns the gradient-boosting model treats as categories."""
SEASONAL_COLUMN = FEATURE_NAMES.index("same_time_yesterday")
LAST_COLUMN = FEATURE_NAMES.index("last")
LEAD_COLUMN = FEATURE_NAMES.index("lead_h")


@dataclass(frozen=True)
class LagLayout:
    """The lag offsets of a grid, in steps.

    Attributes:
        step_s: grid step [s]; one hour and one day must be whole numbers of steps.
        hour, day, week: steps in 1 h, 24 h and 168 h.
    """

    step_s: float
    hour: int
    day: int
    week: int

    @classmethod
    def for_step(cls, step_s: float, name: str = "series") -> LagLayout:
        """The layout of a grid of ``step_s`` seconds (ForecastInputError if 1 h is not a
        whole number of steps)."""
        hour = steps_in(HOUR_S, step_s, f"{name}: one hour")
        return cls(step_s=float(step_s), hour=hour, day=24 * hour, week=168 * hour)

    @property
    def lookback(self) -> int:
        """Past steps a feature row needs before its origin (one week)."""
        return self.week


def feature_rows(
    z: np.ndarray,
    origins: np.ndarray,
    leads: np.ndarray,
    layout: LagLayout,
    target_t_s: np.ndarray,
    calendar: Calendar,
) -> np.ndarray:
    """The feature matrix, one row per (origin, lead) pair, columns as FEATURE_NAMES.

    Args:
        z: the (transformed) series; only ``z[:origin]`` is read for each row.
        origins: positions in ``z`` (int), each >= ``layout.lookback``.
        leads: step leads k >= 0 (int), same length as ``origins``.
        layout: lag offsets of the grid.
        target_t_s: start time of each row's target interval [s since scenario start].
        calendar: local calendar of simulation time.
    """
    origins = np.asarray(origins, dtype=np.int64)
    leads = np.asarray(leads, dtype=np.int64)
    if origins.size and int(origins.min()) < layout.lookback:
        raise ForecastInputError(
            f"feature rows need {layout.lookback} past steps, an origin has {int(origins.min())}"
        )
    day, week, hour = layout.day, layout.week, layout.hour
    unique, inverse = np.unique(origins, return_inverse=True)
    window = sliding_window_view(z, day)[unique - day]
    sums = np.concatenate(([0.0], np.cumsum(z)))
    mean_1h = (sums[unique] - sums[unique - hour]) / hour
    stats = np.column_stack(
        (mean_1h, window.mean(axis=1), window.max(axis=1), window.min(axis=1), window.std(axis=1))
    )[inverse]
    cal = calendar.features(target_t_s)
    return np.column_stack(
        (
            (leads + 1) * layout.step_s / HOUR_S,
            cal.hour_of_day,
            cal.day_of_week,
            cal.month,
            cal.is_holiday,
            z[origins - 1],
            z[origins - 1 - hour],
            z[origins - day],
            z[origins - week],
            z[origins - day + leads % day],
            z[origins - week + leads % week],
            stats,
        )
    )
