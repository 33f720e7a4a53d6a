"""Capacity planning from a run: headroom per facility now, and when power or GPU capacity
runs out if AI demand grows at a steady rate.

From a run's ``timeseries.parquet`` (one row per facility per interval), per facility:

- **GPU demand** ``D``: a high percentile (P95 by default) over the run of the GPUs busy
  with customer work (inference + batch + training; spot rentals and idle GPUs are
  opportunistic, not demand). Installed GPUs ``N`` are every GPU in any state.
- **Firm AI power** ``P``: the same percentile of the AI work's IT power times the AI
  hall's PUE [MW]. Mining is curtailable, so it yields its power to AI as AI grows; the
  power headroom is the cap minus the firm AI power (``cap - P``), and the mining power
  left is what remains of it.
- **Growth**: demand compounds at ``g`` per year, ``D(t) = D (1 + g)^t``. GPUs run out at
  ``t = ln(N / D) / ln(1 + g)`` years; power runs out (GPUs added as needed, each drawing
  what today's busy GPUs draw) at ``t = ln(cap / P) / ln(1 + g)``. Already out: 0; no
  demand or no growth: never (``None``).

Percentiles, not peaks, so that one odd interval does not set the plan (``percentile=100``
gives the peak).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from twin.recorder import GPU_STATE_COLUMNS

AI_WORK_POWER_COLUMNS = ("power_inference_mw", "power_batch_mw", "power_training_mw")
"""IT power of customer AI work [MW]."""
AI_WORK_GPU_COLUMNS = ("gpus_inference", "gpus_batch", "gpus_training")
"""GPUs busy with customer AI work."""


class CapacityError(ValueError):
    """Bad capacity-planning input (names the argument or column and the reason)."""


@dataclass(frozen=True, slots=True)
class FacilityCapacity:
    """One facility's capacity, demand and runway.

    Attributes:
        facility_id: the facility.
        power_cap_mw: interconnect cap [MW].
        power_now_mw: facility draw at the percentile [MW] (mining included).
        firm_ai_power_mw: AI work's power with PUE at the percentile [MW].
        power_headroom_mw: cap minus firm AI power [MW] (what mining and growth share).
        gpus_installed: GPUs at the facility [-].
        gpus_busy: GPUs busy with customer work at the percentile [-].
        gpu_headroom: installed minus busy [-].
        gpus_run_out_years: years until demand exceeds the installed GPUs (0: already;
            None: never at this growth).
        power_runs_out_years: years until firm AI power exceeds the cap (0: already; None:
            never).
    """

    facility_id: str
    power_cap_mw: float
    power_now_mw: float
    firm_ai_power_mw: float
    power_headroom_mw: float
    gpus_installed: int
    gpus_busy: float
    gpu_headroom: float
    gpus_run_out_years: float | None
    power_runs_out_years: float | None


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    """The capacity of every facility under one growth assumption.

    Attributes:
        growth_per_year: AI demand growth [fraction per year].
        percentile: percentile of the run's intervals used for demand [0-100].
        horizon_years: span of the projection [years].
        facilities: one entry per facility, in the run's order.
        projection: one row per facility and month: ``facility_id``, ``years``,
            ``gpus_needed``, ``gpus_installed``, ``ai_power_mw``, ``power_cap_mw``,
            ``mining_room_mw`` (cap left for mining) [MW].
    """

    growth_per_year: float
    percentile: float
    horizon_years: float
    facilities: tuple[FacilityCapacity, ...]
    projection: pl.DataFrame


def plan_capacity(
    timeseries: pl.DataFrame,
    growth_per_year: float,
    *,
    percentile: float = 95.0,
    horizon_years: float = 5.0,
) -> CapacityPlan:
    """The capacity plan of a run's ``timeseries`` (see the module docstring).

    Raises:
        CapacityError: a growth of -100 % or less, a percentile outside 0-100, a horizon
            that is not positive, or a timeseries without the columns the plan needs.
    """
    if not growth_per_year > -1.0 or not math.isfinite(growth_per_year):
        raise CapacityError(f"growth: must be above -100 % a year, got {growth_per_year:.0%}")
    if not 0.0 <= percentile <= 100.0:
        raise CapacityError(f"percentile: must be within 0-100, got {percentile}")
    if not 0.0 < horizon_years <= 50.0:
        raise CapacityError(f"horizon: must be within (0, 50] years, got {horizon_years}")
    needed = {
        "facility_id",
        "power_cap_mw",
        "power_total_mw",
        "pue_ai",
        *AI_WORK_POWER_COLUMNS,
        *GPU_STATE_COLUMNS,
    }
    missing = sorted(needed - set(timeseries.columns))
    if missing:
        raise CapacityError(f"timeseries: missing columns {', '.join(missing)}")
    if timeseries.is_empty():
        raise CapacityError("timeseries: no intervals recorded")
    facility_ids = list(dict.fromkeys(timeseries["facility_id"].to_list()))
    facilities = tuple(
        _facility(
            facility_id,
            timeseries.filter(pl.col("facility_id") == facility_id),
            growth_per_year,
            percentile,
        )
        for facility_id in facility_ids
    )
    return CapacityPlan(
        growth_per_year=growth_per_year,
        percentile=percentile,
        horizon_years=horizon_years,
        facilities=facilities,
        projection=_projection(facilities, growth_per_year, horizon_years),
    )


def years_until(demand: float, capacity: float, growth_per_year: float) -> float | None:
    """Years until ``demand`` compounding at ``growth_per_year`` exceeds ``capacity``: 0
    when it already reaches it (busy GPUs never exceed the installed ones, so a full
    facility has unserved demand already), None when it never will."""
    if demand >= capacity:
        return 0.0
    if demand <= 0.0 or growth_per_year <= 0.0:
        return None
    return math.log(capacity / demand) / math.log1p(growth_per_year)


def _facility(
    facility_id: str, rows: pl.DataFrame, growth: float, percentile: float
) -> FacilityCapacity:
    def column(name: str) -> np.ndarray:
        return rows[name].fill_null(0.0).fill_nan(0.0).to_numpy()

    cap_mw = float(np.nanmax(column("power_cap_mw")))
    firm_mw = sum(column(c) for c in AI_WORK_POWER_COLUMNS) * column("pue_ai")
    busy = sum(column(c) for c in AI_WORK_GPU_COLUMNS)
    installed = round(float(np.max(sum(column(c) for c in GPU_STATE_COLUMNS))))
    firm_ai_power_mw = float(np.percentile(firm_mw, percentile))
    gpus_busy = float(np.percentile(busy, percentile))
    return FacilityCapacity(
        facility_id=facility_id,
        power_cap_mw=cap_mw,
        power_now_mw=float(np.percentile(column("power_total_mw"), percentile)),
        firm_ai_power_mw=firm_ai_power_mw,
        power_headroom_mw=cap_mw - firm_ai_power_mw,
        gpus_installed=installed,
        gpus_busy=gpus_busy,
        gpu_headroom=installed - gpus_busy,
        gpus_run_out_years=years_until(gpus_busy, installed, growth),
        power_runs_out_years=years_until(firm_ai_power_mw, cap_mw, growth),
    )


def _projection(
    facilities: Sequence[FacilityCapacity], growth: float, horizon_years: float
) -> pl.DataFrame:
    years = np.arange(0.0, horizon_years + 1e-9, 1.0 / 12.0)
    factor = (1.0 + growth) ** years
    frames = []
    for f in facilities:
        ai_power_mw = f.firm_ai_power_mw * factor
        frames.append(
            pl.DataFrame(
                {
                    "facility_id": [f.facility_id] * len(years),
                    "years": years,
                    "gpus_needed": f.gpus_busy * factor,
                    "gpus_installed": np.full(len(years), float(f.gpus_installed)),
                    "ai_power_mw": ai_power_mw,
                    "power_cap_mw": np.full(len(years), f.power_cap_mw),
                    "mining_room_mw": np.maximum(0.0, f.power_cap_mw - ai_power_mw),
                }
            )
        )
    return pl.concat(frames)
