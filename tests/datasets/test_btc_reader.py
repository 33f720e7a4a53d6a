"""BTC history readers: formats, unit conversions, and bad-file messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.btc import (
    BLOCKS_PER_DAY,
    btc_metrics,
    read_btc_price,
    read_btc_series,
    read_difficulty,
    read_fees_per_block,
    read_miners_revenue,
    read_network_hashrate,
)
from datasets.errors import DataFileError
from tests.datasets.conftest import REAL_DIR

WriteCsv = Callable[[str, list[str]], Path]


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("date,open,high,low,close", "2024-01-02,1,3,0.5,45000.5"),
        ("date,close_usd", "2024-01-02,45000.5"),
        (
            "date,ticker,price_open,price_close,price_low,price_high",
            "2024-01-02,BTC-USD,1,45000.5,0.5,3",
        ),
    ],
)
def test_price_formats_give_the_close_in_usd(write_csv: WriteCsv, header: str, row: str) -> None:
    """OHLC 'close', Yahoo 'close_usd' and Coin Metrics 'price_close' all read as the close."""
    series = read_btc_price(write_csv("price.csv", [header, row]))
    assert series.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert series.iloc[0] == 45000.5


def test_mempool_hashrate_is_converted_to_ehs() -> None:
    """mempool.space H/s becomes EH/s: early 2024 sits between 500 and 650 EH/s on average."""
    hashrate = read_network_hashrate(REAL_DIR / "btc_network_hashrate_daily_mempool_2009_2025.csv")
    early_2024 = hashrate[(hashrate.index >= "2024-01-01") & (hashrate.index < "2024-04-01")]
    assert 500 < early_2024.mean() < 650
    assert hashrate.index.tz is not None and hashrate.index.is_monotonic_increasing


def test_blockchaincom_and_mempool_hashrate_agree_in_ehs() -> None:
    """TH/s (blockchain.com) and H/s (mempool.space) files land on the same EH/s scale."""
    mempool = read_network_hashrate(REAL_DIR / "btc_network_hashrate_daily_mempool_2009_2025.csv")
    blockchain = read_network_hashrate(REAL_DIR / "btc_blockchaincom_daily_2023-04_2024-04.csv")
    ratio = (blockchain / mempool).dropna()
    assert len(ratio) > 300
    assert 0.95 < ratio.median() < 1.05


def test_three_day_hashrate_file_is_in_ehs() -> None:
    """The blockchain.com 3-day TH/s file reads ~100-250 EH/s around Winter Storm Uri."""
    hashrate = read_network_hashrate(
        REAL_DIR / "btc_blockchaincom_hash_rate_ths_3day_2009_2022.csv"
    )
    feb_2021 = hashrate[(hashrate.index >= "2021-02-01") & (hashrate.index < "2021-03-01")]
    assert 100 < feb_2021.mean() < 250


def test_difficulty_matches_hashrate_identity() -> None:
    """Difficulty x 2^32 / 600 s ~= network hashrate (within 20 % on monthly means)."""
    path = REAL_DIR / "btc_blockchaincom_daily_2023-04_2024-04.csv"
    difficulty = read_difficulty(path)
    implied_ehs = difficulty * 2**32 / 600 / 1e18
    measured = read_network_hashrate(path)
    monthly_ratio = (implied_ehs / measured).resample("MS").mean()
    assert np.all(np.abs(monthly_ratio - 1) < 0.2)


def test_mempool_difficulty_adjustments_are_read_at_block_time() -> None:
    """The adjustment file starts at the genesis block time with difficulty 1."""
    difficulty = read_difficulty(REAL_DIR / "btc_difficulty_adjustments_mempool_2009_2025.csv")
    assert difficulty.index[0] == pd.Timestamp("2009-01-03 18:15:05", tz="UTC")
    assert difficulty.iloc[0] == 1.0
    assert difficulty.iloc[-1] > 1e14


def test_fees_per_block_are_daily_fees_over_144(write_csv: WriteCsv) -> None:
    """transaction_fees_btc [BTC/day] / 144 blocks/day gives BTC per block; empty rows skip."""
    lines = [
        "date_utc,transaction_fees_btc,miners_revenue_usd",
        "2024-04-20,1257.7,107800000",
        "2024-04-21,,",
        "2024-04-22,72,30000000",
    ]
    path = write_csv("fees.csv", lines)
    fees = read_fees_per_block(path)
    assert len(fees) == 2
    assert fees.iloc[0] == pytest.approx(1257.7 / BLOCKS_PER_DAY)
    assert read_miners_revenue(path).iloc[1] == 30000000


def test_bundled_daily_file_offers_every_metric() -> None:
    """The blockchain.com daily file provides price, hashrate, difficulty, fees and revenue."""
    header = (REAL_DIR / "btc_blockchaincom_daily_2023-04_2024-04.csv").read_text().splitlines()[0]
    assert set(btc_metrics(header.split(","))) == {
        "price",
        "hashrate",
        "difficulty",
        "fees",
        "miners_revenue",
    }


def test_bundled_price_files_agree() -> None:
    """The OHLC and Yahoo closes agree within 1 % on their common days (median)."""
    ohlc = read_btc_price(REAL_DIR / "btc_usd_daily_ohlc_2011_2025.csv")
    yahoo = read_btc_price(REAL_DIR / "btc_usd_daily_close_yahoo_2023_2026.csv")
    relative = ((ohlc - yahoo) / yahoo).dropna().abs()
    assert len(relative) > 700
    assert relative.median() < 0.01


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["day,close", "2024-01-01,3"], ["line 1", "no time column"]),
        (["date,open", "2024-01-01,3"], ["line 1", "no price column", "close_usd"]),
        (["date,close", "2024-01-01,3", "2024-13-01,4"], ["line 3", "'date'", "2024-13-01"]),
        (["date,close", "2024-01-01,3", "2024-01-02,n/a"], ["line 3", "'close'", "n/a"]),
        (["date,close", "2024-01-01,3", "2024-01-01,4"], ["line 3", "appears twice"]),
        (["date,close", "2024-01-01,"], ["no values"]),
    ],
)
def test_bad_files_name_line_and_column(
    write_csv: WriteCsv, lines: list[str], expected: list[str]
) -> None:
    """Bad BTC files raise DataFileError naming the file, line and column."""
    path = write_csv("bad.csv", lines)
    with pytest.raises(DataFileError) as caught:
        read_btc_series(path, "price")
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message
