"""Tests of the price and demand forecasters: calendar, seasonal naive, the boosted model,
rolling use and backtests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.forecast import (
    DAY_S,
    WEEK_S,
    BacktestResult,
    BoostedConfig,
    BoostedForecaster,
    BoostedModel,
    Calendar,
    ForecastInputError,
    History,
    NaiveFallback,
    Persistence,
    RollingForecaster,
    SeasonalNaive,
    backtest,
    forecast,
    nerc_holidays,
    skill,
)

CPT = ZoneInfo("America/Chicago")
START = datetime(2023, 3, 1, tzinfo=CPT)
START_UTC = START.astimezone(UTC)
"""Aware arithmetic in UTC: adding a timedelta to a zoned datetime adds wall-clock time."""
CALENDAR = Calendar.from_start(START)
STEP_S = 900.0
STEPS_PER_DAY = int(DAY_S / STEP_S)


def spiky_daily_series(days: int, seed: int) -> np.ndarray:
    """A price-like series on a 900 s grid [USD/MWh]: a daily shape (evening peak, night
    trough), AR(1) noise and rare positive spikes."""
    rng = np.random.default_rng(seed)
    n = days * STEPS_PER_DAY
    hour = (np.arange(n) % STEPS_PER_DAY) * STEP_S / 3600.0
    shape = (
        35.0
        + 20.0 * np.exp(-0.5 * ((hour - 18.0) / 2.5) ** 2)
        - 8.0 * np.cos(2 * np.pi * hour / 24)
    )
    noise = np.empty(n)
    noise[0] = 0.0
    shocks = rng.normal(0.0, 3.0, size=n)
    for i in range(1, n):
        noise[i] = 0.97 * noise[i - 1] + shocks[i]
    spikes = np.where(rng.random(n) < 0.004, rng.exponential(300.0, size=n), 0.0)
    return shape + noise + spikes


def history_of(values: np.ndarray, end: int | None = None) -> History:
    """The History of ``values[:end]`` with its origin at the end."""
    past = values if end is None else values[:end]
    return History(past, t_end_s=past.size * STEP_S, step_s=STEP_S, calendar=CALENDAR, name="p")


@pytest.fixture(scope="module")
def synthetic_backtest() -> BacktestResult:
    """Boosted vs seasonal naive over the last 14 days of 42 synthetic days, origins every
    2 h, the model refitted daily on the trailing 28 days."""
    series = spiky_daily_series(42, seed=7)
    return backtest(
        series,
        STEP_S,
        CALENDAR,
        BoostedForecaster(BoostedConfig(train_window_s=28 * DAY_S)),
        first_origin=28 * STEPS_PER_DAY,
        origin_every=8,
    )


def test_calendar_matches_zoneinfo_across_dst() -> None:
    """Hour, weekday and month agree with Python's own local time, across the spring DST
    change (2023-03-12) where the local day has 23 hours."""
    times_s = np.arange(0.0, 30 * DAY_S, 1800.0)
    features = CALENDAR.features(times_s)
    local = [(START_UTC + timedelta(seconds=float(t))).astimezone(CPT) for t in times_s]
    hours = np.array([m.hour + m.minute / 60 for m in local])
    assert np.allclose(features.hour_of_day, hours)
    assert np.array_equal(features.day_of_week, [m.weekday() for m in local])
    assert np.array_equal(features.month, [m.month for m in local])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=-3 * 365 * 86400, max_value=10 * 365 * 86400))
def test_calendar_hour_and_weekday_match_zoneinfo_anywhere(t_s: int) -> None:
    """Any whole second in the covered years gets the local hour and weekday zoneinfo
    gives."""
    moment = (START_UTC + timedelta(seconds=t_s)).astimezone(CPT)
    features = CALENDAR.features(float(t_s))
    expected = moment.hour + moment.minute / 60 + moment.second / 3600
    assert features.hour_of_day[0] == pytest.approx(expected, abs=1e-6)
    assert int(features.day_of_week[0]) == moment.weekday()
    assert int(features.month[0]) == moment.month


def test_calendar_holidays_follow_nerc_rules() -> None:
    """Independence Day 2023 and the Monday after Christmas 2022 (a Sunday) are holidays;
    the day before each is not; Thanksgiving 2023 is the fourth Thursday (Nov 23)."""
    days = nerc_holidays(2022, 2023)
    assert date(2022, 12, 26) in days and date(2022, 12, 25) not in days
    assert date(2023, 11, 23) in days and date(2023, 5, 29) in days
    noon = [datetime(2023, 7, 4, 12, tzinfo=CPT), datetime(2023, 7, 3, 12, tzinfo=CPT)]
    t_s = np.array([(moment - START).total_seconds() for moment in noon])
    assert CALENDAR.is_holiday(t_s).tolist() == [True, False]


def test_calendar_rejects_times_outside_its_years_and_naive_start() -> None:
    """Times past the covered years and a start without a UTC offset are input errors."""
    with pytest.raises(ForecastInputError, match="outside the years"):
        CALENDAR.features(40 * 365 * DAY_S)
    with pytest.raises(ForecastInputError, match="UTC offset"):
        Calendar.from_start(datetime(2023, 3, 1))
    with pytest.raises(ForecastInputError, match="time zone"):
        Calendar.from_start(START, zone="Mars/Olympus")


def test_seasonal_naive_is_exact_on_a_periodic_series() -> None:
    """On a series that repeats every day, seasonal naive continues it exactly, also
    beyond one day ahead (the last day repeats); the weekly variant does the same for a
    weekly pattern."""
    rng = np.random.default_rng(3)
    day = rng.normal(40.0, 10.0, size=STEPS_PER_DAY)
    series = np.tile(day, 6)
    predicted = SeasonalNaive().predict(history_of(series, 4 * STEPS_PER_DAY), 2 * STEPS_PER_DAY)
    assert np.array_equal(predicted.values, series[4 * STEPS_PER_DAY :])
    assert predicted.fallback_reason is None

    week = rng.normal(40.0, 10.0, size=7 * STEPS_PER_DAY)
    weekly = np.tile(week, 3)
    origin = 8 * STEPS_PER_DAY
    weekly_forecast = SeasonalNaive(period_s=WEEK_S).predict(history_of(weekly, origin), 500)
    assert np.array_equal(weekly_forecast.values, weekly[origin : origin + 500])


def test_seasonal_naive_holds_last_value_with_less_than_a_period() -> None:
    """With under a day of history the last value is held, and the forecast says why."""
    result = SeasonalNaive().predict(history_of(np.array([5.0, 7.0, 9.0])), 4)
    assert result.values.tolist() == [9.0] * 4
    assert result.fallback_reason is not None and "less than one period" in result.fallback_reason


def test_boosted_beats_seasonal_naive_on_spiky_daily_series(
    synthetic_backtest: BacktestResult,
) -> None:
    """On a daily shape with AR noise and spikes, the boosted model has positive measured
    skill over seasonal naive at 15 min, 1 h, 4 h and 24 h and over all leads."""
    for horizon_s in (900.0, 3600.0, 4 * 3600.0, DAY_S):
        score = synthetic_backtest.score(horizon_s)
        assert score.skill > 0.0, (horizon_s, score)
        assert score.mae_model < score.mae_baseline
    assert synthetic_backtest.score_all_leads().skill > 0.0
    assert synthetic_backtest.fallbacks == 0


def test_backtest_forecasts_ignore_values_after_each_origin() -> None:
    """Changing every value from some step on leaves each forecast made at or before that
    step unchanged (model and baseline): the rolling helper never looks ahead."""
    series = spiky_daily_series(11, seed=11)
    cut = 9 * STEPS_PER_DAY
    altered = series.copy()
    altered[cut:] = np.random.default_rng(5).normal(500.0, 200.0, size=series.size - cut)
    config = BoostedConfig(train_window_s=10 * DAY_S, min_train_rows=200)

    def run(values: np.ndarray) -> BacktestResult:
        return backtest(
            values,
            STEP_S,
            CALENDAR,
            BoostedForecaster(config),
            first_origin=8 * STEPS_PER_DAY,
            origin_every=16,
            horizons_s=(3600.0, DAY_S),
        )

    a, b = run(series), run(altered)
    before = a.origins_s <= cut * STEP_S
    assert before.sum() >= 4 and (~before).sum() >= 1
    assert np.array_equal(a.model[before], b.model[before])
    assert np.array_equal(a.baseline[before], b.baseline[before])
    assert not np.array_equal(a.model[~before], b.model[~before])


def test_boosted_fit_and_predict_are_deterministic() -> None:
    """Two fits on the same history give identical forecasts."""
    series = spiky_daily_series(12, seed=2)
    history = history_of(series)
    first = BoostedForecaster().fit(history).predict(history, 96)
    second = BoostedForecaster().fit(history).predict(history, 96)
    assert isinstance(BoostedForecaster().fit(history), BoostedModel)
    assert np.array_equal(first.values, second.values)


def test_count_forecasts_are_never_negative() -> None:
    """Job arrivals per step (Poisson counts, many zeros at night) forecast with
    ``non_negative`` stay >= 0 for the boosted model and seasonal naive."""
    rng = np.random.default_rng(9)
    n = 12 * STEPS_PER_DAY
    hour = (np.arange(n) % STEPS_PER_DAY) * STEP_S / 3600.0
    rate = np.clip(3.0 * np.cos(2 * np.pi * (hour - 14.0) / 24.0), 0.0, None)
    counts = rng.poisson(rate).astype(float)
    history = history_of(counts)
    boosted = BoostedForecaster(BoostedConfig(non_negative=True)).fit(history)
    predicted = boosted.predict(history, 2 * STEPS_PER_DAY)
    assert predicted.fallback_reason is None
    assert predicted.values.min() >= 0.0
    assert predicted.values.max() > 0.0
    negative = history_of(counts - 1.0)
    assert SeasonalNaive(non_negative=True).predict(negative, 200).values.min() >= 0.0


def test_short_history_falls_back_to_naive_with_reason() -> None:
    """Fewer days than the week of lags needs: fit returns seasonal naive with a reason,
    and a trained model given a short history at predict time does the same."""
    short = history_of(spiky_daily_series(3, seed=1))
    fitted = BoostedForecaster().fit(short)
    assert isinstance(fitted, NaiveFallback)
    result = fitted.predict(short, 10)
    assert result.fallback_reason is not None and "training rows" in result.fallback_reason
    assert np.array_equal(result.values, SeasonalNaive().predict(short, 10).values)

    model = BoostedForecaster().fit(history_of(spiky_daily_series(12, seed=1)))
    late = model.predict(short, 10)
    assert late.fallback_reason is not None and "one week" in late.fallback_reason


def test_bad_histories_are_rejected_with_the_reason() -> None:
    """Empty history, a NaN (named by index), a step that does not divide an hour, a model
    fed another step, and a zero horizon all raise ForecastInputError (a ValueError)."""
    empty = History(np.array([]), 0.0, STEP_S, CALENDAR, "price.HB_WEST")
    with pytest.raises(ForecastInputError, match="empty history"):
        SeasonalNaive().predict(empty, 3)
    with pytest.raises(ValueError, match="empty history"):
        BoostedForecaster().fit(empty)
    values = np.arange(10.0)
    values[5] = np.nan
    with pytest.raises(ValueError, match="index 5"):
        History(values, 9000.0, STEP_S, CALENDAR, "price.HB_WEST")
    with pytest.raises(ForecastInputError, match="whole number of steps"):
        BoostedForecaster().fit(History(np.ones(5000), 0.0, 700.0, CALENDAR))
    model = BoostedForecaster().fit(history_of(spiky_daily_series(12, seed=4)))
    other_step = History(np.ones(5000), 0.0, 300.0, CALENDAR)
    with pytest.raises(ForecastInputError, match="trained on"):
        model.predict(other_step, 4)
    with pytest.raises(ForecastInputError, match="horizon_steps"):
        forecast(history_of(np.ones(10)), 0)


def test_history_is_a_frozen_copy() -> None:
    """Changing the caller's array after building a History does not change it, and the
    forecast values cannot be written."""
    values = np.ones(300)
    history = history_of(values)
    values[:] = 99.0
    assert history.values.max() == 1.0
    with pytest.raises(ValueError):
        history.values[0] = 2.0
    result = Persistence().predict(history, 3)
    with pytest.raises(ValueError):
        result.values[0] = 2.0


def test_rolling_forecaster_refits_once_per_day() -> None:
    """Hourly forecasts over three days refit three times; going back in time refits."""
    series = np.arange(4 * STEPS_PER_DAY, dtype=float)
    rolling = RollingForecaster(SeasonalNaive())
    for end in range(STEPS_PER_DAY, 4 * STEPS_PER_DAY, 4):
        rolling.forecast(history_of(series, end), 4)
    assert rolling.fit_count == 3
    rolling.forecast(history_of(series, STEPS_PER_DAY + 8), 4)
    assert rolling.fit_count == 4


def test_skill_is_one_minus_mae_ratio() -> None:
    """Half the baseline's absolute error is a skill of 0.5; equal errors 0; a perfect
    baseline is an error."""
    assert skill(np.array([1.0, -1.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    assert skill(np.array([3.0]), np.array([-3.0])) == pytest.approx(0.0)
    with pytest.raises(ForecastInputError, match="baseline MAE is 0"):
        skill(np.array([1.0]), np.array([0.0]))
