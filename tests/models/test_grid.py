"""ERCOT-style grid: prices, ancillary services, 4CP intervals and grid events."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.signals import ConstantSignal, SeriesSignal, SignalRangeError
from models.grid import FOUR_CP_INTERVAL_S, NO_CURTAILMENT, Grid, GridError
from twin.scenario import FourCp, GridEvent
from twin.scenario import Grid as GridConfig

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2023, 5, 15, tzinfo=CHICAGO)
STEP_S = 300.0
DAY_S = 86400.0
FACILITIES = ["alpha", "beta"]


def _local(t_s: float, start: datetime = START) -> datetime:
    """Chicago wall-clock time of model time ``t_s``."""
    return datetime.fromtimestamp(start.timestamp() + t_s, tz=CHICAGO)


def _t_s(local: datetime, start: datetime = START) -> float:
    return local.timestamp() - start.timestamp()


def _noisy_prices(duration_s: float, seed: int = 0) -> dict[str, SeriesSignal]:
    """Two settlement points of noisy prices around 40 USD/MWh on the dispatch grid."""
    rng = np.random.default_rng(seed)
    n = math.ceil(duration_s / STEP_S)
    return {
        point: SeriesSignal(40.0 + rng.normal(0.0, 8.0, n), STEP_S, name=f"price.{point}")
        for point in ("HB_WEST", "HB_NORTH")
    }


def _grid(
    cfg: GridConfig | None = None,
    duration_s: float = 170 * DAY_S,
    prices: dict[str, SeriesSignal] | None = None,
    seed: int = 1,
    start: datetime = START,
    step_s: float = STEP_S,
) -> Grid:
    return Grid(
        cfg or GridConfig(),
        start,
        duration_s,
        step_s,
        prices if prices is not None else _noisy_prices(duration_s),
        {"RRS": ConstantSignal(10.0, name="ancillary.RRS")},
        FACILITIES,
        np.random.default_rng(seed),
    )


# --------------------------------------------------------------------------- prices


def test_price_is_read_from_the_settlement_point_signal() -> None:
    """Each settlement point's price comes from its own signal; unknown points are errors."""
    prices = _noisy_prices(DAY_S)
    grid = _grid(duration_s=DAY_S, prices=prices)
    assert grid.price_usd_per_mwh("HB_WEST", 600.0) == prices["HB_WEST"].at(600.0)
    assert grid.price_usd_per_mwh("HB_NORTH", 600.0) == prices["HB_NORTH"].at(600.0)
    with pytest.raises(GridError, match="LZ_SOUTH"):
        grid.price_usd_per_mwh("LZ_SOUTH", 600.0)


def test_ancillary_services_missing_before_launch_or_nan_are_omitted() -> None:
    """ECRS (signal starting later) is absent before its start; a NaN service is absent;
    past a signal's end the gap is reported, not hidden."""
    ancillary = {
        "RRS": SeriesSignal(np.full(10, 12.0), 3600.0, name="ancillary.RRS"),
        "ECRS": SeriesSignal(np.full(5, 9.0), 3600.0, t0_s=5 * 3600.0, name="ancillary.ECRS"),
        "NSPIN": ConstantSignal(float("nan"), name="ancillary.NSPIN"),
    }
    grid = Grid(
        GridConfig(),
        START,
        10 * 3600.0,
        STEP_S,
        _noisy_prices(DAY_S),
        ancillary,
        FACILITIES,
        np.random.default_rng(0),
    )
    assert grid.ancillary_usd_per_mw_h(3600.0) == {"RRS": 12.0}
    assert grid.ancillary_usd_per_mw_h(6 * 3600.0) == {"RRS": 12.0, "ECRS": 9.0}
    with pytest.raises(SignalRangeError):
        grid.ancillary_usd_per_mw_h(11 * 3600.0)


# --------------------------------------------------------------------------- 4CP


