"""Engine-facing signal sources: dispatch on kind, historical replay, range and file errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from datasets.errors import DataFileError
from datasets.signals import ConstantSignal, SeriesSignal, SignalRangeError
from datasets.sources import (
    ancillary_signals,
    btc_price_signal,
    fee_signal,
    gpu_rental_signal,
    load_price_table,
    network_hashrate_signal,
    price_signals,
)
from datasets.synthetic import synthetic_prices
from twin.scenario import (
    ConstantValue,
    HistoricalSeries,
    SyntheticGpuRental,
    SyntheticPrices,
    validate_scenario,
)

WriteCsv = Callable[[str, list[str]], Path]
CST = timezone(timedelta(hours=-6))
CPT = ZoneInfo("America/Chicago")
DAM_FILE = "datasets/real/ercot_dam_spp_hub_lz_hourly_2021_2023.csv"
AS_FILE = "datasets/real/ercot_dam_as_mcpc_hourly_2022_2023.csv"
RTM_FILE = "datasets/real/ercot_rtm_spp_hub_lz_15min_january_2022_2023.csv"


def rng() -> np.random.Generator:
    """A fresh generator (historical and constant sources must not need it)."""
    return np.random.default_rng(0)


def hourly_file(write_csv: WriteCsv, days: int = 2) -> Path:
    """A day-ahead file from 01/15/2022 whose HB_WEST price is the hour count 0, 1, 2, ..."""
    lines = ["delivery_date,hour_ending,repeated_hour_flag,HB_WEST"]
    for day in range(days):
        lines += [f"01/{15 + day}/2022,{he:02d}:00,N,{day * 24 + he - 1}" for he in range(1, 25)]
    return write_csv("dam.csv", lines)


def test_constant_sources_give_constant_signals() -> None:
    """A constant source gives ConstantSignals with names and units, for every signal."""
    source = ConstantValue(value=42.0)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    prices = price_signals(source, ["HB_WEST", "LZ_WEST"], start, 10, 300, rng())
    assert set(prices) == {"HB_WEST", "LZ_WEST"}
    assert isinstance(prices["HB_WEST"], ConstantSignal)
    assert prices["LZ_WEST"].name == "price.LZ_WEST" and prices["LZ_WEST"].unit == "USD/MWh"
    assert prices["HB_WEST"].at(1e9) == 42.0
    ancillary = ancillary_signals(source, start, 10, 300, rng())
    assert set(ancillary) == {"REGUP", "REGDN", "RRS", "ECRS", "NSPIN"}
    assert btc_price_signal(source, start, 10, 300, rng()).unit == "USD"
    assert network_hashrate_signal(source, start, 10, 300, rng()).unit == "EH/s"
    assert fee_signal(source, start, 10, 300, rng()).unit == "BTC/block"
    assert gpu_rental_signal(source, start, 10, 300, rng()).at(5.0) == 42.0


def test_synthetic_source_is_the_seeded_generator() -> None:
    """A synthetic source gives exactly what the generator gives for the same seed."""
    cfg = SyntheticPrices()
    start = datetime(2024, 6, 1, tzinfo=UTC)
    via_source = price_signals(cfg, ["HB_WEST"], start, 500, 300, np.random.default_rng(5))
    direct = synthetic_prices(cfg, ["HB_WEST"], start, 500, 300, np.random.default_rng(5))
    assert np.array_equal(via_source["HB_WEST"].over(0, 500 * 300, 300), direct["HB_WEST"].values)
    rental = gpu_rental_signal(SyntheticGpuRental(), start, 50, 300, np.random.default_rng(1))
    assert isinstance(rental, SeriesSignal) and rental.name == "gpu_rental"


def test_hourly_prices_hold_over_300_s_steps(write_csv: WriteCsv) -> None:
    """Resampling 3600 s -> 300 s: each hour's price holds for its twelve 5-minute steps."""
    source = HistoricalSeries(file=str(hourly_file(write_csv)))
    start = datetime(2022, 1, 15, tzinfo=CST)
    signal = price_signals(source, ["HB_WEST"], start, 48 * 12, 300, rng())["HB_WEST"]
    values = signal.over(0, 48 * 3600, 300)
    assert np.array_equal(values, np.repeat(np.arange(48.0), 12))
    assert signal.at(3 * 3600 + 1799) == 3.0


