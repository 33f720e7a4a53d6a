"""A facility's physical and commercial envelope: ambient, PUE, power accounting, contract.

Pure functions, vectorized where it matters:

* :func:`ambient_c` — outdoor temperature from a seasonal and a daily sinusoid;
* :func:`pue` — power usage effectiveness rising with ambient temperature;
* :func:`facility_power_mw` / :class:`FacilityPower` / :func:`headroom_mw` — IT power times
  PUE per hall, its split into IT and overhead, and what is left under the cap;
* :func:`settle_energy` / :func:`marginal_energy_usd_per_mwh` — what the energy drawn costs
  under an index or fixed-block contract, and what one more MWh would cost.

All powers are facility-level (IT x PUE) unless the name says ``it``.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from twin.scenario import AmbientModel, FixedBlockContract, IndexContract

LOCAL_TIME_ZONE = ZoneInfo("America/Chicago")
"""Local time of the Texas sites (ERCOT's Central Prevailing Time)."""

DAILY_PEAK_HOUR_LOCAL = 16.0
"""Hour of the day's warmest temperature, local time [h]."""


class FacilityError(ValueError):
    """Bad input to a facility calculation; the message names the argument and the reason."""


# --------------------------------------------------------------------------- ambient


def ambient_c(cfg: AmbientModel, start: datetime, t_s: float | np.ndarray) -> float | np.ndarray:
    """Outdoor dry-bulb temperature [°C] at ``t_s`` seconds after ``start``.

    ``mean_c + seasonal_amplitude_c * cos(2 pi (d - (warmest_day_of_year - 0.5)) / Y)
    + daily_amplitude_c * cos(2 pi (h - 16) / 24)`` where ``d`` is the local day of year
    counted from 0 at 1 January 00:00 (so day ``n`` is centred on ``n - 0.5``), ``Y`` the
    length of that year in days, and ``h`` the local hour of day (America/Chicago, so the
    daily peak stays at 16:00 wall-clock time across daylight saving changes).

    Args:
        cfg: the facility's ambient model.
        start: scenario start, timezone-aware.
        t_s: seconds since ``start`` [s], a number or an array.

    Returns:
        A float for a scalar ``t_s``, else an array of the same shape.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise FacilityError("start: needs a timezone (UTC offset)")
    times = np.asarray(t_s, dtype=np.float64)
    if not np.all(np.isfinite(times)):
        raise FacilityError("t_s: values must be finite")
    epoch_s = start.timestamp() + times
    parts: tuple[float, float, float] | tuple[np.ndarray, np.ndarray, np.ndarray]
    if times.ndim == 0:
        parts = _local_calendar_scalar(float(epoch_s))
    else:
        parts = _local_calendar(epoch_s.ravel())
    day_of_year, hour_of_day, year_days = parts
    seasonal = np.cos(2 * np.pi * (day_of_year - (cfg.warmest_day_of_year - 0.5)) / year_days)
    daily = np.cos(2 * np.pi * (hour_of_day - DAILY_PEAK_HOUR_LOCAL) / 24.0)
    values = cfg.mean_c + cfg.seasonal_amplitude_c * seasonal + cfg.daily_amplitude_c * daily
    if times.ndim == 0:
        return float(values)
    return values.reshape(times.shape)


def _local_calendar_scalar(epoch_s: float) -> tuple[float, float, float]:
    """:func:`_local_calendar` for one time, without pandas (about 100x faster)."""
    local = datetime.fromtimestamp(epoch_s, LOCAL_TIME_ZONE)
    hour_of_day = (
        local.hour + local.minute / 60.0 + (local.second + local.microsecond / 1e6) / 3600.0
    )
    day_of_year = local.timetuple().tm_yday - 1 + hour_of_day / 24.0
    year_days = 366.0 if calendar.isleap(local.year) else 365.0
    return day_of_year, hour_of_day, year_days


def _local_calendar(epoch_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local (America/Chicago) fractional day of year from 0, hour of day, and days in that
    year, for Unix times ``epoch_s`` [s]; one vectorized time-zone conversion."""
    utc = pd.DatetimeIndex(pd.to_datetime(np.round(epoch_s * 1e6).astype(np.int64), unit="us"))
    local = utc.tz_localize("UTC").tz_convert(LOCAL_TIME_ZONE).tz_localize(None)
    local_wall = np.asarray(local.as_unit("us").asi8).astype("datetime64[us]")
    year_start = local_wall.astype("datetime64[Y]")
    next_year = year_start + np.timedelta64(1, "Y")
    day_us = 86400e6
    day_of_year = (local_wall - year_start.astype("datetime64[us]")).astype(np.float64) / day_us
    year_days = (next_year.astype("datetime64[D]") - year_start.astype("datetime64[D]")).astype(
        np.float64
    )
    midnight = local_wall.astype("datetime64[D]").astype("datetime64[us]")
    hour_of_day = (local_wall - midnight).astype(np.float64) / 3600e6
    return day_of_year, hour_of_day, year_days


# --------------------------------------------------------------------------- PUE and power


def pue(
    base: float,
    temp_coeff_per_c: float,
    reference_ambient_c: float,
    ambient_c: float | np.ndarray,
) -> float | np.ndarray:
    """Power usage effectiveness [-] at an outdoor temperature.

    ``base * (1 + temp_coeff_per_c * max(0, ambient_c - reference_ambient_c))`` (the
    schema's :class:`twin.scenario.PueModel`): cooling works harder above the reference.

    Args:
        base: PUE at or below the reference temperature [-], >= 1.
        temp_coeff_per_c: relative rise per °C above the reference [1/°C], >= 0.
        reference_ambient_c: temperature above which PUE rises [°C].
        ambient_c: outdoor temperature [°C], a number or an array.
    """
    if base < 1.0:
        raise FacilityError(f"base: PUE must be >= 1, got {base}")
    if temp_coeff_per_c < 0:
        raise FacilityError(f"temp_coeff_per_c: must be >= 0, got {temp_coeff_per_c}")
    excess = np.maximum(0.0, np.asarray(ambient_c, dtype=np.float64) - reference_ambient_c)
    value = base * (1.0 + temp_coeff_per_c * excess)
    return float(value) if value.ndim == 0 else value


def facility_power_mw(
    it_mining_mw: float | np.ndarray,
    it_ai_mw: float | np.ndarray,
    pue_mining: float | np.ndarray,
    pue_ai: float | np.ndarray,
) -> float | np.ndarray:
    """Facility draw [MW]: ``it_mining_mw * pue_mining + it_ai_mw * pue_ai``.

    Monotone non-decreasing in every argument over valid inputs (IT >= 0, PUE >= 1).
    """
    _check_non_negative(it_mining_mw, "it_mining_mw")
    _check_non_negative(it_ai_mw, "it_ai_mw")
    _check_pue(pue_mining, "pue_mining")
    _check_pue(pue_ai, "pue_ai")
    total = np.asarray(it_mining_mw) * pue_mining + np.asarray(it_ai_mw) * pue_ai
    return float(total) if np.ndim(total) == 0 else total


def headroom_mw(
    power_cap_mw: float,
    it_mining_mw: float | np.ndarray,
    it_ai_mw: float | np.ndarray,
    pue_mining: float | np.ndarray,
    pue_ai: float | np.ndarray,
) -> float | np.ndarray:
    """Facility power left under the cap [MW] (negative when over it)."""
    if not power_cap_mw > 0:
        raise FacilityError(f"power_cap_mw: must be > 0, got {power_cap_mw}")
    return power_cap_mw - facility_power_mw(it_mining_mw, it_ai_mw, pue_mining, pue_ai)


def it_budget_mw(facility_headroom_mw: float, hall_pue: float) -> float:
    """IT power a hall may add within a facility headroom [MW]: ``headroom / pue``, >= 0."""
    _check_pue(hall_pue, "hall_pue")
    return max(0.0, facility_headroom_mw) / hall_pue


@dataclass(frozen=True, slots=True)
class FacilityPower:
    """A facility's draw split by hall into IT and cooling/distribution overhead [MW]."""

    it_mining_mw: float
    it_ai_mw: float
    pue_mining: float
    pue_ai: float

    def __post_init__(self) -> None:
        _check_non_negative(self.it_mining_mw, "it_mining_mw")
        _check_non_negative(self.it_ai_mw, "it_ai_mw")
        _check_pue(self.pue_mining, "pue_mining")
        _check_pue(self.pue_ai, "pue_ai")

    @property
    def it_mw(self) -> float:
        """IT power of both halls [MW]."""
        return self.it_mining_mw + self.it_ai_mw

    @property
    def overhead_mining_mw(self) -> float:
        """Cooling and distribution overhead of the mining hall [MW]."""
        return self.it_mining_mw * (self.pue_mining - 1.0)

    @property
    def overhead_ai_mw(self) -> float:
        """Cooling and distribution overhead of the AI hall [MW]."""
        return self.it_ai_mw * (self.pue_ai - 1.0)

    @property
    def overhead_mw(self) -> float:
        """Overhead of both halls [MW]."""
        return self.overhead_mining_mw + self.overhead_ai_mw

    @property
    def total_mw(self) -> float:
        """Facility draw, IT plus overhead [MW]."""
        return float(
            facility_power_mw(self.it_mining_mw, self.it_ai_mw, self.pue_mining, self.pue_ai)
        )


def facility_energy_mwh(
    it_energy_mwh_by_use: Mapping[str, float], pue_by_use: Mapping[str, float]
) -> float:
    """Facility energy [MWh] from IT energy per use [MWh] and the PUE of each use's hall."""
    missing = sorted(set(it_energy_mwh_by_use) - set(pue_by_use))
    if missing:
        raise FacilityError(f"pue_by_use: no PUE for use(s) {', '.join(missing)}")
    return float(sum(e * pue_by_use[use] for use, e in it_energy_mwh_by_use.items()))


def energy_balance_residual_mwh(
    facility_energy: float,
    it_energy_mwh_by_use: Mapping[str, float],
    pue_by_use: Mapping[str, float],
) -> float:
    """``facility_energy - sum(IT energy of each use * its PUE)`` [MWh]; 0 when it closes."""
    return facility_energy - facility_energy_mwh(it_energy_mwh_by_use, pue_by_use)


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True, slots=True)
class EnergySettlement:
    """What one interval's energy costs under a contract.

    Attributes:
        energy_mwh: facility energy drawn [MWh].
        cost_energy_usd: paid for energy: everything at index, or the block (take-or-pay)
            plus energy above it [USD].
        revenue_resale_usd: unused block energy sold back at the real-time price [USD];
            negative when that price is negative.
    """

    energy_mwh: float
    cost_energy_usd: float
    revenue_resale_usd: float

    @property
    def net_cost_usd(self) -> float:
        """Energy cost less resale revenue [USD]."""
        return self.cost_energy_usd - self.revenue_resale_usd


