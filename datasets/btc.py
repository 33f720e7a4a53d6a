"""Readers for Bitcoin history files: price, network hashrate, difficulty, fees, miner revenue.

The format is detected from the header: one time column (``date``, ``date_utc``,
``timestamp`` or ``time_utc``; ISO dates or ``YYYY-MM-DD HH:MM:SS``, read as UTC) and one or
more known metric columns:

=======================  =============  =========================================  ===========
column                   metric         source format                              returned as
=======================  =============  =========================================  ===========
``close``                price          daily OHLC (``date, open, high, low, close``)  USD
``close_usd``            price          Yahoo daily close                          USD
``price_close``          price          Coin Metrics daily OHLC                    USD
``market_price_usd``     price          blockchain.com daily                       USD
``avg_hashrate_hs``      hashrate       mempool.space daily [H/s]                  EH/s
``hash_rate_ths``        hashrate       blockchain.com [TH/s]                      EH/s
``difficulty``           difficulty     mempool.space adjustments, blockchain.com  - (ratio)
``transaction_fees_btc`` fees           blockchain.com daily [BTC/day]             BTC/block
``miners_revenue_usd``   miners_revenue blockchain.com [USD/day]                   USD/day
=======================  =============  =========================================  ===========

Fees per block are the day's total fees divided by :data:`BLOCKS_PER_DAY` (144, one block
per 600 s on average); the real count varies by roughly +-10 % from day to day.

Each reader returns a pandas Series of float indexed by tz-aware UTC timestamps (ascending,
unique): daily values sit at 00:00 UTC of their day (or the file's own time, e.g. the block
time of a difficulty adjustment). Rows whose metric cell is empty are skipped (a file may
end with a partial day); any other bad cell raises :class:`~datasets.errors.DataFileError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from datasets.csvfile import HEADER_LINE, first_true, parse_numbers, read_raw_csv
from datasets.errors import DataFileError

BtcMetric = Literal["price", "hashrate", "difficulty", "fees", "miners_revenue"]
BLOCKS_PER_DAY = 144.0
"""Expected blocks per day (86,400 s / 600 s per block), used to turn daily fees per block."""

TIME_COLUMNS = ("date", "date_utc", "timestamp", "time_utc")


@dataclass(frozen=True)
class _MetricColumn:
    column: str
    metric: BtcMetric
    scale: float
    """Multiplier from the file's unit to the returned unit."""


# In priority order: the first column a file has for a metric is the one read.
_METRIC_COLUMNS = (
    _MetricColumn("close", "price", 1.0),
    _MetricColumn("close_usd", "price", 1.0),
    _MetricColumn("price_close", "price", 1.0),
    _MetricColumn("market_price_usd", "price", 1.0),
    _MetricColumn("avg_hashrate_hs", "hashrate", 1e-18),
    _MetricColumn("hash_rate_ths", "hashrate", 1e-6),
    _MetricColumn("difficulty", "difficulty", 1.0),
    _MetricColumn("transaction_fees_btc", "fees", 1.0 / BLOCKS_PER_DAY),
    _MetricColumn("miners_revenue_usd", "miners_revenue", 1.0),
)

METRIC_UNITS: dict[BtcMetric, str] = {
    "price": "USD",
    "hashrate": "EH/s",
    "difficulty": "-",
    "fees": "BTC/block",
    "miners_revenue": "USD/day",
}
"""Unit of each metric as returned by the readers."""

_SERIES_NAMES: dict[BtcMetric, str] = {
    "price": "btc_price_usd",
    "hashrate": "network_hashrate_ehs",
    "difficulty": "difficulty",
    "fees": "fees_btc_per_block",
    "miners_revenue": "miners_revenue_usd_per_day",
}


def btc_metrics(header: list[str]) -> list[BtcMetric]:
    """The metrics a BTC file with this header offers (empty when it is no BTC format)."""
    names = {name.lower() for name in header}
    if not names.intersection(TIME_COLUMNS):
        return []
    found: list[BtcMetric] = []
    for spec in _METRIC_COLUMNS:
        if spec.column in names and spec.metric not in found:
            found.append(spec.metric)
    return found


def read_btc_series(path: str | Path, metric: BtcMetric) -> pd.Series:
    """One metric of a BTC file, in the unit of :data:`METRIC_UNITS`.

    Raises:
        DataFileError: the file has no time column or no column for ``metric``, a time or
            number cannot be parsed, or two rows share a timestamp.
    """
    table = read_raw_csv(path)
    lower = {name.lower(): name for name in table.columns}
    time_column = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
    if time_column is None:
        raise DataFileError(
            table.path,
            f"no time column: expected one of {', '.join(TIME_COLUMNS)}; "
            f"found {', '.join(table.columns)}",
            line=HEADER_LINE,
        )
    spec = next((s for s in _METRIC_COLUMNS if s.metric == metric and s.column in lower), None)
    if spec is None:
        expected = ", ".join(s.column for s in _METRIC_COLUMNS if s.metric == metric)
        raise DataFileError(
            table.path,
            f"no {metric} column: expected one of {expected}; found {', '.join(table.columns)}",
            line=HEADER_LINE,
        )
    column = lower[spec.column]
    values = parse_numbers(table, column, allow_empty=True)
    text = table.cells[time_column]
    times = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
    bad = np.asarray(times.isna())
    if bad.any():
        row = first_true(bad)
        raise table.error(f"not a date/time: {text.iloc[row]!r}", row, time_column)
    duplicated = np.asarray(times.duplicated())
    if duplicated.any():
        row = first_true(duplicated)
        raise table.error(f"time {text.iloc[row]} appears twice", row, time_column)
    keep = np.isfinite(values)
    if not keep.any():
        raise DataFileError(table.path, "no values", column=column)
    series = pd.Series(
        values[keep] * spec.scale,
        index=times[keep].rename("time_utc"),
        name=_SERIES_NAMES[metric],
    )
    return series.sort_index()


def read_btc_price(path: str | Path) -> pd.Series:
    """Daily BTC close price [USD] from an OHLC, Yahoo, Coin Metrics or blockchain.com file."""
    return read_btc_series(path, "price")


def read_network_hashrate(path: str | Path) -> pd.Series:
    """Network hashrate [EH/s] from mempool.space (H/s) or blockchain.com (TH/s) files."""
    return read_btc_series(path, "hashrate")


def read_difficulty(path: str | Path) -> pd.Series:
    """Mining difficulty [-]: per adjustment (mempool.space) or sampled (blockchain.com)."""
    return read_btc_series(path, "difficulty")


def read_fees_per_block(path: str | Path) -> pd.Series:
    """Mean transaction fees per block [BTC/block]: daily fees / 144 blocks per day."""
    return read_btc_series(path, "fees")


def read_miners_revenue(path: str | Path) -> pd.Series:
    """Miner revenue, subsidy plus fees [USD/day], from blockchain.com files."""
    return read_btc_series(path, "miners_revenue")
