"""The control loop: every dispatch interval, observe -> decide -> act -> advance -> record.

* **observe** — drivers' readings, signals and market state become a typed
  :class:`optimizer.types.Snapshot` (no future data in it); a driver that keeps device
  counts itself (the simulated ones, see :class:`ClassCountingAsicDriver`) is asked for
  those instead of a full read, which copies every device's columns;
* **decide** — the policy turns it into a :class:`optimizer.types.Plan`;
* **act** — the plan becomes driver commands (miner counts and power targets) and scheduler
  limits (GPUs that may be busy inside the GPU power budget, TH/s of mining capacity);
* **advance** — new workloads arrive, the scheduler plays the interval, the world's physics
  steps the fleets (in live mode the real world does this part); the GPUs' use labels are
  the world's bookkeeping of the scheduler's result and go on the fleet in one call;
* **record** — money, energy and state per facility go to the recorder;
* **health** (simulation) — injected faults act on the world at each tick's start
  (:mod:`twin.fault_injection`: devices out, impaired miners, cut-off sites, stale prices,
  a silent pool), and after recording the health monitor (:mod:`twin.health`) turns the
  interval into telemetry and alerts, which take devices out of service.

Only this module composes models, optimizer and drivers; it reads time from the ``t_s`` it
is given, which the engine takes from ``env.now``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from drivers.base import (
    AsicCommand,
    AsicDriver,
    AsicReadings,
    ClassCountingAsicDriver,
    FailureCountingGpuDriver,
    GpuDriver,
    GpuReadings,
)
from models.customers import Customer
from models.facility import ambient_c, marginal_energy_usd_per_mwh, pue
from models.fleet import (
    AsicFleet,
    AsicState,
    AsicStepResult,
    GpuFleet,
    GpuHealth,
    GpuStepResult,
    GpuUse,
)
from models.grid import CurtailRequest, Grid
from models.job_table import JobBatch, JobTable
from models.market import Market
from models.workload_types import TYPE_COUNT, type_code
from models.workloads import WorkloadGenerator
from optimizer.interval_result import IntervalResult
from optimizer.policies import Policy
from optimizer.pools import Pool
from optimizer.power import gpu_busy_limits, within_cap
from optimizer.scheduler import Scheduler
from optimizer.types import (
    AsicClassState,
    FacilityPlan,
    FacilityState,
    GpuPoolState,
    MarketState,
    Plan,
    Snapshot,
)
from twin.accounting import IntervalInputs, settle_interval
from twin.health import HealthMonitor
from twin.horizon import make_horizon_provider
from twin.recorder import Recorder
from twin.scenario import Facility, Scenario
from twin.site_conditions import SiteConditions

REALTIME = type_code("ai_inference_realtime")
BATCH = type_code("ai_inference_batch")
TRAINING = type_code("model_training")


@dataclass
class World:
    """Everything the simulated world holds: signals behind market and grid, fleets, jobs."""

    scenario: Scenario
    facility_ids: list[str]
    asic_fleet: AsicFleet
    gpu_fleet: GpuFleet
    market: Market
    grid: Grid
    jobs: JobTable
    generator: WorkloadGenerator
    scheduler: Scheduler
    customers: list[Customer]
    gpu_type_ids: list[str]
    pools: list[Pool]
    ambient_c: np.ndarray = field(repr=False)
    """Outdoor temperature per interval and facility [°C], shape [intervals, facilities]."""


@dataclass(frozen=True, slots=True)
class _GpuPoolMap:
    """Where a scheduler GPU pool lives in the GPU fleet."""

    scheduler_index: int
    facility: int
    type_id: str
    fleet_pool: int
    installed: int
    """GPUs installed in the pool [-]."""


@dataclass(frozen=True, slots=True)
class _PoolMap:
    """Where each scheduler pool lives in the GPU fleet (or that it is an ASIC pool)."""

    scheduler_index: int
    facility: int
    type_id: str | None
    fleet_pool: int


class Controller:
    """Runs the loop for one world with one policy and one pair of drivers."""

    def __init__(
        self,
        world: World,
        policy: Policy,
        asic_driver: AsicDriver,
        gpu_driver: GpuDriver,
        recorder: Recorder,
        health: HealthMonitor | None = None,
    ) -> None:
        """``health``: the fault injector and health monitor of a simulated world (None:
        no faults, no telemetry, no detection)."""
        self.world = world
        self.health = health
        self.injector = health.injector if health is not None else None
        self.policy = policy
        self.asic_driver = asic_driver
        self.gpu_driver = gpu_driver
        self.recorder = recorder
        scenario = world.scenario
        self.facilities: list[Facility] = list(scenario.facilities)
        self.interval_s = float(scenario.dispatch_interval_s)
        self.n_intervals = scenario.interval_count
        self.asic_models = [spec.model_id for spec in world.asic_fleet.models]
        self.asic_specs = {spec.model_id: spec for spec in world.asic_fleet.models}
        self.gpu_specs = {spec.type_id: spec for spec in world.gpu_fleet.types}
        self._pool_map = _pool_maps(world)
        self._gpu_entries = _gpu_pool_maps(world, self._pool_map)
        n_facilities = len(self.facilities)
        self._entries_by_facility = [
            [e for e in self._pool_map if e.facility == f] for f in range(n_facilities)
        ]
        self._gpu_entries_by_facility = [
            [e for e in self._gpu_entries if e.facility == f] for f in range(n_facilities)
        ]
        pool_facility = np.array([e.facility for e in self._pool_map], dtype=np.int64)
        self._pool_type_cell = pool_facility[:, None] * TYPE_COUNT + np.arange(TYPE_COUNT)
        """Cell ``facility * TYPE_COUNT + type`` of each (scheduler pool, type) [-]."""
        self._pue_mining, self._pue_ai = _pue_tables(self.facilities, world.ambient_c)
        self._four_cp_rate_usd_per_kw_year = scenario.grid.four_cp.rate_usd_per_kw_year
        self._transfer_usd_per_gb = scenario.scheduling.routing.transfer_usd_per_gb
        self._asic_state_counts = _asic_counter(asic_driver, len(self.facilities), self.asic_models)
        self._gpu_failed_counts = _gpu_failure_counter(gpu_driver, len(self.facilities))
        self._class_cache: dict[int, tuple[list[list[int]], tuple[AsicClassState, ...]]] = {}
        self._requests: list[CurtailRequest] = []
        self._last_mw = np.zeros(len(self.facilities))
        self._price_history: list[list[float]] = [[] for _ in self.facilities]
        """Prices the controller saw per facility, the last hour's worth [USD/MWh]."""
        self._paid_fraction = [1.0] * len(self.facilities)
        """Share of each facility's hashrate the pool accepted this interval [-]."""
        self._true_price = [0.0] * len(self.facilities)
        """The settlement point price of the interval per facility, what energy settles at
        even when the controller saw a stale one [USD/MWh]."""
        self._running_by_pool = np.zeros(len(world.pools), dtype=np.int64)
        self.last_plan: Plan | None = None
        self.command_failures = 0
        self.commands_sent = 0
        self.cap_guard_trims = 0
        """Plans the controller had to trim to fit a cap (0 for a sound policy)."""
        self._last_result: IntervalResult | None = None
        self._sent_fraction: dict[tuple[int, str], float] = {}
        self._site_conditions = SiteConditions(
            world.pools,
            {
                index: self.gpu_specs[type_id].tdp_w / 1000.0
                for index, type_id in enumerate(world.gpu_type_ids)
                if type_id in self.gpu_specs
            },
            scenario.scheduling.deferral,
            self.interval_s,
        )
        self.horizon_provider = make_horizon_provider(
            policy,
            world.grid,
            world.market,
            world.generator,
            scenario,
            [e.scheduler_index for entries in self._gpu_entries_by_facility for e in entries],
            self._pue_mining,
            self._pue_ai,
        )

    # ------------------------------------------------------------------ loop

    def loop(
        self, env: simpy.Environment, progress: Callable[[float], None] | None = None
    ) -> Generator[simpy.Event, Any, None]:
        """The SimPy process: one step per dispatch interval until the scenario ends."""
        for index in range(self.n_intervals):
            self.step(index, float(env.now))
            if progress is not None:
                progress((index + 1) * self.interval_s / 86400.0)
            yield env.timeout(self.interval_s)

    def step(self, index: int, t0_s: float) -> None:
        """One dispatch interval starting at ``t0_s`` [s]."""
        if self.injector is not None:
            self.injector.begin_interval(t0_s, t0_s + self.interval_s)
        snapshot = self.observe(index, t0_s)
        if self.horizon_provider is not None:
            horizon = self.horizon_provider.horizon(snapshot, index, self._last_result)
            snapshot = replace(snapshot, horizon=horizon)
        plan = self._guard(snapshot, self.policy.decide(snapshot))
        if self.health is not None and self.health.mining_paused.any():
            plan = self._pause_mining(plan)
        self.last_plan = plan
        limits = self.act(snapshot, plan)
        self.advance_and_record(index, snapshot, plan, limits)

    def finish(self, t_end_s: float) -> None:
        """Release the drivers at the end of a run."""
        self.asic_driver.close()
        self.gpu_driver.close()

    # ------------------------------------------------------------------ observe

    def observe(self, index: int, t0_s: float) -> Snapshot:
        """Readings, signals and market state at ``t0_s`` as a snapshot."""
        world = self.world
        market = world.market.state_at(t0_s)
        counts = self._asic_state_counts().tolist()
        failed_gpus, type_ids = self._gpu_failed_counts()
        failed_by_type = failed_gpus.tolist()
        busy = world.scheduler.busy.tolist()
        ancillary = world.grid.ancillary_usd_per_mw_h(t0_s)
        four_cp = world.grid.is_four_cp(t0_s)
        pue_mining = self._pue_mining[index].tolist()
        pue_ai = self._pue_ai[index].tolist()
        ambient = world.ambient_c[index].tolist()
        states = []
        self._requests = []
        for f, facility in enumerate(self.facilities):
            self._true_price[f] = world.grid.price_usd_per_mwh(facility.settlement_point, t0_s)
            price = self._observed_price(f, t0_s, self._true_price[f])
            request = world.grid.curtail_request(facility.id, t0_s)
            self._requests.append(request)
            states.append(
                FacilityState(
                    facility_id=facility.id,
                    price_usd_per_mwh=price,
                    marginal_energy_usd_per_mwh=marginal_energy_usd_per_mwh(
                        facility.contract, float(self._last_mw[f]), price
                    ),
                    power_cap_mw=facility.power_cap_mw,
                    pue_mining=pue_mining[f],
                    pue_ai=pue_ai[f],
                    ambient_c=ambient[f],
                    asic_classes=self._asic_classes(f, counts[f]),
                    gpu_pools=self._gpu_pools(f, market, failed_by_type, type_ids, busy),
                    curtail_request_fraction=request.fraction,
                    four_cp_interval=four_cp,
                )
            )
        return Snapshot(t0_s, self.interval_s, market, tuple(states), ancillary)

    def _observed_price(self, f: int, t0_s: float, price_usd_per_mwh: float) -> float:
        """The price the controller uses for facility ``f`` [USD/MWh]: the feed's, or while
        the feed is stale the highest price seen in the last hour (a conservative fallback:
        it curtails rather than mines at an unknown price)."""
        if self.injector is None:
            return price_usd_per_mwh
        history = self._price_history[f]
        if self.injector.site_active("price_feed_gap", f, t0_s) and history:
            return max(history)
        history.append(price_usd_per_mwh)
        del history[: -max(1, round(3600.0 / self.interval_s))]
        return price_usd_per_mwh

    def _pause_mining(self, plan: Plan) -> Plan:
        """Sleep every miner of the facilities whose pool accepts no shares."""
        assert self.health is not None  # the caller checks; narrows the type
        paused = self.health.mining_paused
        facilities = tuple(
            replace(p, asic_active=dict.fromkeys(p.asic_active, 0)) if paused[f] else p
            for f, p in enumerate(plan.facilities)
        )
        return replace(plan, facilities=facilities)

    def _partitioned(self, f: int, t_s: float) -> bool:
        """Whether the controller has lost contact with facility ``f`` at ``t_s``."""
        return self.injector is not None and self.injector.site_active("network_partition", f, t_s)

    def _asic_classes(self, f: int, counts: list[list[int]]) -> tuple[AsicClassState, ...]:
        """One state per model present at facility ``f``; ``counts[m][state]`` [-]. Reuses
        the previous tuple while the counts are unchanged (they change only on commands)."""
        cached = self._class_cache.get(f)
        if cached is not None and cached[0] == counts:
            return cached[1]
        classes = []
        for m, model_id in enumerate(self.asic_models):
            row = counts[m]
            total = sum(row)
            if total == 0:
                continue
            spec = self.asic_specs[model_id]
            classes.append(
                AsicClassState(
                    model_id=model_id,
                    efficiency_j_per_th=spec.efficiency_j_per_th,
                    hashrate_ths_each=spec.hashrate_ths,
                    power_w_each=spec.power_w,
                    sleep_power_w_each=spec.sleep_power_w,
                    min_power_fraction=spec.min_power_fraction,
                    count=total,
                    active=row[AsicState.ACTIVE],
                    sleeping=row[AsicState.SLEEPING],
                    failed=row[AsicState.FAILED],
                )
            )
        result = tuple(classes)
        self._class_cache[f] = (counts, result)
        return result

    def _gpu_pools(
        self,
        f: int,
        market: MarketState,
        failed: list[list[int]],
        type_ids: tuple[str, ...],
        busy: list[float],
    ) -> tuple[GpuPoolState, ...]:
        pools = []
        multiplier = market.gpu_rental_multiplier
        for entry in self._gpu_entries_by_facility[f]:
            spec = self.gpu_specs[entry.type_id]
            pools.append(
                GpuPoolState(
                    type_id=entry.type_id,
                    tdp_w=spec.tdp_w,
                    idle_w=spec.idle_w,
                    count=entry.installed,
                    busy=round(busy[entry.scheduler_index]),
                    failed=failed[f][type_ids.index(entry.type_id)],
                    rental_usd_per_gpu_hour=spec.rental_index_usd_per_gpu_hour * multiplier,
                )
            )
        return tuple(pools)

    # ------------------------------------------------------------------ act

    def _guard(self, snapshot: Snapshot, plan: Plan) -> Plan:
        """Trim any facility plan that would exceed its cap (optimizer.power.within_cap)."""
        guarded = []
        for state in snapshot.facilities:
            facility_plan = plan.facility(state.facility_id)
            safe = within_cap(state, facility_plan)
            self.cap_guard_trims += safe is not facility_plan
            guarded.append(safe)
        return replace(plan, facilities=tuple(guarded))

    def act(self, snapshot: Snapshot, plan: Plan) -> np.ndarray:
        """Send miner commands through the driver; return the scheduler's pool limits."""
        commands = []
        for f, state in enumerate(snapshot.facilities):
            if self._partitioned(f, snapshot.t_s):
                continue  # not delivered: the site's miners keep their last setpoints
            facility_plan = plan.facility(state.facility_id)
            for cls in state.asic_classes:
                target = facility_plan.asic_active[cls.model_id]
                fraction = facility_plan.asic_power_fraction[cls.model_id]
                key = (f, cls.model_id)
                if target != cls.active or fraction != self._sent_fraction.get(key, 1.0):
                    commands.append(AsicCommand(f, cls.model_id, target, fraction))
                    self._sent_fraction[key] = fraction
        if commands:
            result = self.asic_driver.apply(commands)
            self.commands_sent += len(commands)
            self.command_failures += len(result.failures)
        return self._limits(snapshot, plan)

    def _limits(self, snapshot: Snapshot, plan: Plan) -> np.ndarray:
        limits = np.zeros(len(self._pool_map))
        for f, state in enumerate(snapshot.facilities):
            facility_plan = plan.facility(state.facility_id)
            gpu_limits = gpu_busy_limits(
                state.gpu_pools, facility_plan.gpu_power_budget_mw, state.pue_ai
            )
            hashrate_ths = sum(
                facility_plan.asic_active[c.model_id]
                * c.hashrate_ths_each
                * facility_plan.asic_power_fraction[c.model_id]
                ** self.asic_specs[c.model_id].efficiency_exponent
                for c in state.asic_classes
            )
            for entry in self._entries_by_facility[f]:
                if entry.type_id is None:
                    limits[entry.scheduler_index] = hashrate_ths
                else:
                    limits[entry.scheduler_index] = gpu_limits[entry.type_id]
            if self._partitioned(f, snapshot.t_s):
                busy = self.world.scheduler.busy
                for entry in self._entries_by_facility[f]:  # no new work where we cannot reach
                    index = entry.scheduler_index
                    limits[index] = min(limits[index], float(busy[index]))
        return limits

    # ------------------------------------------------------------------ advance + record

    def advance_and_record(
        self, index: int, snapshot: Snapshot, plan: Plan, limits: np.ndarray
    ) -> None:
        """Play the interval in the world, then account and record each facility.

        GPU use labels are the world's bookkeeping of what the scheduler ran, so they go on
        the simulated fleet directly (a real GPU driver has no such labels to set).
        """
        world = self.world
        t0_s, dt_s = snapshot.t_s, self.interval_s
        world.jobs.append(self.arrivals(t0_s, t0_s + dt_s))
        energy, deferred = self._site_conditions.update(snapshot)
        result = world.scheduler.run_interval(t0_s, t0_s + dt_s, limits, energy, deferred)
        self._last_result = result
        self._running_by_pool += (result.started - result.completed - result.preempted).sum(axis=1)
        ambient = world.ambient_c[index]
        facility_plans = [plan.facility(state.facility_id) for state in snapshot.facilities]
        spot = self._spot_gpus(facility_plans, result, limits)
        busy_gpu_s = self._busy_gpu_s(result, spot)
        world.gpu_fleet.apply_uses_all(busy_gpu_s / dt_s)
        asic_step = world.asic_fleet.step(t0_s, dt_s, ambient)
        if self.injector is not None:
            asic_step = self.injector.asic_step(asic_step, t0_s, dt_s)
            self._paid_fraction = [
                1.0 - self.injector.site_share("pool_outage", f, t0_s, t0_s + dt_s)
                for f in range(len(self.facilities))
            ]
        gpu_step = world.gpu_fleet.step(t0_s, dt_s, busy_gpu_s, ambient)
        totals = self._facility_totals(snapshot, result, spot, asic_step, gpu_step)
        for f in range(len(self.facilities)):
            row = self._facility_row(f, snapshot, totals)
            self._last_mw[f] = row["power_total_mw"]
            self.recorder.record(index, f, row)
        if self.health is not None:
            self.health.end_interval(t0_s, dt_s, np.asarray(totals.hashrate_ths))

    def arrivals(self, t0_s: float, t1_s: float) -> JobBatch:
        """Jobs submitted in ``[t0_s, t1_s)`` [s], sorted by submission time: the scenario's
        demand (a service adds its customers' workloads here)."""
        return self.world.generator.arrivals(t0_s, t1_s)

    def _facility_totals(
        self,
        snapshot: Snapshot,
        result: IntervalResult,
        spot: np.ndarray,
        asic_step: AsicStepResult,
        gpu_step: GpuStepResult,
    ) -> _FacilityStepTotals:
        """The interval's world results summed per facility, as plain lists."""
        n_facilities = len(self.facilities)
        revenue_by_type: np.ndarray = np.bincount(
            self._pool_type_cell.ravel(),
            weights=result.revenue_usd.ravel(),
            minlength=n_facilities * TYPE_COUNT,
        ).reshape(n_facilities, TYPE_COUNT)
        running = np.bincount(
            self._pool_type_cell[:, 0] // TYPE_COUNT,
            weights=self._running_by_pool,
            minlength=n_facilities,
        )
        spot_by_facility, spot_usd_per_gpu_hour = self._spot_by_facility(snapshot, spot)
        transfer_gb = np.bincount(
            self._pool_type_cell[:, 0] // TYPE_COUNT,
            weights=result.transfer_gb,
            minlength=n_facilities,
        )
        return _FacilityStepTotals(
            asic_it_mw=(asic_step.mean_power_kw.sum(axis=1) / 1000.0).tolist(),
            hashrate_ths=asic_step.mean_hashrate_ths.sum(axis=1).tolist(),
            asics_active=asic_step.active.sum(axis=1).tolist(),
            asics_sleeping=asic_step.sleeping.sum(axis=1).tolist(),
            asics_failed=asic_step.failed.sum(axis=1).tolist(),
            gpu_kw_by_use=gpu_step.by_facility(gpu_step.mean_power_kw_by_use).tolist(),
            gpus_by_use=gpu_step.by_facility(gpu_step.gpus_by_use).tolist(),
            gpus_failed=gpu_step.by_facility(gpu_step.failed).tolist(),
            revenue_by_type=revenue_by_type.tolist(),
            running_jobs=running.tolist(),
            spot_gpus=spot_by_facility,
            spot_usd_per_gpu_hour=spot_usd_per_gpu_hour,
            queued_jobs=float(result.queued_jobs),
            transfer_gb=transfer_gb.tolist(),
        )

    def _facility_row(
        self, f: int, snapshot: Snapshot, totals: _FacilityStepTotals
    ) -> dict[str, float]:
        """Settle facility ``f`` for the interval and return its recorder row."""
        facility = self.facilities[f]
        state = snapshot.facilities[f]
        request = self._requests[f]
        full_mining_it_mw = self._full_mining_it_mw(state)
        kw = totals.gpu_kw_by_use[f]
        revenue = totals.revenue_by_type[f]
        gpus = totals.gpus_by_use[f]
        market = snapshot.market
        offer_mw, offer_price = self._ancillary_offer(snapshot, facility.id)
        inputs = IntervalInputs(
            dt_s=self.interval_s,
            price_usd_per_mwh=self._true_price[f],
            contract=facility.contract,
            pue_mining=state.pue_mining,
            pue_ai=state.pue_ai,
            it_mining_mw=totals.asic_it_mw[f],
            it_inference_mw=kw[GpuUse.INFERENCE] / 1000.0,
            it_batch_mw=kw[GpuUse.BATCH] / 1000.0,
            it_training_mw=kw[GpuUse.TRAINING] / 1000.0,
            it_spot_mw=kw[GpuUse.SPOT] / 1000.0,
            it_gpu_idle_mw=(kw[GpuUse.IDLE] + kw[GpuUse.OFF]) / 1000.0,
            hashrate_ths=totals.hashrate_ths[f] * self._paid_fraction[f],
            hashprice_usd_per_ths_day=market.hashprice_usd_per_ths_day,
            revenue_ai_inference_usd=revenue[REALTIME] + revenue[BATCH],
            revenue_training_usd=revenue[TRAINING],
            gpus_spot=totals.spot_gpus[f],
            spot_usd_per_gpu_hour=totals.spot_usd_per_gpu_hour[f],
            flexible_baseline_mw=full_mining_it_mw * state.pue_mining,
            curtail_fraction=request.fraction,
            curtail_payment_usd_per_mwh=request.payment_usd_per_mwh,
            four_cp=state.four_cp_interval,
            four_cp_rate_usd_per_kw_year=self._four_cp_rate_usd_per_kw_year,
            ancillary_offer_mw=offer_mw,
            ancillary_price_usd_per_mw_h=offer_price,
            data_transfer_usd=totals.transfer_gb[f] * self._transfer_usd_per_gb,
        )
        row = settle_interval(inputs)
        row.update(
            price_usd_per_mwh=self._true_price[f],
            ambient_c=state.ambient_c,
            pue_mining=state.pue_mining,
            pue_ai=state.pue_ai,
            power_cap_mw=state.power_cap_mw,
            curtailed_mw=max(0.0, full_mining_it_mw - inputs.it_mining_mw),
            hashrate_ths=totals.hashrate_ths[f],
            asics_active=float(totals.asics_active[f]),
            asics_sleeping=float(totals.asics_sleeping[f]),
            asics_failed=float(totals.asics_failed[f]),
            gpus_inference=gpus[GpuUse.INFERENCE],
            gpus_batch=gpus[GpuUse.BATCH],
            gpus_training=gpus[GpuUse.TRAINING],
            gpus_spot=gpus[GpuUse.SPOT],
            gpus_idle=gpus[GpuUse.IDLE],
            gpus_failed=totals.gpus_failed[f],
            btc_price_usd=market.btc_price_usd,
            hashprice_usd_per_ths_day=market.hashprice_usd_per_ths_day,
            difficulty=market.difficulty,
            ancillary_offer_mw=offer_mw,
            four_cp=float(state.four_cp_interval),
            grid_event_fraction=request.fraction,
            queued_jobs=totals.queued_jobs,
            running_jobs=totals.running_jobs[f],
        )
        return row

    def _ancillary_offer(self, snapshot: Snapshot, facility_id: str) -> tuple[float, float]:
        """Capacity the plan offers across services [MW] and its mean price [USD/MW-h].

        Offers are paid their capacity price; deployments (and their curtailment) are not
        simulated yet, so an offer earns without being called."""
        if self.last_plan is None:
            return 0.0, 0.0
        offers = self.last_plan.facility(facility_id).ancillary_offer_mw
        total_mw = sum(offers.values())
        if total_mw <= 0:
            return 0.0, 0.0
        prices = snapshot.ancillary_usd_per_mw_h
        usd_per_h = sum(mw * prices.get(service, 0.0) for service, mw in offers.items())
        return total_mw, usd_per_h / total_mw

    def _full_mining_it_mw(self, state: FacilityState) -> float:
        """Mining IT power with every healthy miner hashing at nameplate [MW]."""
        return sum((c.count - c.failed) * c.power_w_each for c in state.asic_classes) / 1e6

    def _spot_gpus(
        self, facility_plans: list[FacilityPlan], result: IntervalResult, limits: np.ndarray
    ) -> np.ndarray:
        """Mean GPUs rented on spot per scheduler pool [GPUs]: what the plan offers, within
        the room the power budget leaves beside the customer jobs, times the share of offered
        GPUs the spot market takes (``market.gpu_spot_fill_fraction``)."""
        fill = self.world.scenario.market.gpu_spot_fill_fraction
        spot = np.zeros(len(self._pool_map))
        busy = result.mean_busy().sum(axis=1).tolist()
        limit = limits.tolist()
        for entry in self._gpu_entries:
            offered = facility_plans[entry.facility].gpu_spot.get(entry.type_id, 0)
            room = max(0.0, limit[entry.scheduler_index] - busy[entry.scheduler_index])
            spot[entry.scheduler_index] = min(float(offered), room) * fill
        return spot

    def _spot_by_facility(
        self, snapshot: Snapshot, spot: np.ndarray
    ) -> tuple[list[float], list[float]]:
        """Mean GPUs on spot per facility [GPUs] and their mean rental price [USD/GPU-h]
        (0 where none are rented)."""
        n = len(self.facilities)
        gpus = [0.0] * n
        usd_per_hour = [0.0] * n
        spot_gpus = spot.tolist()
        for f, state in enumerate(snapshot.facilities):
            rental = {p.type_id: p.rental_usd_per_gpu_hour for p in state.gpu_pools}
            for entry in self._gpu_entries_by_facility[f]:
                count = spot_gpus[entry.scheduler_index]
                gpus[f] += count
                usd_per_hour[f] += count * rental[entry.type_id]
        mean_price = [usd / g if g > 0 else 0.0 for usd, g in zip(usd_per_hour, gpus, strict=True)]
        return gpus, mean_price

    def _busy_gpu_s(self, result: IntervalResult, spot: np.ndarray) -> np.ndarray:
        """Scheduler busy time mapped onto the GPU fleet's pools and uses [GPU-s]."""
        fleet = self.world.gpu_fleet
        busy = np.zeros((fleet.n_pools, len(GpuUse)))
        for entry in self._gpu_entries:
            row = result.busy_unit_s[entry.scheduler_index]
            busy[entry.fleet_pool, GpuUse.INFERENCE] += row[REALTIME]
            busy[entry.fleet_pool, GpuUse.BATCH] += row[BATCH]
            busy[entry.fleet_pool, GpuUse.TRAINING] += row[TRAINING]
            busy[entry.fleet_pool, GpuUse.SPOT] += spot[entry.scheduler_index] * result.duration_s
        return busy