def settle_energy(
    contract: IndexContract | FixedBlockContract,
    facility_mw: float,
    price_usd_per_mwh: float,
    dt_h: float,
) -> EnergySettlement:
    """Settle one interval of constant facility draw.

    * Index: ``energy * (price + adder)``.
    * Fixed block: the block ``block_mw * dt_h * fixed price`` is paid whatever is drawn
      (take-or-pay); draw above the block is bought at ``price + adder``; with ``sellback``
      the unused block is sold at the real-time price. At a negative price sell-back costs
      money (negative revenue) — computed as is; the marginal price
      (:func:`marginal_energy_usd_per_mwh`) then tells a rational operator to consume
      instead.

    Args:
        contract: the facility's contract.
        facility_mw: mean facility draw over the interval [MW], >= 0.
        price_usd_per_mwh: real-time settlement point price [USD/MWh].
        dt_h: interval length [h], > 0.
    """
    _check_non_negative(facility_mw, "facility_mw")
    if not dt_h > 0:
        raise FacilityError(f"dt_h: must be > 0, got {dt_h}")
    if not np.isfinite(price_usd_per_mwh):
        raise FacilityError(f"price_usd_per_mwh: must be finite, got {price_usd_per_mwh}")
    energy_mwh = facility_mw * dt_h
    if isinstance(contract, IndexContract):
        cost = energy_mwh * (price_usd_per_mwh + contract.adder_usd_per_mwh)
        return EnergySettlement(energy_mwh, cost, 0.0)
    if isinstance(contract, FixedBlockContract):
        block_mwh = contract.block_mw * dt_h
        above_mwh = max(0.0, facility_mw - contract.block_mw) * dt_h
        unused_mwh = max(0.0, contract.block_mw - facility_mw) * dt_h
        cost = block_mwh * contract.price_usd_per_mwh
        cost += above_mwh * (price_usd_per_mwh + contract.adder_usd_per_mwh)
        resale = unused_mwh * price_usd_per_mwh if contract.sellback else 0.0
        return EnergySettlement(energy_mwh, cost, resale)
    raise FacilityError(f"contract: unknown contract type {type(contract).__name__}")