def test_four_cp_one_weekday_interval_per_summer_month_at_peak_hour() -> None:
    """A run from mid-May to October has exactly one 4CP interval in each of June-September,
    on a weekday, starting at 16:45 Chicago time (peak hour 16.75)."""
    grid = _grid()
    intervals = grid.four_cp_intervals_s
    local = [_local(t) for t in intervals]
    assert [t.month for t in local] == [6, 7, 8, 9]
    assert all(t.weekday() < 5 for t in local)
    assert all((t.hour, t.minute, t.second) == (16, 45, 0) for t in local)
    assert list(intervals) == sorted(intervals)


def test_four_cp_flags_exactly_the_dispatch_intervals_inside_the_15_minutes() -> None:
    """With 5-minute dispatch, the three intervals of each 4CP quarter hour are flagged and
    none other in the run."""
    grid = _grid()
    starts = np.arange(0.0, grid.duration_s, STEP_S)
    flagged = np.array([t for t in starts if grid.is_four_cp(t)])
    expected = np.concatenate(
        [c + np.arange(0.0, FOUR_CP_INTERVAL_S, STEP_S) for c in grid.four_cp_intervals_s]
    )
    np.testing.assert_array_equal(flagged, expected)


def test_four_cp_flags_every_overlapping_interval_for_long_or_offset_steps() -> None:
    """An hourly dispatch interval containing the quarter hour is flagged, and so is a
    5-minute interval that starts before the quarter hour but overlaps it."""
    hourly = _grid(step_s=3600.0, prices=_noisy_prices(170 * DAY_S))
    for c in hourly.four_cp_intervals_s:
        hour_start = c - 45 * 60.0
        assert hourly.is_four_cp(hour_start)
        assert not hourly.is_four_cp(hour_start - 3600.0)
        assert not hourly.is_four_cp(hour_start + 3600.0)
    grid = _grid()
    c = grid.four_cp_intervals_s[0]
    assert grid.is_four_cp(c - 60.0)
    assert grid.is_four_cp(c + FOUR_CP_INTERVAL_S - 1.0)
    assert not grid.is_four_cp(c - STEP_S)
    assert not grid.is_four_cp(c + FOUR_CP_INTERVAL_S)


