"""ERCOT price readers: CPT hour-ending to UTC, DST days, formats, and bad-file messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from datasets.ercot import PriceTable, read_ercot_prices
from datasets.errors import DataFileError
from tests.datasets.conftest import REAL_DIR

WriteCsv = Callable[[str, list[str]], Path]
DAM_HEADER = "delivery_date,hour_ending,repeated_hour_flag,HB_NORTH,HB_WEST"
CPT = ZoneInfo("America/Chicago")


def dam_rows(day: str, hours: list[tuple[int, str]], price: float = 20.0) -> list[str]:
    """Rows of one delivery day (MM/DD/YYYY) for the given (hour ending, flag) pairs."""
    return [
        f"{day},{he:02d}:00,{flag},{price + i},{price + i + 1}"
        for i, (he, flag) in enumerate(hours)
    ]


def normal_day(day: str) -> list[str]:
    """The 24 rows of an ordinary delivery day."""
    return dam_rows(day, [(he, "N") for he in range(1, 25)])


def local_hours_per_day(table: PriceTable) -> pd.Series:
    """Number of intervals on each local (CPT) calendar day."""
    local = table.frame.index.tz_convert("America/Chicago")
    return pd.Series(1, index=local).groupby(local.date).sum()


def assert_contiguous(table: PriceTable) -> None:
    """Every interval starts where the previous one ends."""
    steps_s = np.diff(table.frame.index.as_unit("s").asi8)
    assert np.all(steps_s == table.interval_s)


def test_spring_forward_day_has_23_contiguous_hours(write_csv: WriteCsv) -> None:
    """2021-03-14 has no HE03; the 23 rows still form a gap-free hourly UTC series."""
    spring = dam_rows("03/14/2021", [(he, "N") for he in range(1, 25) if he != 3])
    path = write_csv(
        "dam.csv", [DAM_HEADER, *normal_day("03/13/2021"), *spring, *normal_day("03/15/2021")]
    )
    table = read_ercot_prices(path)
    counts = local_hours_per_day(table)
    assert counts[datetime(2021, 3, 14).date()] == 23
    assert counts[datetime(2021, 3, 13).date()] == 24
    assert_contiguous(table)
    assert table.kind == "dam" and table.interval_s == 3600


def test_fall_back_day_has_25_hours_and_flag_y_is_the_cst_hour(write_csv: WriteCsv) -> None:
    """2021-11-07 repeats HE02: the N row starts 01:00 CDT (06:00 UTC), the Y row 01:00 CST."""
    hours = [(1, "N"), (2, "N"), (2, "Y")] + [(he, "N") for he in range(3, 25)]
    path = write_csv(
        "dam.csv", [DAM_HEADER, *normal_day("11/06/2021"), *dam_rows("11/07/2021", hours)]
    )
    table = read_ercot_prices(path)
    assert local_hours_per_day(table)[datetime(2021, 11, 7).date()] == 25
    assert_contiguous(table)
    north = table.frame["HB_NORTH"]
    assert north[pd.Timestamp("2021-11-07 06:00", tz="UTC")] == 21.0  # HE02 N, row 2 of day
    assert north[pd.Timestamp("2021-11-07 07:00", tz="UTC")] == 22.0  # HE02 Y


@pytest.mark.parametrize(
    ("day", "expected_utc"),
    [
        ("01/15/2022", datetime(2022, 1, 15, 6, tzinfo=UTC)),
        ("07/15/2022", datetime(2022, 7, 15, 5, tzinfo=UTC)),
    ],
)
def test_he01_starts_at_local_midnight_in_utc(
    write_csv: WriteCsv, day: str, expected_utc: datetime
) -> None:
    """HE01 covers 00:00-01:00 CPT: 06:00 UTC on a CST day, 05:00 UTC on a CDT day."""
    table = read_ercot_prices(write_csv("dam.csv", [DAM_HEADER, *normal_day(day)]))
    assert table.frame.index[0] == pd.Timestamp(expected_utc)
    assert table.frame.index[-1] == pd.Timestamp(expected_utc) + pd.Timedelta(hours=23)
    assert table.covered_end == pd.Timestamp(expected_utc) + pd.Timedelta(days=1)


@pytest.mark.parametrize("year", [2007, 2021, 2024, 2036])
def test_full_year_round_trips_through_hour_ending(write_csv: WriteCsv, year: int) -> None:
    """A year written in CPT hour-ending form (by zoneinfo) reads back as its UTC hours."""
    first = datetime(year, 1, 1, tzinfo=CPT).astimezone(UTC)
    last = datetime(year + 1, 1, 1, tzinfo=CPT).astimezone(UTC)
    hours = int((last - first) / timedelta(hours=1))
    lines = [DAM_HEADER]
    for k in range(hours):
        local = (first + timedelta(hours=k)).astimezone(CPT)
        flag = "Y" if local.fold else "N"
        lines.append(f"{local:%m/%d/%Y},{local.hour + 1:02d}:00,{flag},{k},{-k}")
    table = read_ercot_prices(write_csv("year.csv", lines))
    expected = pd.date_range(first, periods=hours, freq="h")
    assert table.frame.index.equals(expected)
    assert np.array_equal(table.frame["HB_NORTH"].to_numpy(), np.arange(hours, dtype=float))
    assert sorted(set(local_hours_per_day(table))) == [23, 24, 25]


def test_ercot_header_spellings_are_accepted(write_csv: WriteCsv) -> None:
    """ERCOT's own column names ('Delivery Date', 'Hour Ending', 'DSTFlag') read the same."""
    lines = ["Delivery Date,Hour Ending,DSTFlag,HB_WEST", "01/15/2022,01:00,N,30.5"]
    table = read_ercot_prices(write_csv("dam.csv", lines))
    assert table.columns == ["HB_WEST"]
    assert table.frame["HB_WEST"].iloc[0] == 30.5


