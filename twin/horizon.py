"""What a look-ahead policy is told about the next hours: truth (oracle) or forecasts (mpc).

A provider turns the world at a dispatch step into :class:`optimizer.dispatch.HorizonData`
over ``horizon_steps`` dispatch intervals (fewer near the end of the run):

* :class:`TruthHorizon` reads the real signals ahead — prices, PUE, 4CP intervals, grid
  events, ancillary prices. Only the ``oracle`` policy gets it: the upper bound, never
  usable live.
* :class:`ForecastHorizon` (twin.forecast_horizon) sees only the past.

Both hold hashprice, spot rental prices and AI demand at their current values over the
horizon (the difficulty and BTC paths are not simulated ahead; demand enters as the GPUs
busy now per use), so oracle and mpc differ only in what they know of the grid.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from models.grid import Grid
from models.workload_types import BATCH, REALTIME, TRAINING
from optimizer.dispatch import HorizonData
from optimizer.interval_result import IntervalResult
from optimizer.types import Snapshot
from twin.scenario import Scenario


class HorizonProvider(Protocol):
    """Builds the horizon a look-ahead policy sees at dispatch step ``index``."""

    def horizon(
        self, snapshot: Snapshot, index: int, last_result: IntervalResult | None
    ) -> HorizonData: ...


class HorizonBase:
    """Shared parts: step counts, the held (not forecast) arrays, GPU demand now."""

    def __init__(
        self,
        scenario: Scenario,
        scheduler_pools: list[int],
        pue_mining: np.ndarray,
        pue_ai: np.ndarray,
        horizon_h: float,
    ) -> None:
        """``scheduler_pools``: the scheduler's index of each GPU pool, in the snapshot's
        pool order (optimizer.dispatch.pool_keys); PUE tables are [intervals, facilities]."""
        self.scenario = scenario
        self.step_s = float(scenario.dispatch_interval_s)
        self.n_intervals = scenario.interval_count
        self.horizon_steps = max(1, round(horizon_h * 3600.0 / self.step_s))
        self.scheduler_pools = scheduler_pools
        self.pue_mining = pue_mining
        self.pue_ai = pue_ai

    def steps_at(self, index: int) -> int:
        """Horizon length at step ``index``: the full horizon, cut at the end of the run."""
        return max(1, min(self.horizon_steps, self.n_intervals - index))

    def held_arrays(
        self, snapshot: Snapshot, index: int, steps: int, last_result: IntervalResult | None
    ) -> dict[str, np.ndarray]:
        """Arrays held at their present values: PUE from the ambient forecast table (weather
        is taken as known), hashprice, spot prices, GPU demand by use."""
        pools = [p for f in snapshot.facilities for p in f.gpu_pools]
        busy = np.zeros((len(pools), 3))
        if last_result is not None and pools:
            by_type = last_result.mean_busy()
            for column, pool in enumerate(self.scheduler_pools):
                busy[column] = by_type[pool, [REALTIME, BATCH, TRAINING]]
        rows = slice(index, index + steps)
        return {
            "pue_mining": self.pue_mining[rows],
            "pue_ai": self.pue_ai[rows],
            "hashprice_usd_per_ths_day": np.full(steps, snapshot.market.hashprice_usd_per_ths_day),
            "spot_usd_per_gpu_hour": np.tile(
                [p.rental_usd_per_gpu_hour for p in pools], (steps, 1)
            ),
            "must_serve_gpus": np.tile(busy[:, 0], (steps, 1)),
            "batch_gpus": np.tile(busy[:, 1], (steps, 1)),
            "training_gpus": np.tile(busy[:, 2], (steps, 1)),
        }


class TruthHorizon(HorizonBase):
    """The real future of every grid signal (perfect foresight)."""

    def __init__(
        self,
        grid: Grid,
        scenario: Scenario,
        scheduler_pools: list[int],
        pue_mining: np.ndarray,
        pue_ai: np.ndarray,
        horizon_h: float,
    ) -> None:
        super().__init__(scenario, scheduler_pools, pue_mining, pue_ai, horizon_h)
        self.grid = grid

    def horizon(
        self, snapshot: Snapshot, index: int, last_result: IntervalResult | None
    ) -> HorizonData:
        grid = self.grid
        steps = self.steps_at(index)
        t0 = snapshot.t_s
        t1 = t0 + steps * self.step_s
        facilities = self.scenario.facilities
        prices = np.column_stack(
            [grid.prices[f.settlement_point].over(t0, t1, self.step_s) for f in facilities]
        )
        times = t0 + self.step_s * np.arange(steps)
        four_cp = np.array([grid.is_four_cp(float(t)) for t in times], dtype=float)
        fraction = np.zeros((steps, len(facilities)))
        payment = np.zeros((steps, len(facilities)))
        for f, facility in enumerate(facilities):
            for i, t in enumerate(times):
                request = grid.curtail_request(facility.id, float(t))
                fraction[i, f] = request.fraction
                payment[i, f] = request.payment_usd_per_mwh
        ancillary = {
            name: signal.over(t0, t1, self.step_s)
            for name, signal in grid.ancillary.items()
            if signal.start_s <= t0 and signal.end_s >= t1
        }
        return HorizonData(
            step_s=self.step_s,
            price_usd_per_mwh=prices,
            four_cp_probability=four_cp,
            curtail_request_fraction=fraction,
            curtail_payment_usd_per_mwh=payment,
            ancillary_usd_per_mw_h=ancillary,
            **self.held_arrays(snapshot, index, steps, last_result),
        )


def make_horizon_provider(
    policy: object,
    grid: Grid,
    scenario: Scenario,
    scheduler_pools: list[int],
    pue_mining: np.ndarray,
    pue_ai: np.ndarray,
) -> HorizonProvider | None:
    """The provider a policy asks for through its ``horizon_source`` attribute (None for
    policies that look only at the present)."""
    source = getattr(policy, "horizon_source", None)
    if source is None:
        return None
    horizon_h = float(getattr(policy, "horizon_h", 24.0))
    if source == "truth":
        return TruthHorizon(grid, scenario, scheduler_pools, pue_mining, pue_ai, horizon_h)
    if source == "forecast":
        from twin.forecast_horizon import ForecastHorizon  # scikit-learn only when asked

        cfg = scenario.policy
        return ForecastHorizon(
            grid,
            scenario,
            scheduler_pools,
            pue_mining,
            pue_ai,
            horizon_h,
            forecaster=getattr(cfg, "forecaster", "boosted"),
            retrain_every_h=getattr(cfg, "retrain_every_h", 24.0),
            training_window_days=getattr(cfg, "training_window_days", 28.0),
        )
    raise ValueError(f"policy: unknown horizon source {source!r}")
