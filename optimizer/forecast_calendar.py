"""Local calendar features of simulation time, for the forecasters.

Prices and AI demand follow the local day (ERCOT runs on Central Prevailing Time): hour of
day, weekday, month and holidays. The model only knows ``t_s`` (seconds since scenario
start); :class:`Calendar` turns such times into those features, vectorized, from the
scenario start instant and a time zone. It is pure data built once per run: the UTC offset
history of the zone over a span of years (DST included) and the holiday dates in that span.

Holidays are the NERC off-peak holidays that shape ERCOT load: New Year's Day, Memorial Day
(last Monday of May), Independence Day, Labor Day (first Monday of September), Thanksgiving
(fourth Thursday of November) and Christmas Day; a fixed-date holiday on a Sunday is
observed on the Monday after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from optimizer.forecast_types import ForecastInputError

DEFAULT_ZONE = "America/Chicago"
SECONDS_PER_DAY = 86400
_EPOCH = date(1970, 1, 1)
_THURSDAY = 3
"""Weekday of 1970-01-01 (Monday = 0)."""


@dataclass(frozen=True, eq=False)
class CalendarFeatures:
    """Local calendar of a set of times, one entry per time.

    Attributes:
        hour_of_day: local hour with its fraction, in [0, 24) [h].
        day_of_week: 0 = Monday ... 6 = Sunday.
        month: 1 ... 12.
        is_holiday: True on a NERC holiday (local date).
    """

    hour_of_day: np.ndarray
    day_of_week: np.ndarray
    month: np.ndarray
    is_holiday: np.ndarray


@dataclass(frozen=True, eq=False)
class Calendar:
    """Maps simulation time ``t_s`` [s since scenario start] to local calendar features.

    Build it with :meth:`from_start`. Times outside the years it covers raise
    :class:`ForecastInputError`.

    Attributes:
        start_epoch_s: the scenario start [s since 1970-01-01 UTC].
        zone: IANA time zone of the local calendar.
        first_year, last_year: civil years covered (inclusive).
    """

    start_epoch_s: float
    zone: str
    first_year: int
    last_year: int
    _transition_epoch_s: np.ndarray = field(repr=False)
    _utc_offset_s: np.ndarray = field(repr=False)
    _holiday_days: np.ndarray = field(repr=False)
    _covered_epoch_s: tuple[float, float] = field(repr=False)

    @classmethod
    def from_start(
        cls,
        start: datetime,
        zone: str = DEFAULT_ZONE,
        years_before: int = 5,
        years_after: int = 15,
    ) -> Calendar:
        """The calendar of a run starting at ``start`` (tz-aware), covering the years from
        ``years_before`` before the start year to ``years_after`` after it.

        Raises:
            ForecastInputError: ``start`` is naive, the zone is unknown, or a year span is
                negative.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ForecastInputError(f"calendar: start needs a UTC offset, got {start}")
        if years_before < 0 or years_after < 0:
            raise ForecastInputError(
                f"calendar: year spans must be >= 0, got {years_before}, {years_after}"
            )
        first_year = start.year - years_before
        last_year = start.year + years_after
        lo = pd.Timestamp(year=first_year, month=1, day=1, tz="UTC") - pd.Timedelta(days=1)
        hi = pd.Timestamp(year=last_year + 1, month=1, day=1, tz="UTC") + pd.Timedelta(days=1)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ForecastInputError(f"calendar: unknown time zone {zone!r} ({error})") from None
        hours = pd.date_range(lo, hi, freq="h")
        local = hours.tz_convert(zone)
        offset_s = np.asarray(
            (local.tz_localize(None) - hours.tz_localize(None)).total_seconds(), dtype=float
        )
        epoch_s = np.asarray(hours.as_unit("s").asi8, dtype=float)
        change = np.concatenate(([True], offset_s[1:] != offset_s[:-1]))
        holidays = np.array(
            [(day - _EPOCH).days for day in nerc_holidays(first_year, last_year)], dtype=np.int64
        )
        return cls(
            start_epoch_s=float(start.timestamp()),
            zone=zone,
            first_year=first_year,
            last_year=last_year,
            _transition_epoch_s=epoch_s[change],
            _utc_offset_s=offset_s[change],
            _holiday_days=holidays,
            _covered_epoch_s=(float(epoch_s[0]), float(epoch_s[-1])),
        )

    def _local_seconds(self, t_s: np.ndarray | float) -> np.ndarray:
        """Local wall-clock seconds since 1970-01-01 00:00 local [s]."""
        epoch_s = self.start_epoch_s + np.asarray(t_s, dtype=float)
        lo, hi = self._covered_epoch_s
        outside = ~((epoch_s >= lo) & (epoch_s < hi))
        if np.any(outside):
            bad = float(np.asarray(t_s, dtype=float)[outside].flat[0])
            raise ForecastInputError(
                f"calendar: t_s={bad:.0f} s is outside the years {self.first_year}-"
                f"{self.last_year} this calendar covers"
            )
        which = np.searchsorted(self._transition_epoch_s, epoch_s, side="right") - 1
        return epoch_s + self._utc_offset_s[which]

    def features(self, t_s: np.ndarray | float) -> CalendarFeatures:
        """Hour of day, weekday, month and holiday flag at each time ``t_s`` [s]."""
        local_s = np.atleast_1d(self._local_seconds(t_s))
        day = np.floor(local_s / SECONDS_PER_DAY).astype(np.int64)
        months = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return CalendarFeatures(
            hour_of_day=(local_s - day * SECONDS_PER_DAY) / 3600.0,
            day_of_week=(day + _THURSDAY) % 7,
            month=months % 12 + 1,
            is_holiday=np.isin(day, self._holiday_days),
        )

    def hour_of_day(self, t_s: np.ndarray | float) -> np.ndarray:
        """Local hour of day with its fraction, [0, 24) [h]."""
        return self.features(t_s).hour_of_day

    def day_of_week(self, t_s: np.ndarray | float) -> np.ndarray:
        """Local weekday, 0 = Monday ... 6 = Sunday."""
        return self.features(t_s).day_of_week

    def month(self, t_s: np.ndarray | float) -> np.ndarray:
        """Local month, 1 ... 12."""
        return self.features(t_s).month

    def is_holiday(self, t_s: np.ndarray | float) -> np.ndarray:
        """True where the local date is a NERC holiday."""
        return self.features(t_s).is_holiday


def nerc_holidays(first_year: int, last_year: int) -> list[date]:
    """The NERC holidays of the years ``first_year`` ... ``last_year`` (inclusive), sorted."""
    days: list[date] = []
    for year in range(first_year, last_year + 1):
        days += [
            _observed(date(year, 1, 1)),
            _last_weekday(year, 5, weekday=0),
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, weekday=0, n=1),
            _nth_weekday(year, 11, weekday=3, n=4),
            _observed(date(year, 12, 25)),
        ]
    return sorted(days)


def _observed(day: date) -> date:
    """A fixed-date holiday falling on a Sunday is observed on Monday."""
    return day + timedelta(days=1) if day.weekday() == 6 else day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)
