"""What a look-ahead policy is told about the next hours: truth (oracle) or forecasts (mpc).

A provider turns the world at a dispatch step into :class:`optimizer.dispatch.HorizonData`
over ``horizon_steps`` dispatch intervals (fewer near the end of the run):

* :class:`TruthHorizon` reads the real future — prices, PUE, 4CP intervals, grid events,
  ancillary prices, the BTC price and fee paths behind the hashprice, the GPU rental
  multiplier, and the realtime inference that will arrive. Only the ``oracle`` policy gets
  it: the upper bound, never usable live.
* :class:`ForecastHorizon` (twin.forecast_horizon) sees only the past; it holds hashprice,
  spot rental prices and AI demand at their current values over the horizon.

Batch and training demand enter as the GPUs busy now per use for both (the scheduler
decides when deferrable work runs), and the difficulty is held at its current value (the
next retarget depends on blocks not yet found).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from datasets.signals import Signal
from models.grid import Grid
from models.market import Market
from models.workload_types import BATCH, REALTIME, TRAINING
from models.workloads import WorkloadGenerator
from optimizer.dispatch import HorizonData
from optimizer.interval_result import IntervalResult
from optimizer.types import Snapshot
from twin.scenario import Scenario, WorkloadDemand


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
    """The real future of every grid signal, the BTC market and realtime demand (perfect
    foresight).

    Args:
        grid: the world's grid (prices, 4CP, events, ancillary prices).
        market: the world's market; only its signals are read, the chain is not advanced.
        generator: the world's job generator; future realtime arrivals are read from it
            (its blocks are keyed by index, so reading ahead changes no job).
    """

    def __init__(
        self,
        grid: Grid,
        market: Market,
        generator: WorkloadGenerator,
        scenario: Scenario,
        scheduler_pools: list[int],
        pue_mining: np.ndarray,
        pue_ai: np.ndarray,
        horizon_h: float,
    ) -> None:
        super().__init__(scenario, scheduler_pools, pue_mining, pue_ai, horizon_h)
        self.grid = grid
        self.market = market
        self.generator = generator
        realtime = scenario.workloads.demand.get("ai_inference_realtime")
        self.realtime_lookback_s = _longest_duration_s(realtime) if realtime else 0.0
        self._load_cache: tuple[float, np.ndarray] = (0.0, np.zeros(0))
        """(time of the first step [s], realtime load per step from it [GPUs])."""

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
        arrays = self.held_arrays(snapshot, index, steps, last_result)
        arrays["hashprice_usd_per_ths_day"] = self._hashprice(snapshot, times)
        arrays["spot_usd_per_gpu_hour"] = self._spot(snapshot, times, arrays)
        arrays["must_serve_gpus"] = self._must_serve(times, arrays["must_serve_gpus"])
        return HorizonData(
            step_s=self.step_s,
            price_usd_per_mwh=prices,
            four_cp_probability=four_cp,
            curtail_request_fraction=fraction,
            curtail_payment_usd_per_mwh=payment,
            ancillary_usd_per_mw_h=ancillary,
            **arrays,
        )

    def _hashprice(self, snapshot: Snapshot, times: np.ndarray) -> np.ndarray:
        """Hashprice at each step [USD/(TH/s)/day]: today's, scaled by the true BTC price
        and block reward (subsidy + fees) paths at today's difficulty."""
        now = snapshot.market
        btc = _over(self.market.btc_price, times, self.step_s)
        fees = _over(self.market.fees_btc_per_block, times, self.step_s)
        reward_now = now.block_subsidy_btc + now.fees_btc_per_block
        if now.btc_price_usd <= 0.0 or reward_now <= 0.0:
            return np.full(times.size, now.hashprice_usd_per_ths_day)
        scale = (btc / now.btc_price_usd) * ((now.block_subsidy_btc + fees) / reward_now)
        return now.hashprice_usd_per_ths_day * scale

    def _spot(
        self, snapshot: Snapshot, times: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> np.ndarray:
        """Spot rental price per pool at each step [USD/GPU-h]: today's, scaled by the true
        rental multiplier path."""
        now = snapshot.market.gpu_rental_multiplier
        held = arrays["spot_usd_per_gpu_hour"]
        if now <= 0.0 or held.size == 0:
            return held
        multiplier = _over(self.market.gpu_rental_multiplier, times, self.step_s)
        return held * (multiplier / now)[:, None]

    def _realtime_load(self, times: np.ndarray) -> np.ndarray:
        """:func:`realtime_load_gpus` at ``times``, computed for three horizons at a time
        and cached (reading the arrivals is the costly part)."""
        cache = self._load_cache
        first = round((times[0] - cache[0]) / self.step_s) if cache[1].size else -1
        if first < 0 or first + times.size > cache[1].size:
            window = self.step_s * np.arange(3 * self.horizon_steps) + times[0]
            window = window[window < self.n_intervals * self.step_s]
            cache = self._load_cache = (
                float(times[0]),
                realtime_load_gpus(self.generator, window, self.step_s, self.realtime_lookback_s),
            )
            first = 0
        return cache[1][first : first + times.size]

    def _must_serve(self, times: np.ndarray, held: np.ndarray) -> np.ndarray:
        """Realtime GPUs per pool at each step [GPUs]: the true realtime load (the GPUs of
        every realtime job that will be running, averaged over the step) shared out like
        the realtime GPUs busy now (evenly where none is)."""
        if held.size == 0 or self.realtime_lookback_s <= 0.0:
            return held
        load = self._realtime_load(times)
        now_total = float(held[0].sum())
        share = held[0] / now_total if now_total > 0 else np.full(held.shape[1], 1 / held.shape[1])
        return load[:, None] * share[None, :]


def _over(signal: Signal, times: np.ndarray, step_s: float) -> np.ndarray:
    """The signal at each step start."""
    return signal.over(float(times[0]), float(times[-1]) + step_s, step_s)[: times.size]


def realtime_load_gpus(
    generator: WorkloadGenerator, times: np.ndarray, step_s: float, lookback_s: float
) -> np.ndarray:
    """Mean GPUs held by realtime jobs over each step ``[t, t + step_s)`` [GPUs], from the
    jobs submitted since ``times[0] - lookback_s`` (not before the run starts), each
    running from submission for its work time (realtime inference starts at once when
    capacity allows)."""
    jobs = generator.arrivals(max(0.0, float(times[0]) - lookback_s), float(times[-1]) + step_s)
    is_realtime = jobs.type == REALTIME
    start = jobs.submit_s[is_realtime]
    gpus = jobs.gpus[is_realtime].astype(float)
    end = start + jobs.work_s[is_realtime]
    edges = np.append(times, times[-1] + step_s)
    held_gpu_s = _ramp_integral(start, gpus, edges) - _ramp_integral(end, gpus, edges)
    return np.diff(held_gpu_s) / step_s


def _ramp_integral(at_s: np.ndarray, weight: np.ndarray, edges_s: np.ndarray) -> np.ndarray:
    """``sum_j weight_j * max(0, t - at_j)`` at each edge ``t`` [weight-seconds], by sorting:
    O((jobs + edges) log jobs) instead of a jobs x edges matrix."""
    order = np.argsort(at_s, kind="stable")
    at_sorted = at_s[order]
    weight_sorted = weight[order]
    weight_sum = np.concatenate([[0.0], np.cumsum(weight_sorted)])
    weighted_time = np.concatenate([[0.0], np.cumsum(weight_sorted * at_sorted)])
    count = np.searchsorted(at_sorted, edges_s, side="right")
    return edges_s * weight_sum[count] - weighted_time[count]


def _longest_duration_s(demand: WorkloadDemand) -> float:
    """How far back a realtime job can have started and still run now [s]: the 99.87 %
    quantile of the lognormal duration (three log-standard deviations)."""
    return float(demand.duration_median_s * np.exp(3.0 * demand.duration_sigma))


def make_horizon_provider(
    policy: object,
    grid: Grid,
    market: Market,
    generator: WorkloadGenerator,
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
        return TruthHorizon(
            grid, market, generator, scenario, scheduler_pools, pue_mining, pue_ai, horizon_h
        )
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
