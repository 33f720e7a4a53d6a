"""Start the twin's own computations from a page and report their progress.

Thin adapters, no model logic: a scenario run is ``twin.engine.build(scenario).run()``
written with ``RunResult.write`` (what ``python run.py simulate`` does), a backtest is
``twin.backtest.run_backtest`` (``python run.py backtest``), a forecast evaluation is
``optimizer.forecast.backtest`` on an ERCOT price file put on the dispatch grid by
``benchmarks.forecast_skill.grid_values``. Progress goes to a callback as a fraction done
(0-1) and a line of text, at most every :data:`PROGRESS_STEP`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from twin.scenario import Scenario

ProgressCallback = Callable[[float, str], object]
"""Told the fraction done [0-1] and a line of text saying where the work is."""

PROGRESS_STEP = 0.01
"""Smallest advance of the fraction done that is reported (the loop reports every
dispatch interval; a browser needs far fewer updates)."""

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
STEP_S = 300.0
"""Grid of the forecast evaluation [s]: the twin's dispatch interval."""
ERCOT_ZONE = "America/Chicago"


class RunInputError(ValueError):
    """A run cannot start: bad run name or options (names the field and the reason)."""


class ThrottledProgress:
    """Passes progress on to ``callback`` only when the fraction has advanced by ``step``
    since the last report, or reached 1."""

    def __init__(self, callback: ProgressCallback, step: float = PROGRESS_STEP) -> None:
        self._callback = callback
        self._step = step
        self._last = -1.0

    def __call__(self, fraction: float, text: str) -> None:
        """Report ``fraction`` (clipped to 0-1) with ``text`` if it moved far enough."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction - self._last >= self._step or (fraction >= 1.0 and self._last < 1.0):
            self._last = fraction
            self._callback(fraction, text)


def run_name(scenario_name: str, overrides: Mapping[str, Any]) -> str:
    """A results folder name for a run: the scenario's name, plus a short digest of the
    overrides when there are any (the same edits give the same name, so re-running a
    deterministic what-if replaces its folder instead of piling up copies)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", scenario_name).strip("_.") or "run"
    if not overrides:
        return stem[:80]
    text = json.dumps(overrides, sort_keys=True, default=str)
    return f"{stem[:72]}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def run_folder(results_dir: Path, name: str) -> Path:
    """``results_dir / name`` for a plain folder ``name``.

    Raises:
        RunInputError: ``name`` is not a plain folder name (letters, digits, ``_.-``).
    """
    if not RUN_NAME_PATTERN.match(name):
        raise RunInputError(
            f"run name {name!r}: use letters, digits, '_', '.' or '-' (at most 80), "
            "starting with a letter or digit"
        )
    return results_dir / name


def simulate(scenario: Scenario, out_dir: Path, progress: ProgressCallback) -> dict[str, Any]:
    """Run ``scenario`` in simulated time, write its results folder ``out_dir`` and
    return its KPIs (as ``python run.py simulate --out out_dir``)."""
    from twin.engine import build

    total_days = scenario.duration_days
    report = ThrottledProgress(progress)

    def on_progress(sim_days_done: float) -> None:
        report(sim_days_done / total_days, f"{sim_days_done:.2f} / {total_days:g} simulated days")

    twin = build(scenario)
    result = twin.run(progress=on_progress)
    report(1.0, "writing results")
    result.write(out_dir)
    return result.kpis


class BacktestProgressAdapter:
    """A twin.backtest.BacktestObserver reporting the whole backtest as one fraction:
    policies run one after the other, each over the scenario's duration."""

    def __init__(
        self, policies: Sequence[str], total_days: float, progress: ProgressCallback
    ) -> None:
        self._index = {name: i for i, name in enumerate(policies)}
        self._count = max(len(policies), 1)
        self._total_days = total_days
        self._report = ThrottledProgress(progress)

    def policy_started(self, name: str) -> None:
        """A policy's run begins."""
        self._report(self._index[name] / self._count, f"{name}: starting")

    def policy_progress(self, name: str, sim_days_done: float) -> None:
        """A policy's run advanced to ``sim_days_done`` [days]."""
        done = min(sim_days_done / self._total_days, 1.0)
        text = f"{name}: {sim_days_done:.2f} / {self._total_days:g} simulated days"
        self._report((self._index[name] + done) / self._count, text)

    def policy_finished(self, name: str, kpis: Mapping[str, Any]) -> None:
        """A policy's run ended with ``kpis``."""
        self._report(
            (self._index[name] + 1) / self._count, f"{name}: net {kpis['net_usd']:,.0f} USD"
        )


