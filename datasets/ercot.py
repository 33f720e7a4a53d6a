"""Readers for ERCOT price files: day-ahead hourly SPP, real-time 15-min SPP, ancillary MCPC.

Three wide CSV formats are accepted (the ones bundled under ``datasets/real``; users may
bring their own file of the same shape, for other dates or settlement points):

* **day-ahead hourly** (``kind='dam'``): ``delivery_date`` (MM/DD/YYYY), ``hour_ending``
  (``HH:00``, 01..24), ``repeated_hour_flag`` (N/Y), then one column per settlement point
  with the price [USD/MWh];
* **ancillary hourly** (``kind='ancillary'``): the same three time columns, then any of
  ``REGDN, REGUP, RRS, NSPIN, ECRS`` with the day-ahead capacity clearing price [USD/MW-h];
  an empty cell (ECRS before its launch on 2023-06-10) is read as NaN, not an error;
* **real-time 15-min** (``kind='rtm'``): ``interval_start_cpt`` (``YYYY-MM-DD HH:MM:SS``,
  the start of the interval in local time), then one column per settlement point [USD/MWh].

Time convention. ERCOT times are Central Prevailing Time (America/Chicago). Hour ending
``HE`` on a delivery date covers local ``[HE-1, HE)``, so HE01 starts at 00:00 local: 06:00
UTC on a CST day, 05:00 UTC on a CDT day. The spring-forward day has 23 hours (no HE03); the
fall-back day has 25, the repeated hour ending 02:00 appearing twice, ``repeated_hour_flag``
``N`` for the first (CDT) and ``Y`` for the second (CST) occurrence. In the 15-min file a
repeated local start time is read in order: the first occurrence is CDT, the second CST.
Every reader returns a :class:`PriceTable` indexed by the tz-aware UTC interval **start**.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from datasets.csvfile import (
    HEADER_LINE,
    RawTable,
    first_true,
    parse_numbers,
    read_raw_csv,
)
from datasets.errors import DataFileError

PriceKind = Literal["dam", "rtm", "ancillary"]
CPT_ZONE = "America/Chicago"
ANCILLARY_SERVICES = ("REGUP", "REGDN", "RRS", "ECRS", "NSPIN")
HOURLY_INTERVAL_S = 3600
RTM_INTERVAL_S = 900

_DATE = "delivery_date"
_HOUR = "hour_ending"
_FLAG = "repeated_hour_flag"
_START = "interval_start_cpt"
# Accepted spellings of the time columns, compared lower-case without spaces or underscores
# (ERCOT's own reports write "Delivery Date", "Hour Ending", "Repeated Hour Flag"/"DSTFlag").
_TIME_ALIASES = {
    "deliverydate": _DATE,
    "hourending": _HOUR,
    "repeatedhourflag": _FLAG,
    "dstflag": _FLAG,
    "intervalstartcpt": _START,
}
_FORMATS_HELP = (
    "expected an ERCOT day-ahead/ancillary hourly file (delivery_date, hour_ending, "
    "repeated_hour_flag, then price columns) or a real-time 15-min file "
    "(interval_start_cpt, then settlement point columns)"
)


@dataclass(frozen=True)
class PriceTable:
    """Prices by interval from one ERCOT file.

    Attributes:
        frame: float columns (settlement points [USD/MWh], or ancillary services
            [USD/MW-h]) indexed by ``interval_start_utc`` (tz-aware UTC, ascending, unique).
            Treat it as read-only: readers may share one table between callers.
        interval_s: length of each interval [s]: 3600 (hourly) or 900 (15-min).
        kind: ``'dam'``, ``'rtm'`` or ``'ancillary'``.
        source: the file read.
    """

    frame: pd.DataFrame
    interval_s: int
    kind: PriceKind
    source: Path

    @property
    def columns(self) -> list[str]:
        """Settlement points (or ancillary services) in file order."""
        return [str(c) for c in self.frame.columns]

    @property
    def unit(self) -> str:
        """Unit of the values: ``USD/MWh`` for energy, ``USD/MW-h`` for ancillary capacity."""
        return "USD/MW-h" if self.kind == "ancillary" else "USD/MWh"

    @property
    def covered_start(self) -> pd.Timestamp:
        """Start of the first interval (UTC)."""
        return pd.Timestamp(self.frame.index[0])

    @property
    def covered_end(self) -> pd.Timestamp:
        """End of the last interval (UTC), exclusive."""
        return pd.Timestamp(self.frame.index[-1]) + pd.Timedelta(seconds=self.interval_s)


def detect_ercot_kind(header: list[str]) -> PriceKind | None:
    """The ERCOT format a header belongs to, or None when it is none of them."""
    canonical = [_canonical_name(name) for name in header]
    if _START in canonical:
        return "rtm"
    if _DATE in canonical or _HOUR in canonical:
        value_names = {name.upper() for name in canonical if name not in (_DATE, _HOUR, _FLAG)}
        if value_names and value_names <= set(ANCILLARY_SERVICES):
            return "ancillary"
        return "dam"
    return None


def read_ercot_prices(path: str | Path) -> PriceTable:
    """Read any of the three ERCOT formats (detected from the header) into a PriceTable.

    Raises:
        DataFileError: unknown format, a missing column, an unparseable date, hour or
            number, a local time that does not exist or is repeated wrongly, or two rows
            for the same interval; the message names the file, line and column.
    """
    table = read_raw_csv(path)
    table = _rename_time_columns(table)
    kind = detect_ercot_kind(table.columns)
    if kind is None:
        raise DataFileError(
            table.path,
            f"unknown format: {_FORMATS_HELP}; found {', '.join(table.columns)}",
            line=HEADER_LINE,
        )
    if kind == "rtm":
        starts = _rtm_interval_starts(table)
        value_columns = [c for c in table.columns if c != _START]
        interval_s = RTM_INTERVAL_S
    else:
        starts = _hour_ending_starts(table)
        value_columns = [c for c in table.columns if c not in (_DATE, _HOUR, _FLAG)]
        interval_s = HOURLY_INTERVAL_S
    if not value_columns:
        raise DataFileError(table.path, f"no price columns: {_FORMATS_HELP}", line=HEADER_LINE)
    _reject_duplicates(table, starts)
    allow_empty = kind == "ancillary"
    data = {}
    for column in value_columns:
        name = column.upper() if kind == "ancillary" else column
        data[name] = parse_numbers(table, column, allow_empty=allow_empty)
    frame = pd.DataFrame(data, index=starts.rename("interval_start_utc"))
    frame = frame.sort_index()
    return PriceTable(frame=frame, interval_s=interval_s, kind=kind, source=table.path)


def _canonical_name(name: str) -> str:
    key = name.lower().replace(" ", "").replace("_", "")
    return _TIME_ALIASES.get(key, name)


def _rename_time_columns(table: RawTable) -> RawTable:
    renamed = [_canonical_name(name) for name in table.columns]
    if renamed == table.columns:
        return table
    if len(set(renamed)) != len(renamed):
        clash = next(name for name in renamed if renamed.count(name) > 1)
        raise DataFileError(table.path, "time column given twice", HEADER_LINE, clash)
    cells = table.cells.copy()
    cells.columns = pd.Index(renamed)
    return RawTable(table.path, cells, table.lines)


def _localize_cpt(
    local: pd.DatetimeIndex, first_occurrence: np.ndarray
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Localize naive CPT times to UTC.

    Returns the UTC times, a mask of times that do not exist locally (spring-forward gap)
    and a mask of times that occur twice (fall-back hour). An ambiguous time becomes its
    CDT reading where ``first_occurrence`` is True, else its CST reading.
    """
    n = len(local)
    as_dst = local.tz_localize(CPT_ZONE, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    as_std = local.tz_localize(CPT_ZONE, ambiguous=np.zeros(n, dtype=bool), nonexistent="NaT")
    nonexistent = np.asarray(as_dst.isna())
    ambiguous = ~nonexistent & np.asarray(as_dst != as_std)
    chosen = as_dst.where(first_occurrence | ~ambiguous, as_std)
    return chosen.tz_convert("UTC"), nonexistent, ambiguous


def _hour_ending_starts(table: RawTable) -> pd.DatetimeIndex:
    for column in (_DATE, _HOUR, _FLAG):
        if column not in table.columns:
            raise DataFileError(
                table.path,
                f"missing column {column}: {_FORMATS_HELP}; found {', '.join(table.columns)}",
                HEADER_LINE,
                column,
            )
    dates_text = table.cells[_DATE]
    dates = pd.to_datetime(dates_text, format="%m/%d/%Y", errors="coerce")
    bad = np.asarray(dates.isna())
    if bad.any():
        row = first_true(bad)
        raise table.error(f"not a date MM/DD/YYYY: {dates_text.iloc[row]!r}", row, _DATE)

    hour_text = table.cells[_HOUR]
    hour = pd.to_numeric(hour_text.str.extract(r"^(\d{1,2})(?::00)?$")[0], errors="coerce")
    hour_values = hour.to_numpy(dtype=float)
    bad = ~np.isfinite(hour_values) | (hour_values < 1) | (hour_values > 24)
    if bad.any():
        row = first_true(bad)
        raise table.error(f"not an hour ending 01:00..24:00: {hour_text.iloc[row]!r}", row, _HOUR)

    flag_text = table.cells[_FLAG].str.upper()
    bad = ~flag_text.isin(["N", "Y"]).to_numpy()
    if bad.any():
        row = first_true(bad)
        raise table.error(f"must be N or Y, got {table.cells[_FLAG].iloc[row]!r}", row, _FLAG)
    repeated = (flag_text == "Y").to_numpy()

    local = pd.DatetimeIndex(dates) + pd.to_timedelta(hour_values - 1, unit="h")
    utc, nonexistent, ambiguous = _localize_cpt(local, first_occurrence=~repeated)
    if nonexistent.any():
        row = first_true(nonexistent)
        raise table.error(
            f"hour ending {hour_text.iloc[row]} on {dates_text.iloc[row]} does not exist in "
            "Central Prevailing Time (the spring-forward day has 23 hours, no 03:00)",
            row,
            _HOUR,
        )
    wrong_flag = repeated & ~ambiguous
    if wrong_flag.any():
        row = first_true(wrong_flag)
        raise table.error(
            f"flag Y but hour ending {hour_text.iloc[row]} on {dates_text.iloc[row]} is not "
            "the repeated fall-back hour",
            row,
            _FLAG,
        )
    return utc


def _rtm_interval_starts(table: RawTable) -> pd.DatetimeIndex:
    text = table.cells[_START]
    local = pd.DatetimeIndex(pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce"))
    bad = np.asarray(local.isna())
    if bad.any():
        row = first_true(bad)
        raise table.error(f"not a time YYYY-MM-DD HH:MM:SS: {text.iloc[row]!r}", row, _START)
    off_grid = np.asarray((local.minute % 15 != 0) | (local.second != 0))
    if off_grid.any():
        row = first_true(off_grid)
        raise table.error(f"not on the 15-minute grid: {text.iloc[row]!r}", row, _START)
    occurrence = pd.Series(np.arange(len(local))).groupby(local).cumcount().to_numpy()
    utc, nonexistent, _ = _localize_cpt(local, first_occurrence=occurrence == 0)
    if nonexistent.any():
        row = first_true(nonexistent)
        raise table.error(
            f"{text.iloc[row]} does not exist in Central Prevailing Time (spring forward)",
            row,
            _START,
        )
    return utc


def _reject_duplicates(table: RawTable, starts: pd.DatetimeIndex) -> None:
    duplicated = np.asarray(starts.duplicated(keep="first"))
    if duplicated.any():
        row = first_true(duplicated)
        first = first_true(np.asarray(starts == starts[row]))
        raise table.error(
            f"duplicate interval {starts[row].isoformat()} (UTC start), "
            f"already given on line {int(table.lines[first])}",
            row,
            _DATE if _DATE in table.columns else _START,
        )