def test_unaligned_start_still_holds_the_covering_hour(write_csv: WriteCsv) -> None:
    """A run starting at 00:30 local reads the 00:00-01:00 price for its first six steps."""
    source = HistoricalSeries(file=str(hourly_file(write_csv)))
    start = datetime(2022, 1, 15, 0, 30, tzinfo=CST)
    values = price_signals(source, ["HB_WEST"], start, 24, 300, rng())["HB_WEST"].over(0, 7200, 300)
    assert np.array_equal(values, np.repeat([0.0, 1.0, 2.0], [6, 12, 6]))


def test_15_min_prices_average_over_hourly_steps(write_csv: WriteCsv) -> None:
    """Resampling 900 s -> 3600 s gives the mean of the four quarter-hours of each hour."""
    lines = ["interval_start_cpt,HB_WEST"]
    lines += [f"2022-01-15 {q // 4:02d}:{q % 4 * 15:02d}:00,{q}" for q in range(8)]
    source = HistoricalSeries(file=str(write_csv("rtm.csv", lines)))
    start = datetime(2022, 1, 15, tzinfo=CST)
    values = price_signals(source, ["HB_WEST"], start, 2, 3600, rng())["HB_WEST"].over(
        0, 7200, 3600
    )
    assert np.allclose(values, [1.5, 5.5])


def test_window_outside_the_file_names_both_ranges(write_csv: WriteCsv) -> None:
    """A run past the file's end raises SignalRangeError with covered and requested dates."""
    source = HistoricalSeries(file=str(hourly_file(write_csv)))
    start = datetime(2022, 1, 16, 12, tzinfo=CST)
    with pytest.raises(SignalRangeError) as caught:
        price_signals(source, ["HB_WEST"], start, 24 * 12, 300, rng())
    message = str(caught.value)
    assert "2022-01-15 06:00 to 2022-01-17 06:00" in message  # covered, UTC
    assert "2022-01-16 18:00 to 2022-01-17 18:00" in message  # requested, UTC


def test_gap_in_file_is_a_range_error() -> None:
    """The real-time file holds two Januaries; a February 2022 window falls in its gap."""
    source = HistoricalSeries(file=RTM_FILE)
    with pytest.raises(SignalRangeError, match="no data from 2022-02-01 06:00"):
        price_signals(source, ["HB_NORTH"], datetime(2022, 1, 31, tzinfo=CST), 2 * 288, 300, rng())


def test_shift_days_replays_another_year(write_csv: WriteCsv) -> None:
    """shift_days = 365 shows at scenario time T the file's value at T - 365 days."""
    source = HistoricalSeries(file=str(hourly_file(write_csv)), shift_days=365)
    start = datetime(2023, 1, 15, tzinfo=CST)
    values = price_signals(source, ["HB_WEST"], start, 12, 300, rng())["HB_WEST"].over(0, 3600, 300)
    assert np.array_equal(values, np.zeros(12))


def test_missing_settlement_point_lists_the_available_ones(write_csv: WriteCsv) -> None:
    """Asking a file for a point it lacks names the point and the ones it has."""
    source = HistoricalSeries(file=str(hourly_file(write_csv)))
    with pytest.raises(DataFileError, match=r"no settlement point LZ_WEST; the file has HB_WEST"):
        price_signals(
            source, ["HB_WEST", "LZ_WEST"], datetime(2022, 1, 15, tzinfo=CST), 12, 300, rng()
        )


def test_wrong_kind_of_file_is_rejected() -> None:
    """Ancillary files cannot feed energy prices, nor energy files ancillary prices."""
    start = datetime(2022, 6, 1, tzinfo=CST)
    with pytest.raises(DataFileError, match="ancillary-service price file"):
        price_signals(HistoricalSeries(file=AS_FILE), ["HB_WEST"], start, 12, 300, rng())
    with pytest.raises(DataFileError, match="energy price file"):
        ancillary_signals(HistoricalSeries(file=DAM_FILE), start, 12, 300, rng())
    with pytest.raises(DataFileError, match="no fees column"):
        fee_signal(
            HistoricalSeries(file="datasets/real/btc_usd_daily_ohlc_2011_2025.csv"),
            start,
            12,
            300,
            rng(),
        )


def test_winter_storm_uri_replays_from_the_bundled_file() -> None:
    """Feb 15-19 2021 HB_NORTH at 300 s: mean ~7,156 USD/MWh, max 8,998.99, like the file."""
    source = HistoricalSeries(file=DAM_FILE)
    start = datetime(2021, 2, 15, tzinfo=CST)
    n_steps = 5 * 288
    signals = price_signals(source, ["HB_NORTH", "HB_WEST"], start, n_steps, 300, rng())
    north = signals["HB_NORTH"].over(0, n_steps * 300, 300)
    assert north.mean() == pytest.approx(7156, abs=1)
    assert north.max() == pytest.approx(8998.99)
    assert signals["HB_WEST"].name == "price.HB_WEST"


