"""The signals the engine reads, built from a scenario's signal sources.

Each function takes one source block of the scenario (``twin/scenario.py``) and dispatches
on its ``kind``:

* ``synthetic`` -> the seeded generator of :mod:`datasets.synthetic`;
* ``historical`` -> replay of a real history file (ERCOT or BTC format, detected from its
  header), shifted by ``shift_days`` and put onto the dispatch grid by
  :mod:`datasets.replay` (ERCOT intervals: step hold / time average; daily BTC points:
  linear interpolation between days);
* ``constant`` -> a :class:`~datasets.signals.ConstantSignal`.

The grid is ``n_steps`` steps of ``step_s`` seconds from ``start`` (tz-aware); signal time
``t_s`` counts seconds from ``start``. Parsed files are cached by resolved path and
modification time, since several signals read the same file.

Errors: a bad or mismatched file raises :class:`~datasets.errors.DataFileError`; a file that
does not cover the run raises :class:`~datasets.signals.SignalRangeError`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.btc import METRIC_UNITS, BtcMetric, read_btc_series
from datasets.ercot import ANCILLARY_SERVICES, PriceTable, read_ercot_prices
from datasets.errors import DataFileError
from datasets.replay import epoch_seconds, grid_epoch_seconds, interpolate_points, interval_means
from datasets.signals import ConstantSignal, SeriesSignal, Signal
from datasets.synthetic import (
    synthetic_ancillary,
    synthetic_btc_price,
    synthetic_fees,
    synthetic_gpu_rental,
    synthetic_network_hashrate,
    synthetic_prices,
)
from twin.scenario import (
    PROJECT_ROOT,
    ConstantValue,
    HistoricalSeries,
    SyntheticAncillary,
    SyntheticBtc,
    SyntheticFees,
    SyntheticGpuRental,
    SyntheticHashrate,
    SyntheticPrices,
)

PRICE_UNIT = "USD/MWh"
ANCILLARY_UNIT = "USD/MW-h"
_CACHE_SIZE = 16


def price_signals(
    source: SyntheticPrices | HistoricalSeries | ConstantValue,
    settlement_points: list[str],
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> dict[str, Signal]:
    """Real-time energy price per settlement point [USD/MWh], keyed by point.

    A historical file must be an ERCOT day-ahead or real-time settlement point file holding
    every requested point. Signals are named ``price.<point>``.

    Raises:
        DataFileError: unreadable file, not a settlement point price file, or a point
            missing from it (the message lists the points it has).
        SignalRangeError: the file does not cover the run.
    """
    if isinstance(source, SyntheticPrices):
        return dict(synthetic_prices(source, settlement_points, start, n_steps, step_s, rng))
    if isinstance(source, ConstantValue):
        return {
            point: ConstantSignal(source.value, name=f"price.{point}", unit=PRICE_UNIT)
            for point in settlement_points
        }
    table = load_price_table(source.file)
    if table.kind == "ancillary":
        raise DataFileError(
            table.source,
            "this is an ancillary-service price file; energy prices need an ERCOT "
            "settlement point price file (day-ahead hourly or real-time 15-min)",
        )
    missing = [point for point in settlement_points if point not in table.columns]
    if missing:
        raise DataFileError(
            table.source,
            f"no settlement point {missing[0]}; the file has {', '.join(table.columns)}",
            column=missing[0],
        )
    grid_s = grid_epoch_seconds(start, n_steps, step_s, source.shift_days)
    return {
        point: SeriesSignal(
            _replay_intervals(table, point, grid_s, step_s, source)[0],
            step_s,
            0.0,
            name=f"price.{point}",
            unit=PRICE_UNIT,
        )
        for point in settlement_points
    }


def ancillary_signals(
    source: SyntheticAncillary | HistoricalSeries | ConstantValue,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> dict[str, Signal]:
    """Ancillary capacity price per service [USD/MW-h], keyed REGUP, REGDN, RRS, ECRS, NSPIN.

    A constant gives every service the same price. A historical file gives the services it
    has columns for. A service that has no price yet when the run starts (ECRS before its
    launch on 2023-06-10) gets a signal that starts at its first priced step (``start_s`` >
    0: not offered before), and is left out when it has no price in the whole run; a later
    hour without a price reads 0 USD/MW-h (nothing to earn then). Signals are named
    ``ancillary.<service>``.

    Raises:
        DataFileError: unreadable file or not an ancillary price file.
        SignalRangeError: the file does not cover the run.
    """
    if isinstance(source, SyntheticAncillary):
        return dict(synthetic_ancillary(source, start, n_steps, step_s, rng))
    if isinstance(source, ConstantValue):
        return {
            service: ConstantSignal(source.value, name=f"ancillary.{service}", unit=ANCILLARY_UNIT)
            for service in ANCILLARY_SERVICES
        }
    table = load_price_table(source.file)
    if table.kind != "ancillary":
        raise DataFileError(
            table.source,
            "this is an energy price file; ancillary prices need an ERCOT ancillary "
            "capacity price file (delivery_date, hour_ending, repeated_hour_flag, REGUP, ...)",
        )
    grid_s = grid_epoch_seconds(start, n_steps, step_s, source.shift_days)
    signals: dict[str, Signal] = {}
    for service in table.columns:
        prices, available = _replay_intervals(table, service, grid_s, step_s, source)
        offered = available > 0
        if not offered.any():
            continue
        first = int(np.argmax(offered))
        signals[service] = SeriesSignal(
            prices[first:],
            step_s,
            first * step_s,
            name=f"ancillary.{service}",
            unit=ANCILLARY_UNIT,
        )
    return signals


def btc_price_signal(
    source: SyntheticBtc | HistoricalSeries | ConstantValue,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> Signal:
    """BTC price [USD], named ``btc_price``; daily history is interpolated linearly."""
    if isinstance(source, SyntheticBtc):
        return synthetic_btc_price(source, n_steps, step_s, rng)
    return _btc_signal(source, "price", "btc_price", start, n_steps, step_s)


def network_hashrate_signal(
    source: SyntheticHashrate | HistoricalSeries | ConstantValue,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> Signal:
    """Network hashrate [EH/s], named ``network_hashrate``; history (H/s or TH/s files) is
    converted to EH/s and interpolated linearly between its points."""
    if isinstance(source, SyntheticHashrate):
        return synthetic_network_hashrate(source, n_steps, step_s, rng)
    return _btc_signal(source, "hashrate", "network_hashrate", start, n_steps, step_s)


def fee_signal(
    source: SyntheticFees | HistoricalSeries | ConstantValue,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> Signal:
    """Mean transaction fees per block [BTC/block], named ``fees``; history is daily fees
    divided by 144 blocks per day, interpolated linearly between days."""
    if isinstance(source, SyntheticFees):
        return synthetic_fees(source, n_steps, step_s, rng)
    return _btc_signal(source, "fees", "fees", start, n_steps, step_s)


def gpu_rental_signal(
    source: SyntheticGpuRental | ConstantValue,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> Signal:
    """GPU rental multiplier [-] on catalog rental prices, named ``gpu_rental``.

    ``start`` is accepted for a uniform signature; the synthetic process has no calendar.
    """
    if isinstance(source, SyntheticGpuRental):
        return synthetic_gpu_rental(source, n_steps, step_s, rng)
    return ConstantSignal(source.value, name="gpu_rental", unit="-")


def resolve_data_path(file: str | Path) -> Path:
    """``file`` as an absolute path: relative paths are relative to the project root."""
    path = Path(file)
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_price_table(file: str | Path) -> PriceTable:
    """The ERCOT price table of ``file`` (cached by resolved path and modification time)."""
    path = resolve_data_path(file)
    stamp = _file_stamp(path)
    return _cached_price_table(str(path), *stamp)


def load_btc_series(file: str | Path, metric: BtcMetric) -> pd.Series:
    """One metric of a BTC history file (cached by resolved path and modification time).

    The returned Series is shared between callers: treat it as read-only.
    """
    path = resolve_data_path(file)
    stamp = _file_stamp(path)
    return _cached_btc_series(str(path), *stamp, metric)


def _btc_signal(
    source: HistoricalSeries | ConstantValue,
    metric: BtcMetric,
    name: str,
    start: datetime,
    n_steps: int,
    step_s: float,
) -> Signal:
    unit = METRIC_UNITS[metric]
    if isinstance(source, ConstantValue):
        return ConstantSignal(source.value, name=name, unit=unit)
    series = load_btc_series(source.file, metric)
    grid_s = grid_epoch_seconds(start, n_steps, step_s, source.shift_days)
    values = interpolate_points(
        epoch_seconds(pd.DatetimeIndex(series.index)),
        series.to_numpy(dtype=float),
        grid_s,
        step_s,
        _describe(name, source),
    )
    return SeriesSignal(values, step_s, 0.0, name=name, unit=unit)


def _replay_intervals(
    table: PriceTable,
    column: str,
    grid_s: np.ndarray,
    step_s: float,
    source: HistoricalSeries,
) -> tuple[np.ndarray, np.ndarray]:
    """Step means of one column and the fraction of each step that had a value [0..1].

    Missing values (NaN) count as 0 in the mean.
    """
    values = table.frame[column].to_numpy(dtype=float)
    present = np.isfinite(values)
    starts_s = epoch_seconds(pd.DatetimeIndex(table.frame.index))
    what = _describe(f"{table.kind} price {column}", source)
    means = interval_means(
        starts_s, np.where(present, values, 0.0), table.interval_s, grid_s, step_s, what
    )
    if present.all():
        return means, np.ones_like(means)
    available = interval_means(
        starts_s, present.astype(float), table.interval_s, grid_s, step_s, what
    )
    return means, available


def _describe(name: str, source: HistoricalSeries) -> str:
    shift = f", shifted by {source.shift_days:g} days" if source.shift_days else ""
    return f"{name} from {source.file}{shift}"


def _file_stamp(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except OSError as error:
        raise DataFileError(path, f"cannot read file ({error})") from None
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_price_table(path: str, mtime_ns: int, size: int) -> PriceTable:
    return read_ercot_prices(path)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_btc_series(path: str, mtime_ns: int, size: int, metric: BtcMetric) -> pd.Series:
    return read_btc_series(path, metric)