def test_ancillary_file_reads_empty_ecrs_as_missing(write_csv: WriteCsv) -> None:
    """An ancillary file is detected from its columns; an empty ECRS cell is NaN, not an error."""
    lines = [
        "delivery_date,hour_ending,repeated_hour_flag,REGDN,REGUP,RRS,NSPIN,ECRS",
        "06/09/2023,24:00,N,3.5,1.5,1.5,1.5,",
        "06/10/2023,01:00,N,4.0,2.05,2.05,0.25,10.0",
    ]
    table = read_ercot_prices(write_csv("as.csv", lines))
    assert table.kind == "ancillary" and table.unit == "USD/MW-h"
    assert np.isnan(table.frame["ECRS"].iloc[0])
    assert table.frame["ECRS"].iloc[1] == 10.0
    assert table.frame["REGUP"].iloc[0] == 1.5


def test_rtm_fall_back_repeats_read_first_cdt_then_cst(write_csv: WriteCsv) -> None:
    """Repeated local 15-min starts on the fall-back day: first occurrence CDT, second CST."""
    local = [
        "00:45",
        "01:00",
        "01:15",
        "01:30",
        "01:45",
        "01:00",
        "01:15",
        "01:30",
        "01:45",
        "02:00",
    ]
    lines = ["interval_start_cpt,HB_WEST"] + [f"2021-11-07 {t}:00,{i}" for i, t in enumerate(local)]
    table = read_ercot_prices(write_csv("rtm.csv", lines))
    assert table.kind == "rtm" and table.interval_s == 900
    assert_contiguous(table)
    assert table.frame.index[0] == pd.Timestamp("2021-11-07 05:45", tz="UTC")
    assert table.frame["HB_WEST"].iloc[5] == 5.0  # second 01:00 = 07:00 UTC
    assert table.frame.index[5] == pd.Timestamp("2021-11-07 07:00", tz="UTC")


def test_rtm_interval_start_is_local_cpt(write_csv: WriteCsv) -> None:
    """A January 00:00 CPT interval start is 06:00 UTC."""
    lines = [
        "interval_start_cpt,HB_NORTH",
        "2022-01-01 00:00:00,53.94",
        "2022-01-01 00:15:00,125.73",
    ]
    table = read_ercot_prices(write_csv("rtm.csv", lines))
    assert table.frame.index[0] == pd.Timestamp("2022-01-01 06:00", tz="UTC")
    assert table.covered_end == pd.Timestamp("2022-01-01 06:30", tz="UTC")