def test_scenario_resolved_file_feeds_the_replay() -> None:
    """A scenario naming the bundled file by its bare name replays it after validation."""
    scenario = validate_scenario(
        {
            "name": "uri",
            "start": "2021-02-15T00:00:00-06:00",
            "duration_days": 1,
            "facilities": [{"id": "a", "settlement_point": "HB_NORTH", "power_cap_mw": 10}],
            "grid": {"prices": {"kind": "historical", "file": Path(DAM_FILE).name}},
        }
    )
    prices = price_signals(
        scenario.grid.prices,
        ["HB_NORTH"],
        scenario.start,
        scenario.interval_count,
        scenario.dispatch_interval_s,
        rng(),
    )
    assert prices["HB_NORTH"].at(0) > 1000  # Uri


def test_ancillary_replay_starts_ecrs_at_its_launch() -> None:
    """Before 2023-06-10 ECRS is absent; across the launch its signal starts at the launch."""
    source = HistoricalSeries(file=AS_FILE)
    before = ancillary_signals(source, datetime(2023, 5, 1, tzinfo=CST), 288, 300, rng())
    assert set(before) == {"REGUP", "REGDN", "RRS", "NSPIN"}
    across = ancillary_signals(source, datetime(2023, 6, 9, tzinfo=CPT), 2 * 288, 300, rng())
    ecrs = across["ECRS"]
    assert ecrs.start_s == 86400  # 2023-06-10 00:00 CDT
    assert np.all(ecrs.over(86400, 2 * 86400, 300) > 0)
    with pytest.raises(SignalRangeError):
        ecrs.at(0)
    assert across["REGUP"].unit == "USD/MW-h" and across["REGUP"].name == "ancillary.REGUP"


def test_daily_btc_values_interpolate_linearly(write_csv: WriteCsv) -> None:
    """Between daily closes the price is linear in time; the last day's value holds that day."""
    path = write_csv(
        "btc.csv", ["date,close_usd", "2024-01-01,100", "2024-01-02,200", "2024-01-03,400"]
    )
    source = HistoricalSeries(file=str(path))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    signal = btc_price_signal(source, start, 72, 3600, rng())
    assert signal.name == "btc_price" and signal.unit == "USD"
    assert signal.at(12 * 3600) == pytest.approx(150)
    assert signal.at(36 * 3600) == pytest.approx(300)
    assert signal.at(60 * 3600) == pytest.approx(400)
    with pytest.raises(SignalRangeError, match="2024-01-04 00:00"):
        btc_price_signal(source, start, 73, 3600, rng())


def test_hashrate_replay_is_in_ehs() -> None:
    """mempool.space H/s history replays as EH/s: early 2024 between 500 and 650."""
    source = HistoricalSeries(file="datasets/real/btc_network_hashrate_daily_mempool_2009_2025.csv")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    signal = network_hashrate_signal(source, start, 90 * 24, 3600, rng())
    assert signal.unit == "EH/s"
    assert 500 < signal.over(0, 90 * 86400, 3600).mean() < 650


def test_fee_replay_is_btc_per_block() -> None:
    """Halving day 2024-04-20: 1,257.7 BTC of fees in a day is ~8.7 BTC per block."""
    source = HistoricalSeries(file="datasets/real/btc_blockchaincom_daily_2023-04_2024-04.csv")
    signal = fee_signal(source, datetime(2024, 4, 20, tzinfo=UTC), 1, 300, rng())
    assert signal.at(0) == pytest.approx(1257.7 / 144, rel=0.01)


def test_parsed_files_are_cached_until_modified(write_csv: WriteCsv) -> None:
    """The same file is parsed once; a modified file is parsed again."""
    path = hourly_file(write_csv)
    first = load_price_table(path)
    assert load_price_table(path) is first
    path.write_text(path.read_text().replace(",N,0\n", ",N,99\n"))
    os.utime(path, ns=(1, 1))
    reread = load_price_table(path)
    assert reread is not first and reread.frame["HB_WEST"].iloc[0] == 99.0


def test_missing_file_is_reported() -> None:
    """A historical source whose file is gone raises DataFileError naming the file."""
    with pytest.raises(DataFileError, match=r"nope\.csv: file not found"):
        price_signals(
            HistoricalSeries(file="nope.csv"),
            ["A"],
            datetime(2024, 1, 1, tzinfo=UTC),
            1,
            300,
            rng(),
        )
