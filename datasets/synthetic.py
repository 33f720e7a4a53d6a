"""Seeded synthetic market signals: ERCOT-like prices, ancillary prices, BTC, hashrate, fees.

Every generator takes a numpy ``Generator`` (never global random state), draws all its
random numbers in one fixed order, and returns step series on the grid
``t_s = 0, step_s, 2*step_s, ...`` (``n_steps`` values). Stochastic processes use their
exact discretisation, so statistics do not depend on ``step_s``, and recurrences run as
vectorized linear filters (``scipy.signal.lfilter``), not Python loops.

The scenario ``start`` (tz-aware) is used only to shape prices by the local calendar
(Central Prevailing Time hour of day, day of year); model code never sees it.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from datasets.ercot import ANCILLARY_SERVICES, CPT_ZONE
from datasets.signals import SeriesSignal
from twin.scenario import (
    SyntheticAncillary,
    SyntheticBtc,
    SyntheticFees,
    SyntheticGpuRental,
    SyntheticHashrate,
    SyntheticPrices,
)

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY

PRICE_DAILY_LOW_HOUR = 4.0
"""Local hour of the daily price minimum (night valley) [h, CPT]."""
PRICE_DAILY_HIGH_HOUR = 17.0
"""Local hour of the daily price maximum (evening net-load peak) [h, CPT]."""
PRICE_SEASON_PEAK_DAY = 213.0
"""Day of year of the summer price peak (early August in Texas)."""
SPIKE_SIZE_TAIL_INDEX = 2.5
"""Pareto tail index of spike heights: heavy-tailed, finite mean, infinite kurtosis."""
SPIKE_TIMING_EXPONENT = 3.0
"""Spikes start with probability proportional to (daily x seasonal shape) ** this."""
ANCILLARY_CORRELATION_TIME_S = 6 * SECONDS_PER_HOUR
"""How long ancillary price deviations persist (AR(1) e-folding time) [s]."""
FEE_CORRELATION_TIME_S = 3 * SECONDS_PER_DAY
"""How long fee-market deviations persist (AR(1) e-folding time) [s]."""


def synthetic_prices(
    cfg: SyntheticPrices,
    settlement_points: list[str],
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> dict[str, SeriesSignal]:
    """Real-time energy prices per settlement point [USD/MWh], ERCOT-like.

    ``price = mean * (1 + a_d * daily(h)) * (1 + a_s * seasonal(doy)) + OU + spikes + basis``,
    clipped to ``[floor, cap]``, where

    * ``daily(h)`` in [-1, 1] is a smooth two-branch cosine of the local (CPT) hour, lowest at
      04:00 and highest at 17:00, mean 0 over a day;
    * ``seasonal(doy)`` in [-0.5, 1] has its maximum in early August and a mild winter bump
      (January above the spring and autumn shoulders), mean 0 over a year;
    * ``OU`` is an Ornstein-Uhlenbeck deviation with reversion ``reversion_per_hour`` and
      stationary standard deviation ``volatility_usd_per_mwh``, sampled exactly
      (``x' = phi x + sd sqrt(1 - phi^2) eps``, ``phi = exp(-kappa dt)``); settlement points
      share it with pairwise correlation ``site_correlation``;
    * ``spikes`` are scarcity events common to all points: a Poisson number with mean
      ``spike_rate_per_day`` per day, placed preferably on hot afternoons (probability
      proportional to the cubed calendar shape), lasting an exponential time of mean
      ``spike_mean_duration_h`` and adding a Pareto-distributed height (tail index 2.5) of
      mean ``spike_mean_usd_per_mwh``. Each step holds the time average of the spikes over
      the step, so short spikes still count with their energy;
    * ``basis`` is ``basis_usd_per_mwh`` of the point (0 if not listed).

    With the defaults the annual mean is about 49 USD/MWh (42 base + ~7 from spikes) with a
    few spike hours a month, as ERCOT hubs in 2023.

    Returns:
        one SeriesSignal per distinct settlement point, keyed by its name, named
        ``price.<point>``.
    """
    _check_grid(n_steps, step_s)
    points = list(dict.fromkeys(settlement_points))
    hour, day_of_year = cpt_calendar(start, n_steps, step_s)
    calendar = (1 + cfg.daily_amplitude * daily_price_shape(hour)) * (
        1 + cfg.seasonal_amplitude * seasonal_price_shape(day_of_year)
    )
    base = cfg.mean_usd_per_mwh * calendar

    phi = np.exp(-cfg.reversion_per_hour * step_s / SECONDS_PER_HOUR)
    shocks = _correlated_normals(len(points), n_steps, cfg.site_correlation, rng)
    deviation = cfg.volatility_usd_per_mwh * stationary_ar1(shocks, phi)

    spikes = _spike_path(cfg, np.maximum(calendar, 0.0), n_steps, step_s, rng)
    basis = np.array([cfg.basis_usd_per_mwh.get(p, 0.0) for p in points])[:, None]
    prices = np.clip(
        base[None, :] + deviation + spikes[None, :] + basis,
        cfg.floor_usd_per_mwh,
        cfg.cap_usd_per_mwh,
    )
    return {
        point: SeriesSignal(prices[i], step_s, 0.0, name=f"price.{point}", unit="USD/MWh")
        for i, point in enumerate(points)
    }


def synthetic_ancillary(
    cfg: SyntheticAncillary,
    start: datetime,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> dict[str, SeriesSignal]:
    """Day-ahead ancillary capacity prices [USD/MW-h], one per service in the config.

    Each clock hour (UTC hours, which are CPT hours too) has one price per service, as the
    day-ahead market clears hourly: ``mean * exp(v z - v^2 / 2)`` with ``v`` the
    ``volatility`` and ``z`` a unit-variance AR(1) over hours (e-folding time 6 h) whose
    innovations are correlated across services by ``price_correlation``. The expected price
    equals the configured mean.

    Returns:
        SeriesSignals keyed REGUP, REGDN, RRS, ECRS, NSPIN (those configured), named
        ``ancillary.<service>``.
    """
    _check_grid(n_steps, step_s)
    services = [s for s in ANCILLARY_SERVICES if s in cfg.mean_usd_per_mw_h]
    if not services:
        return {}
    start_s = _require_aware(start).timestamp()
    step_times_s = start_s + step_s * np.arange(n_steps)
    hour_index = (
        np.floor(step_times_s / SECONDS_PER_HOUR) - np.floor(start_s / SECONDS_PER_HOUR)
    ).astype(np.int64)
    n_hours = int(hour_index[-1]) + 1
    phi = np.exp(-SECONDS_PER_HOUR / ANCILLARY_CORRELATION_TIME_S)
    shocks = _correlated_normals(len(services), n_hours, cfg.price_correlation, rng)
    z = stationary_ar1(shocks, phi)
    v = cfg.volatility
    hourly = np.exp(v * z - 0.5 * v * v)
    return {
        service: SeriesSignal(
            cfg.mean_usd_per_mw_h[service] * hourly[i, hour_index],
            step_s,
            0.0,
            name=f"ancillary.{service}",
            unit="USD/MW-h",
        )
        for i, service in enumerate(services)
    }


def synthetic_btc_price(
    cfg: SyntheticBtc, n_steps: int, step_s: float, rng: np.random.Generator
) -> SeriesSignal:
    """BTC price [USD]: geometric Brownian motion with compensated Poisson log-jumps.

    Per step of ``dt`` years: ``log S += (mu - sigma^2/2 - lambda k) dt + sigma sqrt(dt) eps
    + sum of N jumps``, ``N ~ Poisson(lambda dt)``, each jump ``~ Normal(jump_mean,
    jump_std)`` in log price, ``k = exp(jump_mean + jump_std^2 / 2) - 1`` so that
    ``drift_per_year`` is the expected return. The first value is ``initial_usd``.
    """
    _check_grid(n_steps, step_s)
    dt_years = step_s / SECONDS_PER_YEAR
    sigma = cfg.volatility_per_year
    rate = cfg.jump_rate_per_year
    compensator = np.expm1(cfg.jump_mean + 0.5 * cfg.jump_std**2)
    n_moves = n_steps - 1
    diffusion = sigma * np.sqrt(dt_years) * rng.standard_normal(n_moves)
    jump_counts = rng.poisson(rate * dt_years, n_moves)
    jumps = jump_counts * cfg.jump_mean + np.sqrt(jump_counts) * cfg.jump_std * (
        rng.standard_normal(n_moves)
    )
    drift = (cfg.drift_per_year - 0.5 * sigma**2 - rate * compensator) * dt_years
    log_moves = np.concatenate([[0.0], np.cumsum(drift + diffusion + jumps)])
    return SeriesSignal(cfg.initial_usd * np.exp(log_moves), step_s, 0.0, "btc_price", "USD")


def synthetic_network_hashrate(
    cfg: SyntheticHashrate, n_steps: int, step_s: float, rng: np.random.Generator
) -> SeriesSignal:
    """Network hashrate [EH/s]: exponential growth with lognormal noise.

    A geometric Brownian motion whose mean follows ``initial_ehs * exp(growth_per_year * t)``
    (``growth_per_year`` is a continuously compounded rate: 0.35 -> x1.42 a year) and whose
    log wanders with ``volatility_per_year`` per square-root year (0.15 -> about 0.8 % from
    one day to the next).
    """
    _check_grid(n_steps, step_s)
    dt_years = step_s / SECONDS_PER_YEAR
    sigma = cfg.volatility_per_year
    moves = (cfg.growth_per_year - 0.5 * sigma**2) * dt_years + sigma * np.sqrt(
        dt_years
    ) * rng.standard_normal(n_steps - 1)
    log_path = np.concatenate([[0.0], np.cumsum(moves)])
    return SeriesSignal(cfg.initial_ehs * np.exp(log_path), step_s, 0.0, "network_hashrate", "EH/s")


def synthetic_fees(
    cfg: SyntheticFees, n_steps: int, step_s: float, rng: np.random.Generator
) -> SeriesSignal:
    """Mean transaction fees per block [BTC/block]: persistent lognormal.

    ``mean * exp(v z - v^2 / 2)``, ``z`` a unit-variance stationary AR(1) with an e-folding
    time of 3 days (fee markets stay busy or quiet for days), so the expected fee is the
    configured mean.
    """
    _check_grid(n_steps, step_s)
    phi = np.exp(-step_s / FEE_CORRELATION_TIME_S)
    z = stationary_ar1(rng.standard_normal((1, n_steps)), phi)[0]
    v = cfg.volatility
    values = cfg.mean_btc_per_block * np.exp(v * z - 0.5 * v * v)
    return SeriesSignal(values, step_s, 0.0, "fees", "BTC/block")


def synthetic_gpu_rental(
    cfg: SyntheticGpuRental, n_steps: int, step_s: float, rng: np.random.Generator
) -> SeriesSignal:
    """GPU rental price multiplier [-], mean 1: exponential of an Ornstein-Uhlenbeck process.

    ``log m`` reverts at ``reversion_per_day`` with instantaneous volatility
    ``volatility_per_day`` per square-root day, so its stationary standard deviation is
    ``volatility / sqrt(2 reversion)``; it starts from that stationary distribution and is
    shifted by half its variance so that the mean multiplier is 1.
    """
    _check_grid(n_steps, step_s)
    reversion = cfg.reversion_per_day
    sd = cfg.volatility_per_day / np.sqrt(2.0 * reversion)
    phi = np.exp(-reversion * step_s / SECONDS_PER_DAY)
    x = sd * stationary_ar1(rng.standard_normal((1, n_steps)), phi)[0]
    return SeriesSignal(np.exp(x - 0.5 * sd * sd), step_s, 0.0, "gpu_rental", "-")


def daily_price_shape(hour: np.ndarray) -> np.ndarray:
    """Daily shape in [-1, 1] of local hour ``hour`` [h]: -1 at 04:00, +1 at 17:00.

    A half cosine rises over the 13 h from the low to the high and another falls over the
    11 h back, so the shape is smooth, periodic and averages 0 over a day.
    """
    rise_h = PRICE_DAILY_HIGH_HOUR - PRICE_DAILY_LOW_HOUR
    since_low = np.mod(np.asarray(hour, dtype=float) - PRICE_DAILY_LOW_HOUR, 24.0)
    rising = -np.cos(np.pi * since_low / rise_h)
    falling = np.cos(np.pi * (since_low - rise_h) / (24.0 - rise_h))
    return np.where(since_low <= rise_h, rising, falling)


def seasonal_price_shape(day_of_year: np.ndarray) -> np.ndarray:
    """Seasonal shape of day of year [d], max 1 in early August, mean 0 over a year.

    Two harmonics locked to the summer peak: the second raises January over the spring and
    autumn troughs (early April, late November): a mild winter bump, about -0.28 vs -0.5.
    """
    angle = 2 * np.pi * (np.asarray(day_of_year, dtype=float) - PRICE_SEASON_PEAK_DAY) / 365.25
    return (0.75 * np.cos(angle) + 0.45 * np.cos(2 * angle)) / 1.2


def cpt_calendar(start: datetime, n_steps: int, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Local (CPT) hour of day [h] and day of year [d, 1-based, fractional] of each step start."""
    offsets = pd.to_timedelta(step_s * np.arange(n_steps), unit="s")
    local = (pd.Timestamp(_require_aware(start)) + offsets).tz_convert(CPT_ZONE)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60 + local.second.to_numpy() / 3600
    day_of_year = local.day_of_year.to_numpy() + hour / 24
    return hour.astype(float), day_of_year.astype(float)


def stationary_ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance stationary AR(1) along the last axis, driven by standard normal shocks.

    ``x[0] = e[0]``, ``x[i] = phi x[i-1] + sqrt(1 - phi^2) e[i]``; rows are independent
    series (their shocks may be correlated). Runs as one linear filter.
    """
    scaled = np.sqrt(1.0 - phi * phi) * shocks
    scaled[..., 0] = shocks[..., 0]
    return np.asarray(lfilter([1.0], [1.0, -phi], scaled, axis=-1))


def _correlated_normals(
    n_series: int, n_steps: int, correlation: float, rng: np.random.Generator
) -> np.ndarray:
    """Standard normals of shape (n_series, n_steps), pairwise correlated across series."""
    common = rng.standard_normal(n_steps)
    own = rng.standard_normal((n_series, n_steps))
    return np.sqrt(correlation) * common[None, :] + np.sqrt(1.0 - correlation) * own


def _spike_path(
    cfg: SyntheticPrices,
    calendar: np.ndarray,
    n_steps: int,
    step_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per-step time average of the spike adders [USD/MWh] (see :func:`synthetic_prices`)."""
    horizon_days = n_steps * step_s / SECONDS_PER_DAY
    count = int(rng.poisson(cfg.spike_rate_per_day * horizon_days))
    if count == 0 or cfg.spike_mean_usd_per_mwh == 0:
        return np.zeros(n_steps)
    weights = calendar**SPIKE_TIMING_EXPONENT
    total = weights.sum()
    probabilities = weights / total if total > 0 else np.full(n_steps, 1.0 / n_steps)
    steps = rng.choice(n_steps, size=count, p=probabilities)
    starts_s = (steps + rng.random(count)) * step_s
    durations_s = rng.exponential(cfg.spike_mean_duration_h * SECONDS_PER_HOUR, count)
    alpha = SPIKE_SIZE_TAIL_INDEX
    minimum = cfg.spike_mean_usd_per_mwh * (alpha - 1) / alpha
    heights = minimum * (1.0 + rng.pareto(alpha, count))
    return step_means_of_pulses(starts_s, durations_s, heights, n_steps, step_s)


def step_means_of_pulses(
    starts_s: np.ndarray,
    durations_s: np.ndarray,
    heights: np.ndarray,
    n_steps: int,
    step_s: float,
) -> np.ndarray:
    """Mean over each step ``[i step_s, (i+1) step_s)`` of a sum of rectangular pulses.

    Pulse ``k`` adds ``heights[k]`` on ``[starts_s[k], starts_s[k] + durations_s[k])``. The
    integral ``F(t)`` of the sum is piecewise linear with slope changes at the pulse edges,
    so ``F`` at every step edge comes from sorted edges and cumulative sums in
    O((pulses + steps) log pulses); the step mean is ``(F(t1) - F(t0)) / step_s``.
    """
    edges_s = np.concatenate([starts_s, starts_s + durations_s])
    slope_changes = np.concatenate([heights, -heights])
    order = np.argsort(edges_s, kind="stable")
    edges_s = edges_s[order]
    slope_changes = slope_changes[order]
    slope = np.concatenate([[0.0], np.cumsum(slope_changes)])
    offset = np.concatenate([[0.0], np.cumsum(slope_changes * edges_s)])
    grid_s = step_s * np.arange(n_steps + 1)
    passed = np.searchsorted(edges_s, grid_s, side="right")
    integral = grid_s * slope[passed] - offset[passed]
    return np.maximum(np.diff(integral) / step_s, 0.0)


def _check_grid(n_steps: int, step_s: float) -> None:
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if not step_s > 0:
        raise ValueError(f"step_s must be > 0, got {step_s}")


def _require_aware(start: datetime) -> datetime:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start must be timezone-aware, got {start.isoformat()}")
    return start