def marginal_energy_usd_per_mwh(
    contract: IndexContract | FixedBlockContract,
    facility_mw: float,
    price_usd_per_mwh: float,
) -> float:
    """What one more MWh drawn at ``facility_mw`` costs [USD/MWh].

    Index: ``price + adder``. Fixed block below the block: the real-time price forgone by
    not selling it back (0 without sell-back, since the block is paid anyway); at or above
    the block: ``price + adder``.
    """
    _check_non_negative(facility_mw, "facility_mw")
    if isinstance(contract, IndexContract):
        return price_usd_per_mwh + contract.adder_usd_per_mwh
    if isinstance(contract, FixedBlockContract):
        if facility_mw < contract.block_mw:
            return price_usd_per_mwh if contract.sellback else 0.0
        return price_usd_per_mwh + contract.adder_usd_per_mwh
    raise FacilityError(f"contract: unknown contract type {type(contract).__name__}")


# --------------------------------------------------------------------------- checks


def _check_non_negative(value: float | np.ndarray, name: str) -> None:
    if not _all_finite_at_least(value, 0.0):
        raise FacilityError(f"{name}: must be finite and >= 0")


def _check_pue(value: float | np.ndarray, name: str) -> None:
    if not _all_finite_at_least(value, 1.0):
        raise FacilityError(f"{name}: PUE must be finite and >= 1")


def _all_finite_at_least(value: float | np.ndarray, lowest: float) -> bool:
    """True when every value is finite and >= ``lowest`` (plain floats skip numpy)."""
    if isinstance(value, float | int):
        return math.isfinite(value) and value >= lowest
    array = np.asarray(value, dtype=np.float64)
    return bool(np.all(np.isfinite(array)) and not np.any(array < lowest))