@dataclass(frozen=True, slots=True)
class _FacilityStepTotals:
    """One interval's world results per facility, as lists indexed by facility (plain
    floats and ints: the per-facility accounting reads them one by one)."""

    asic_it_mw: list[float]
    hashrate_ths: list[float]
    asics_active: list[int]
    asics_sleeping: list[int]
    asics_failed: list[int]
    gpu_kw_by_use: list[list[float]]
    gpus_by_use: list[list[float]]
    gpus_failed: list[float]
    revenue_by_type: list[list[float]]
    running_jobs: list[float]
    spot_gpus: list[float]
    spot_usd_per_gpu_hour: list[float]
    queued_jobs: float
    transfer_gb: list[float]
    """Job data moved into each facility from other regions [GB]."""


def _pool_maps(world: World) -> list[_PoolMap]:
    """Where each scheduler pool lives: its GPU fleet pool, or -1 for an ASIC pool."""
    maps = []
    for i, pool in enumerate(world.pools):
        if pool.is_gpu:
            type_id = world.gpu_type_ids[pool.gpu_type]
            fleet_pool = world.gpu_fleet.pool_index(pool.facility, type_id)
            maps.append(_PoolMap(i, pool.facility, type_id, fleet_pool))
        else:
            maps.append(_PoolMap(i, pool.facility, None, -1))
    return maps