def backtest(
    scenario_file: Path,
    policies: Sequence[str],
    out_dir: Path,
    progress: ProgressCallback,
    *,
    prices_file: Path | None = None,
    settlement_point: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Path:
    """Run ``policies`` on the world of ``scenario_file`` (optionally on a real ERCOT
    price file over ``[start, end)``) and write the backtest folder ``out_dir`` (as
    ``python run.py backtest``); returns ``out_dir``.

    Raises:
        BacktestError, ScenarioError, DataFileError: bad options, scenario or price file
            (each names the option, field or file).
    """
    from twin.backtest import prepare_scenario, run_backtest

    scenario = prepare_scenario(
        scenario_file,
        {},
        prices_file=prices_file,
        settlement_point=settlement_point,
        start=start,
        end=end,
    )
    observer = BacktestProgressAdapter(policies, scenario.duration_days, progress)
    result = run_backtest(
        scenario, policies, out_dir, observer=observer, scenario_file=str(scenario_file)
    )
    return result.out_dir


# ---------------------------------------------------------------------- forecast skill


@dataclass(frozen=True)
class ForecastSkill:
    """A rolling-origin forecast evaluation on one settlement point's prices.

    Attributes:
        scores: one row per lead time and method: ``horizon`` (text), ``horizon_s``,
            ``method``, ``mae_usd_per_mwh``, ``mae_naive_usd_per_mwh``, ``skill``
            (1 - MAE / MAE of seasonal naive), ``origins``.
        origin_times: local time of each forecast origin.
        actual: prices after each origin, ``[origins, steps]`` [USD/MWh].
        paths: each method's forecasts, same shape, including ``seasonal_naive``.
        step_s: grid step [s].
        fallbacks: origins at which the learned model fell back to seasonal naive.
    """

    scores: pd.DataFrame
    origin_times: pd.DatetimeIndex
    actual: np.ndarray
    paths: dict[str, np.ndarray]
    step_s: float
    fallbacks: int


def forecast_skill(
    prices_file: Path,
    settlement_point: str,
    eval_start: date,
    eval_days: int,
    *,
    history_days: int = 28,
    origin_every_h: int = 1,
) -> ForecastSkill:
    """Evaluate the policy's price forecaster (gradient boosting, refitted daily) and
    persistence against seasonal naive on ``settlement_point``'s prices: origins every
    ``origin_every_h`` hours over ``eval_days`` local days from ``eval_start``, each
    forecasting 24 h from only the ``history_days`` days of prices before it onward.

    Raises:
        RunInputError: ``eval_days``, ``history_days`` or ``origin_every_h`` below 1.
        DataFileError, SignalRangeError: the file cannot be read or does not cover the
            history, the evaluation and the last day's 24 h ahead.
        ForecastInputError: too few values for the horizons.
    """
    from benchmarks.forecast_skill import grid_values
    from optimizer.forecast import (
        DEFAULT_HORIZONS_S,
        BoostedForecaster,
        Calendar,
        Persistence,
    )
    from optimizer.forecast import backtest as forecast_backtest

    for label, value in (
        ("evaluation days", eval_days),
        ("history days", history_days),
        ("origin every [h]", origin_every_h),
    ):
        if value < 1:
            raise RunInputError(f"{label}: must be >= 1, got {value}")
    # local midnights (wall-clock day arithmetic), then UTC so differences count real hours
    zone = ZoneInfo(ERCOT_ZONE)
    origin_local = datetime(eval_start.year, eval_start.month, eval_start.day, tzinfo=zone)
    first_origin = origin_local.astimezone(UTC)
    grid_start = (origin_local - timedelta(days=history_days)).astimezone(UTC)
    grid_end = (origin_local + timedelta(days=eval_days + 1)).astimezone(UTC)  # + 24 h ahead
    series = grid_values(str(prices_file), settlement_point, grid_start, grid_end)
    calendar = Calendar.from_start(grid_start)
    first_index = round((first_origin - grid_start).total_seconds() / STEP_S)
    every = round(origin_every_h * 3600 / STEP_S)
    runs = {}
    for method in (BoostedForecaster(), Persistence()):
        runs[method.name] = forecast_backtest(
            series,
            STEP_S,
            calendar,
            method,
            first_origin=first_index,
            origin_every=every,
            name=f"{prices_file.name} {settlement_point}",
        )
    rows = []
    for name, result in runs.items():
        for horizon_s in DEFAULT_HORIZONS_S:
            score = result.score(horizon_s)
            rows.append(_score_row(horizon_s, name, score))
    scores = pd.DataFrame(rows)
    reference = next(iter(runs.values()))
    origin_times = pd.DatetimeIndex(
        [grid_start + timedelta(seconds=float(t)) for t in reference.origins_s]
    ).tz_convert(ERCOT_ZONE)
    paths = {name: result.model for name, result in runs.items()}
    paths[reference.baseline_name] = reference.baseline
    return ForecastSkill(
        scores,
        origin_times,
        reference.actual,
        paths,
        STEP_S,
        sum(result.fallbacks for result in runs.values()),
    )


def _score_row(horizon_s: float, method: str, score: Any) -> dict[str, Any]:
    label = f"{horizon_s / 60:.0f} min" if horizon_s < 3600 else f"{horizon_s / 3600:.0f} h"
    return {
        "horizon": label,
        "horizon_s": horizon_s,
        "method": method,
        "mae_usd_per_mwh": score.mae_model,
        "mae_naive_usd_per_mwh": score.mae_baseline,
        "skill": score.skill,
        "origins": score.count,
    }


def failure_message(error: BaseException) -> str:
    """What a page shows when a run fails: an input problem's own message (it names the
    field, file or option), else the error's type and message. Never a stack trace."""
    if isinstance(error, ValueError | OSError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"
