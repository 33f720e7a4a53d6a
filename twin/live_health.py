"""Telemetry and health checks on the live loop's driver readings (real or emulated miners).

Each tick the live controller reads every miner through its driver; the same readings feed:

- :class:`LiveTelemetry`: per (facility, model) class and tick, miners reporting, hashing,
  summed power and hashrate, mean and hottest temperature (``telemetry_summary.parquet``),
  and every reading of the first ``sample_per_class`` miners of each class
  (``telemetry.parquet``).
- :class:`LiveHealthCheck`: a hashing miner whose hashrate stays below
  ``LOW_HASHRATE_RATIO`` of its class's median for ``CONSECUTIVE_TICKS`` ticks (a failed
  hashboard takes a third) raises a ``hashrate_low`` alert; a miner that reports neither
  power nor hashrate for ``SILENT_TICKS`` ticks raises ``silent``. Comparing with the class
  median, not the nameplate, keeps miners that wake and ramp together from looking faulty.
  Each condition alerts once, and again only after the miner recovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from drivers.base import AsicReadings
from models.fleet_physics import AsicState

LOW_HASHRATE_RATIO = 0.75
"""Hashrate below this share of the class median counts as low [-]."""
CONSECUTIVE_TICKS = 3
"""Ticks a miner must stay low before the alert [-]."""
SILENT_TICKS = 3
"""Ticks without any reading before a miner counts as silent [-]."""
MIN_CLASS_SIZE = 3
"""Hashing miners a class needs for its median to be a reference [-]."""

ALERT_SCHEMA: dict[str, pl.DataType] = {
    "t_s": pl.Float64(),
    "facility": pl.Int64(),
    "device_id": pl.Utf8(),
    "detector": pl.Utf8(),
    "signal": pl.Utf8(),
    "score": pl.Float64(),
}
"""Columns of a live run's ``alerts.parquet``."""


@dataclass(frozen=True, slots=True)
class LiveAlert:
    """One alert: when [s since the loop started], the facility index, the miner (its
    driver id, an address for real miners), the detector and signal, and its statistic
    (the hashrate ratio to the class median, or the silent ticks)."""

    t_s: float
    facility: int
    device_id: str
    detector: str
    signal: str
    score: float


class LiveHealthCheck:
    """The checks of the module docstring over successive readings."""

    def __init__(self) -> None:
        self._ids: tuple[str, ...] = ()
        self._low_ticks = np.zeros(0, dtype=np.int64)
        self._silent_ticks = np.zeros(0, dtype=np.int64)
        self.alerts: list[LiveAlert] = []

    def observe(self, readings: AsicReadings, t_s: float) -> list[LiveAlert]:
        """Check one tick's readings at ``t_s`` [s]; returns (and keeps) the new alerts."""
        ids = readings.device_ids or tuple(str(i) for i in range(readings.facility.size))
        if ids != self._ids:  # another set of miners: start the counts again
            self._ids = ids
            self._low_ticks = np.zeros(len(ids), dtype=np.int64)
            self._silent_ticks = np.zeros(len(ids), dtype=np.int64)
        ratio = class_median_ratio(readings)
        low = ratio < LOW_HASHRATE_RATIO
        silent = ~np.isfinite(readings.power_w) & ~np.isfinite(readings.hashrate_ths)
        self._low_ticks = np.where(low, self._low_ticks + 1, 0)
        self._silent_ticks = np.where(silent, self._silent_ticks + 1, 0)
        new = [
            LiveAlert(t_s, int(readings.facility[i]), ids[i], "class_median", "hashrate_low",
                      float(ratio[i]))
            for i in np.flatnonzero(self._low_ticks == CONSECUTIVE_TICKS)
        ] + [
            LiveAlert(t_s, int(readings.facility[i]), ids[i], "heartbeat", "silent",
                      float(SILENT_TICKS))
            for i in np.flatnonzero(self._silent_ticks == SILENT_TICKS)
        ]  # fmt: skip
        self.alerts += new
        return new

    def frame(self) -> pl.DataFrame:
        """Every alert so far (``ALERT_SCHEMA``)."""
        rows = [
            (a.t_s, a.facility, a.device_id, a.detector, a.signal, a.score) for a in self.alerts
        ]
        return pl.DataFrame(rows, schema=ALERT_SCHEMA, orient="row")


def class_median_ratio(readings: AsicReadings) -> np.ndarray:
    """Each hashing miner's hashrate over its (facility, model) class median [-]; NaN for
    miners not hashing or in classes with fewer than MIN_CLASS_SIZE hashing miners."""
    hashing = (readings.state == AsicState.ACTIVE) & np.isfinite(readings.hashrate_ths)
    ratio = np.full(readings.facility.size, np.nan)
    cls = readings.facility.astype(np.int64) * max(len(readings.model_ids), 1) + readings.model
    for key in np.unique(cls[hashing]):
        members = hashing & (cls == key)
        if np.count_nonzero(members) < MIN_CLASS_SIZE:
            continue
        median = float(np.median(readings.hashrate_ths[members]))
        if median > 0:
            ratio[members] = readings.hashrate_ths[members] / median
    return ratio


class LiveTelemetry:
    """Per-class summaries of every tick's readings and the full readings of a sample.

    Args:
        sample_per_class: miners of each (facility, model) class whose every reading is
            kept (the first ones in driver order).
    """

    def __init__(self, sample_per_class: int = 1) -> None:
        self.sample_per_class = sample_per_class
        self._summary: list[pl.DataFrame] = []
        self._detail: list[pl.DataFrame] = []

    def observe(self, readings: AsicReadings, t_s: float, facility_ids: list[str]) -> None:
        """Keep one tick's readings at ``t_s`` [s]."""
        if readings.facility.size == 0:
            return
        models = np.asarray(readings.model_ids or ("",), dtype=object)
        frame = pl.DataFrame(
            {
                "t_s": np.full(readings.facility.size, float(t_s)),
                "facility_id": np.asarray(facility_ids, dtype=object)[
                    readings.facility.astype(np.int64)
                ],
                "model": models[readings.model.astype(np.int64)],
                "device_id": list(readings.device_ids)
                or [str(i) for i in range(readings.facility.size)],
                "hashing": readings.state == AsicState.ACTIVE,
                "power_w": readings.power_w.astype(np.float64),
                "hashrate_ths": readings.hashrate_ths.astype(np.float64),
                "temp_c": readings.temp_c.astype(np.float64),
            },
            strict=False,
        )
        self._summary.append(
            frame.group_by(["t_s", "facility_id", "model"], maintain_order=True).agg(
                pl.len().alias("miners"),
                pl.col("hashing").sum().alias("hashing"),
                pl.col("power_w").fill_nan(None).sum().alias("power_w"),
                pl.col("hashrate_ths").fill_nan(None).sum().alias("hashrate_ths"),
                pl.col("temp_c").fill_nan(None).mean().alias("temp_c_mean"),
                pl.col("temp_c").fill_nan(None).max().alias("temp_c_max"),
            )
        )
        if self.sample_per_class > 0:
            ranks = pl.int_range(pl.len()).over(["facility_id", "model"])
            self._detail.append(frame.filter(ranks < self.sample_per_class))

    def summary(self) -> pl.DataFrame:
        """Per tick and class: miners, hashing, power [W], hashrate [TH/s], temperatures."""
        return pl.concat(self._summary) if self._summary else pl.DataFrame()

    def detail(self) -> pl.DataFrame:
        """Every reading of the sampled miners."""
        return pl.concat(self._detail) if self._detail else pl.DataFrame()