def _gpu_pool_maps(world: World, pool_map: list[_PoolMap]) -> list[_GpuPoolMap]:
    """The GPU entries of ``pool_map`` with their installed size."""
    return [
        _GpuPoolMap(
            e.scheduler_index,
            e.facility,
            e.type_id,
            e.fleet_pool,
            int(world.pools[e.scheduler_index].installed),
        )
        for e in pool_map
        if e.type_id is not None
    ]


def _pue_tables(facilities: list[Facility], ambient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mining and AI hall PUE per interval and facility [-], each ``[intervals, F]``."""
    mining = np.empty(ambient.shape)
    ai = np.empty(ambient.shape)
    for f, facility in enumerate(facilities):
        model = facility.pue
        mining[:, f] = pue(
            model.mining, model.temp_coeff_per_c, model.reference_ambient_c, ambient[:, f]
        )
        ai[:, f] = pue(model.ai, model.temp_coeff_per_c, model.reference_ambient_c, ambient[:, f])
    return mining, ai


def _asic_counter(
    driver: AsicDriver, n_facilities: int, model_ids: Sequence[str]
) -> Callable[[], np.ndarray]:
    """How to get miners per (facility, model, state) from ``driver``, models in the order
    of ``model_ids``: its own counts when it keeps them, else a full read."""
    if isinstance(driver, ClassCountingAsicDriver):
        return driver.state_counts
    return lambda: _class_state_counts(driver.read(), n_facilities, model_ids)


def _gpu_failure_counter(
    driver: GpuDriver, n_facilities: int
) -> Callable[[], tuple[np.ndarray, tuple[str, ...]]]:
    """How to get failed GPUs per (facility, type) and the type ids from ``driver``."""
    if isinstance(driver, FailureCountingGpuDriver):
        return driver.failed_counts
    return lambda: _failed_gpu_counts(driver.read(), n_facilities)


def _pue(facility: Facility, base: float, ambient: float) -> float:
    model = facility.pue
    return float(pue(base, model.temp_coeff_per_c, model.reference_ambient_c, ambient))


def _class_state_counts(
    readings: AsicReadings, n_facilities: int, model_ids: Sequence[str]
) -> np.ndarray:
    """Miners per (facility, model, state) from driver readings, shape [F, M, 4], models in
    the order of ``model_ids`` (a driver may list them in another order; models not in
    ``model_ids`` are left out)."""
    n_models = len(model_ids)
    position = np.array([model_ids.index(m) if m in model_ids else -1 for m in readings.model_ids])
    model = position[readings.model.astype(np.int64)] if readings.model.size else readings.model
    known = model >= 0
    flat = (
        readings.facility[known].astype(np.int64) * n_models + model[known].astype(np.int64)
    ) * 4 + readings.state[known].astype(np.int64)
    counts = np.bincount(flat, minlength=n_facilities * n_models * 4)
    return counts.reshape(n_facilities, n_models, 4)


def _failed_gpu_counts(
    readings: GpuReadings, n_facilities: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Failed GPUs per (facility, type) from driver readings, ``[F, T]``, and the type ids."""
    failed = np.zeros((n_facilities, len(readings.type_ids)), np.int64)
    down = readings.state != GpuHealth.OK
    np.add.at(failed, (readings.facility[down], readings.type[down]), 1)
    return failed, readings.type_ids


def ambient_table(scenario: Scenario) -> np.ndarray:
    """Outdoor temperature per interval start and facility [°C], shape [intervals, F]."""
    t_s = np.arange(scenario.interval_count) * float(scenario.dispatch_interval_s)
    return (
        np.column_stack(
            [
                np.asarray(ambient_c(f.ambient, scenario.start, t_s), dtype=float)
                for f in scenario.facilities
            ]
        )
        if scenario.facilities
        else np.zeros((t_s.size, 0))
    )