def test_four_cp_prefers_the_weekday_with_the_highest_system_price() -> None:
    """A price spike at 16:45 on Wed 2023-07-19 at both points makes it July's 4CP; a
    bigger spike at the same hour on Sat 2023-07-22 is ignored (not a weekday)."""
    duration_s = 170 * DAY_S
    prices = _noisy_prices(duration_s)
    spiked = {}
    for point, signal in prices.items():
        values = signal.values.copy()
        for day, price in ((19, 3000.0), (22, 5000.0)):
            index = int(_t_s(datetime(2023, 7, day, 16, 45, tzinfo=CHICAGO)) // STEP_S)
            values[index : index + 3] = price
        spiked[point] = SeriesSignal(values, STEP_S, name=signal.name)
    grid = _grid(duration_s=duration_s, prices=spiked)
    july = [t for t in grid.four_cp_intervals_s if _local(t).month == 7]
    assert [_local(t).date().isoformat() for t in july] == ["2023-07-19"]


def test_four_cp_only_for_months_inside_the_run() -> None:
    """A run from 2023-07-10 to 2023-08-05 gets July and August intervals, both in the run."""
    start = datetime(2023, 7, 10, tzinfo=CHICAGO)
    duration_s = 26 * DAY_S
    grid = _grid(start=start, duration_s=duration_s, prices=_noisy_prices(duration_s))
    intervals = grid.four_cp_intervals_s
    assert [_local(t, start).month for t in intervals] == [7, 8]
    assert all(t >= 0.0 and t + FOUR_CP_INTERVAL_S <= duration_s for t in intervals)


def test_four_cp_follows_configured_months_and_can_be_disabled() -> None:
    """Configured months and hour are honoured; a disabled 4CP has no intervals."""
    custom = _grid(GridConfig(four_cp=FourCp(months=[8], peak_hour_local=15.9)))
    (only,) = custom.four_cp_intervals_s
    assert (_local(only).month, _local(only).hour, _local(only).minute) == (8, 15, 45)
    disabled = _grid(GridConfig(four_cp=FourCp(enabled=False)))
    assert disabled.four_cp_intervals_s == ()
    assert not any(disabled.is_four_cp(t) for t in np.arange(0.0, 170 * DAY_S, 3600.0))


def test_four_cp_charge_accrues_a_quarter_of_the_annual_rate() -> None:
    """10 MW in a 4CP interval at 55 USD/kW-year accrues 55 * 10,000 kW / 4 = 137,500 USD."""
    grid = _grid(GridConfig(four_cp=FourCp(rate_usd_per_kw_year=55.0)), duration_s=DAY_S)
    assert grid.four_cp_charge_usd(10.0) == pytest.approx(137_500.0)
    assert grid.four_cp_charge_usd(0.0) == 0.0
    with pytest.raises(GridError, match="facility_mw_at_interval"):
        grid.four_cp_charge_usd(-1.0)


@settings(max_examples=15, deadline=None)
@given(
    start_day=st.integers(0, 365 * 3),
    duration_days=st.integers(20, 400),
    peak_quarter=st.integers(0, 95),
)
def test_four_cp_invariants_for_any_run(
    start_day: int, duration_days: int, peak_quarter: int
) -> None:
    """For any run and peak hour: at most one interval per (year, month), each on a weekday
    in a configured month, at the configured local quarter hour, fully inside the run."""
    start = datetime.fromtimestamp(
        datetime(2022, 1, 1, tzinfo=CHICAGO).timestamp() + start_day * DAY_S, tz=CHICAGO
    )
    duration_s = duration_days * DAY_S
    cfg = GridConfig(four_cp=FourCp(peak_hour_local=peak_quarter / 4))
    grid = _grid(cfg, duration_s=duration_s, start=start, prices={}, step_s=900.0)
    local = [_local(t, start) for t in grid.four_cp_intervals_s]
    months = [(t.year, t.month) for t in local]
    assert len(months) == len(set(months))
    for t_s, when in zip(grid.four_cp_intervals_s, local, strict=True):
        assert when.month in (6, 7, 8, 9)
        assert when.weekday() < 5
        assert when.hour * 60 + when.minute == peak_quarter * 15
        assert t_s >= 0.0 and t_s + FOUR_CP_INTERVAL_S <= duration_s


# --------------------------------------------------------------------------- events


def _event_cfg(**extra: float) -> GridConfig:
    return GridConfig(
        events=[
            GridEvent(
                kind="ers",
                start=datetime(2023, 8, 1, 15, 0, tzinfo=CHICAGO),
                duration_h=2.0,
                curtail_fraction=0.5,
                payment_usd_per_mwh=800.0,
                facilities=["alpha"],
            )
        ],
        **extra,
    )


def test_explicit_event_fires_only_in_its_window_and_for_its_facilities() -> None:
    """An ERS event 15:00-17:00 on 2023-08-01 for alpha asks alpha (not beta) to shed half
    its flexible load for 800 USD/MWh, from its first second to just before its end."""
    grid = _grid(_event_cfg())
    start_s = _t_s(datetime(2023, 8, 1, 15, 0, tzinfo=CHICAGO))
    end_s = start_s + 2 * 3600.0
    request = grid.curtail_request("alpha", start_s)
    assert (request.fraction, request.payment_usd_per_mwh, request.kind) == (0.5, 800.0, "ers")
    assert grid.curtail_request("alpha", end_s - 1.0).fraction == 0.5
    assert grid.curtail_request("alpha", start_s - 1.0) == NO_CURTAILMENT
    assert grid.curtail_request("alpha", end_s) == NO_CURTAILMENT
    assert grid.curtail_request("beta", start_s + 60.0) == NO_CURTAILMENT
    (row,) = grid.events_table()
    assert row == (start_s, end_s, "ers", 0.5, ("alpha",))


def test_overlapping_events_ask_for_the_largest_curtailment() -> None:
    """A full-curtailment event for all sites inside a partial one for alpha wins."""
    cfg = GridConfig(
        events=[
            GridEvent(
                start=datetime(2023, 8, 1, 15, tzinfo=CHICAGO),
                duration_h=3.0,
                curtail_fraction=0.3,
                facilities=["alpha"],
            ),
            GridEvent(
                kind="eea",
                start=datetime(2023, 8, 1, 16, tzinfo=CHICAGO),
                duration_h=0.5,
                curtail_fraction=1.0,
                payment_usd_per_mwh=50.0,
            ),
        ]
    )
    grid = _grid(cfg)
    assert grid.curtail_request("alpha", _t_s(datetime(2023, 8, 1, 15, 30, tzinfo=CHICAGO))) == (
        grid.curtail_request("alpha", _t_s(datetime(2023, 8, 1, 17, 0, tzinfo=CHICAGO)))
    )
    peak = grid.curtail_request("alpha", _t_s(datetime(2023, 8, 1, 16, 10, tzinfo=CHICAGO)))
    assert (peak.fraction, peak.kind, peak.payment_usd_per_mwh) == (1.0, "eea", 50.0)


def test_unknown_facility_is_an_error() -> None:
    """Asking about, or configuring an event for, a facility the grid does not know fails."""
    grid = _grid(duration_s=DAY_S)
    with pytest.raises(GridError, match="gamma"):
        grid.curtail_request("gamma", 0.0)
    cfg = GridConfig(events=[GridEvent(start=START, duration_h=1.0, facilities=["gamma"])])
    with pytest.raises(GridError, match=r"events\[0\]"):
        _grid(cfg, duration_s=DAY_S)


def test_synthetic_events_are_seasonal_short_and_fire_only_inside_their_windows() -> None:
    """At 40 events a year over two years: a plausible Poisson count, each 1-4 h on the
    dispatch grid, for every facility, paid the configured price, mostly in summer
    afternoons or winter mornings; requests match the event table exactly."""
    start = datetime(2023, 1, 1, tzinfo=CHICAGO)
    duration_s = 2 * 365 * DAY_S
    cfg = GridConfig(synthetic_events_per_year=40.0, synthetic_event_payment_usd_per_mwh=700.0)
    grid = _grid(cfg, duration_s=duration_s, start=start, prices={}, seed=3)
    table = grid.events_table()
    assert abs(len(table) - 80) < 4 * math.sqrt(80)
    seasonal = 0
    for row in table:
        assert 3600.0 <= row.end_s - row.start_s <= 4 * 3600.0
        assert row.start_s % STEP_S == 0.0
        assert row.facilities == tuple(FACILITIES)
        when = _local(row.start_s, start)
        summer_afternoon = when.month in (6, 7, 8, 9) and 14 <= when.hour < 20
        winter_morning = when.month in (12, 1, 2) and 6 <= when.hour < 10
        seasonal += summer_afternoon or winter_morning
    assert seasonal / len(table) > 0.6
    times = np.arange(0.0, duration_s, STEP_S)
    inside = np.zeros(times.size, dtype=bool)
    for row in table:
        inside |= (times >= row.start_s) & (times < row.end_s)
    fired = np.array([grid.curtail_request("beta", t).fraction > 0 for t in times])
    np.testing.assert_array_equal(fired, inside)
    assert grid.curtail_request("beta", table[0].start_s).payment_usd_per_mwh == 700.0


def test_grid_is_deterministic_per_seed() -> None:
    """Same seed: identical events and 4CP intervals; another seed: different events."""
    cfg = GridConfig(synthetic_events_per_year=30.0)
    same = [_grid(cfg, prices={}, seed=9) for _ in range(2)]
    other = _grid(cfg, prices={}, seed=10)
    assert same[0].events_table() == same[1].events_table()
    assert same[0].four_cp_intervals_s == same[1].four_cp_intervals_s
    assert same[0].events_table() != other.events_table()


def test_grid_rejects_bad_construction_inputs() -> None:
    """Naive start, non-positive duration or step, and duplicate facility ids are refused."""
    with pytest.raises(GridError, match="start"):
        _grid(start=datetime(2023, 5, 15), duration_s=DAY_S)
    with pytest.raises(GridError, match="duration_s"):
        _grid(duration_s=0.0, prices={})
    with pytest.raises(GridError, match="step_s"):
        _grid(step_s=0.0, duration_s=DAY_S)
    with pytest.raises(GridError, match="unique"):
        Grid(GridConfig(), START, DAY_S, STEP_S, {}, {}, ["a", "a"], np.random.default_rng(0))
