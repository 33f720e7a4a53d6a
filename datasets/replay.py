"""Put recorded history onto the dispatch grid for replay.

The dispatch grid is ``n_steps`` steps of ``step_s`` seconds from a UTC instant (the scenario
start moved back by ``shift_days``). Two kinds of history:

* **interval data** (ERCOT prices): a value holds over each file interval. Each dispatch
  step gets the time average over the step of that step function, which is the interval's
  own value whenever the step lies inside one interval (e.g. 300 s steps in hourly data:
  a step hold) and the energy-weighted mean when a step spans several intervals (e.g. an
  hourly dispatch over 15-min prices);
* **point data** (daily BTC values): linear interpolation in time between the points at
  each step start; past the last point its value holds for one typical spacing (a daily
  value covers its whole day).

A step that is not covered by the file raises :class:`~datasets.signals.SignalRangeError`
naming what the file covers and what the run asked for, in dates.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from datasets.signals import SignalRangeError


def epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since 1970-01-01 UTC [s] of tz-aware timestamps, as float."""
    return np.asarray(index.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64) / 1e9


def grid_epoch_seconds(
    start: datetime, n_steps: int, step_s: float, shift_days: float = 0.0
) -> np.ndarray:
    """Step starts [s since epoch] of the dispatch grid in the file's time (shifted back)."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start must be timezone-aware, got {start.isoformat()}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if not step_s > 0:
        raise ValueError(f"step_s must be > 0, got {step_s}")
    origin_s = start.timestamp() - shift_days * 86400.0
    return origin_s + step_s * np.arange(n_steps)


def interval_means(
    starts_s: np.ndarray,
    values: np.ndarray,
    interval_s: float,
    grid_s: np.ndarray,
    step_s: float,
    what: str,
) -> np.ndarray:
    """Time average over each step ``[g, g + step_s)`` of interval data.

    Args:
        starts_s: interval starts [s since epoch], ascending and unique.
        values: value per interval (any unit; returned in the same unit).
        interval_s: interval length [s].
        grid_s: step starts [s since epoch], ascending.
        step_s: step length [s].
        what: the signal and file, for error messages.

    Raises:
        SignalRangeError: a step reaches outside the file or into a gap between intervals.
    """
    ends_s = starts_s + interval_s
    if grid_s[0] < starts_s[0] - 1e-6 or grid_s[-1] + step_s > ends_s[-1] + 1e-6:
        raise _range_error(starts_s[0], ends_s[-1], grid_s, step_s, what)
    gap_after = np.flatnonzero(starts_s[1:] > ends_s[:-1] + 1e-6)
    if gap_after.size:
        gap_starts = ends_s[gap_after]
        gap_ends = starts_s[gap_after + 1]
        last_step = np.searchsorted(grid_s, gap_ends, side="left") - 1
        hits = (last_step >= 0) & (grid_s[np.maximum(last_step, 0)] + step_s > gap_starts + 1e-6)
        if hits.any():
            k = int(np.flatnonzero(hits)[0])
            raise SignalRangeError(
                f"{what}: the file has no data from {_date(gap_starts[k])} to "
                f"{_date(gap_ends[k])} UTC, which the run needs"
            )
    first = np.searchsorted(starts_s, grid_s, side="right") - 1
    last = np.searchsorted(starts_s, grid_s + step_s - 1e-6, side="right") - 1
    cumulative = np.concatenate([[0.0], np.cumsum(values * interval_s)])
    knots_s = np.column_stack([starts_s, ends_s]).ravel()
    knot_integrals = np.column_stack([cumulative[:-1], cumulative[1:]]).ravel()
    integral_end = np.interp(grid_s + step_s, knots_s, knot_integrals)
    integral_start = np.interp(grid_s, knots_s, knot_integrals)
    spanning = (integral_end - integral_start) / step_s
    return np.where(first == last, values[first], spanning)


def interpolate_points(
    times_s: np.ndarray, values: np.ndarray, grid_s: np.ndarray, step_s: float, what: str
) -> np.ndarray:
    """Linear interpolation of point data at each step start.

    The file covers ``[first point, last point + median spacing)``: the last value holds for
    one typical spacing (a daily value stands for its whole day).

    Raises:
        SignalRangeError: a step start lies outside what the file covers.
    """
    hold_s = float(np.median(np.diff(times_s))) if times_s.size > 1 else 86400.0
    covered_end_s = times_s[-1] + hold_s
    if grid_s[0] < times_s[0] - 1e-6 or grid_s[-1] >= covered_end_s:
        raise _range_error(times_s[0], covered_end_s, grid_s, step_s, what)
    return np.interp(grid_s, times_s, values)


def _range_error(
    covered_start_s: float, covered_end_s: float, grid_s: np.ndarray, step_s: float, what: str
) -> SignalRangeError:
    return SignalRangeError(
        f"{what}: the file covers {_date(covered_start_s)} to {_date(covered_end_s)} UTC "
        f"but the run needs {_date(grid_s[0])} to {_date(grid_s[-1] + step_s)} UTC"
    )


def _date(epoch_s: float) -> str:
    return pd.Timestamp(epoch_s, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")