GOOD_ROW = "01/15/2022,01:00,N,20,21"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["time,price", "2022-01-01,3"], ["line 1", "unknown format"]),
        (
            ["delivery_date,hour_ending,HB_WEST", "01/15/2022,01:00,3"],
            ["column 'repeated_hour_flag'"],
        ),
        (
            [DAM_HEADER, GOOD_ROW, "13/45/2022,02:00,N,20,21"],
            ["line 3", "'delivery_date'", "13/45/2022"],
        ),
        ([DAM_HEADER, "01/15/2022,01:00,N,20,abc"], ["line 2", "'HB_WEST'", "abc"]),
        ([DAM_HEADER, GOOD_ROW, "01/15/2022,02:00,N,,21"], ["line 3", "'HB_NORTH'", "empty value"]),
        ([DAM_HEADER, "01/15/2022,25:00,N,20,21"], ["line 2", "'hour_ending'", "25:00"]),
        ([DAM_HEADER, "01/15/2022,01:00,X,20,21"], ["line 2", "'repeated_hour_flag'"]),
        ([DAM_HEADER, "03/14/2021,03:00,N,20,21"], ["line 2", "'hour_ending'", "does not exist"]),
        ([DAM_HEADER, GOOD_ROW, "01/15/2022,02:00,Y,20,21"], ["line 3", "'repeated_hour_flag'"]),
        ([DAM_HEADER, GOOD_ROW, GOOD_ROW], ["line 3", "duplicate interval", "line 2"]),
        ([DAM_HEADER, "01/15/2022,01:00,N,20,21,22"], ["malformed CSV"]),
        (
            ["delivery_date,hour_ending,repeated_hour_flag", "01/15/2022,01:00,N"],
            ["no price columns"],
        ),
        ([DAM_HEADER], ["no data rows"]),
        (["interval_start_cpt,HB_WEST", "2022-01-01 00:07:00,3"], ["line 2", "15-minute grid"]),
        (["interval_start_cpt,HB_WEST", "2021-03-14 02:15:00,3"], ["line 2", "does not exist"]),
        (["interval_start_cpt,HB_WEST", "2022/01/01 00:00,3"], ["line 2", "'interval_start_cpt'"]),
        (
            ["interval_start_cpt,HB_WEST", "2022-01-01 00:00:00,3", "", "2022-01-01 00:00:00,4"],
            ["line 4", "duplicate interval"],
        ),
        (["HB_WEST,HB_WEST", "1,2"], ["column 'HB_WEST'", "twice"]),
    ],
)
def test_bad_files_name_line_and_column(
    write_csv: WriteCsv, lines: list[str], expected: list[str]
) -> None:
    """Each kind of bad input raises DataFileError whose message names file, line and column."""
    path = write_csv("bad.csv", lines)
    with pytest.raises(DataFileError) as caught:
        read_ercot_prices(path)
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_file_is_a_data_file_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as such, not as a parser traceback."""
    with pytest.raises(DataFileError, match="file not found"):
        read_ercot_prices(tmp_path / "nope.csv")


@pytest.fixture(scope="module")
def bundled_dam() -> PriceTable:
    """The bundled day-ahead hub/load-zone file, read once for this module."""
    return read_ercot_prices(REAL_DIR / "ercot_dam_spp_hub_lz_hourly_2021_2023.csv")


def test_bundled_dam_winter_storm_uri(bundled_dam: PriceTable) -> None:
    """HB_NORTH day-ahead over Feb 15-19 2021 (CPT): mean ~7,156 USD/MWh, max 8,998.99."""
    start = pd.Timestamp("2021-02-15", tz="America/Chicago")
    end = pd.Timestamp("2021-02-20", tz="America/Chicago")
    index = bundled_dam.frame.index
    uri = bundled_dam.frame.loc[(index >= start) & (index < end), "HB_NORTH"]
    assert len(uri) == 5 * 24
    assert uri.mean() == pytest.approx(7156, abs=1)
    assert uri.max() == pytest.approx(8998.99)


def test_bundled_dam_is_complete_and_hourly(bundled_dam: PriceTable) -> None:
    """Three full years of gap-free hours, 15 points, DST days of 23 and 25 hours."""
    assert len(bundled_dam.frame) == 26280
    assert len(bundled_dam.columns) == 15
    assert_contiguous(bundled_dam)
    counts = local_hours_per_day(bundled_dam)
    assert (counts == 23).sum() == 3 and (counts == 25).sum() == 3
    assert not bundled_dam.frame.isna().any().any()


def test_bundled_ancillary_ecrs_starts_2023_06_10() -> None:
    """ECRS has no price before its launch (NaN) and a price for every hour after."""
    table = read_ercot_prices(REAL_DIR / "ercot_dam_as_mcpc_hourly_2022_2023.csv")
    launch = pd.Timestamp("2023-06-10", tz="America/Chicago")
    ecrs = table.frame["ECRS"]
    assert ecrs[ecrs.index < launch].isna().all()
    assert ecrs[ecrs.index >= launch].notna().all()
    assert table.frame.drop(columns="ECRS").notna().all().all()


def test_bundled_rtm_is_two_januaries_of_15_minutes() -> None:
    """The real-time file: 2 x 31 days x 96 intervals; first HB_NORTH value as ERCOT reports."""
    table = read_ercot_prices(REAL_DIR / "ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv")
    assert table.kind == "rtm" and len(table.frame) == 2 * 31 * 96
    assert table.frame.index[0] == pd.Timestamp("2022-01-01 06:00", tz="UTC")
    assert table.frame["HB_NORTH"].iloc[0] == pytest.approx(53.94)
