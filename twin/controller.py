"""The control loop: every dispatch interval, observe -> decide -> act -> advance -> record.

* **observe** — drivers' readings, signals and market state become a typed
  :class:`optimizer.types.Snapshot` (no future data in it);
* **decide** — the policy turns it into a :class:`optimizer.types.Plan`;
* **act** — the plan becomes driver commands (miner counts and power targets) and scheduler
  limits (GPUs that may be busy inside the GPU power budget, TH/s of mining capacity);
* **advance** — new workloads arrive, the scheduler plays the interval, the world's physics
  steps the fleets (in live mode the real world does this part);
* **record** — money, energy and state per facility go to the recorder.

Only this module composes models, optimizer and drivers; it reads time from the ``t_s`` it
is given, which the engine takes from ``env.now``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from drivers.base import AsicCommand, AsicDriver, AsicReadings, GpuCommand, GpuDriver
from models.customers import Customer
from models.facility import ambient_c, marginal_energy_usd_per_mwh, pue
from models.fleet import AsicFleet, AsicState, GpuFleet, GpuHealth, GpuUse
from models.grid import Grid
from models.job_table import JobTable
from models.market import Market
from models.workload_types import type_code
from models.workloads import WorkloadGenerator
from optimizer.interval_result import IntervalResult
from optimizer.policies import Policy
from optimizer.pools import Pool
from optimizer.power import gpu_busy_limits
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
from twin.recorder import Recorder
from twin.scenario import Facility, Scenario

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
    ) -> None:
        self.world = world
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
        self._pool_map = [
            _PoolMap(
                i,
                pool.facility,
                world.gpu_type_ids[pool.gpu_type] if pool.is_gpu else None,
                world.gpu_fleet.pool_index(pool.facility, world.gpu_type_ids[pool.gpu_type])
                if pool.is_gpu
                else -1,
            )
            for i, pool in enumerate(world.pools)
        ]
        self._last_mw = np.zeros(len(self.facilities))
        self._running_by_pool = np.zeros(len(world.pools), dtype=np.int64)
        self.last_plan: Plan | None = None
        self.command_failures = 0

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
        snapshot, readings = self.observe(index, t0_s)
        plan = self.policy.decide(snapshot)
        self.last_plan = plan
        limits = self.act(snapshot, plan, readings)
        self.advance_and_record(index, snapshot, plan, limits)

    def finish(self, t_end_s: float) -> None:
        """Release the drivers at the end of a run."""
        self.asic_driver.close()
        self.gpu_driver.close()

    # ------------------------------------------------------------------ observe

    def observe(self, index: int, t0_s: float) -> tuple[Snapshot, AsicReadings]:
        """Readings, signals and market state at ``t0_s`` as a snapshot."""
        world = self.world
        market = world.market.state_at(t0_s)
        asic_readings = self.asic_driver.read()
        counts = _class_state_counts(asic_readings, len(self.facilities))
        gpu_readings = self.gpu_driver.read()
        failed_gpus = np.zeros((len(self.facilities), len(gpu_readings.type_ids)), np.int64)
        np.add.at(
            failed_gpus,
            (
                gpu_readings.facility[gpu_readings.state != GpuHealth.OK],
                gpu_readings.type[gpu_readings.state != GpuHealth.OK],
            ),
            1,
        )
        busy = world.scheduler.busy
        ancillary = world.grid.ancillary_usd_per_mw_h(t0_s)
        states = []
        for f, facility in enumerate(self.facilities):
            ambient = float(world.ambient_c[index, f])
            price = world.grid.price_usd_per_mwh(facility.settlement_point, t0_s)
            request = world.grid.curtail_request(facility.id, t0_s)
            states.append(
                FacilityState(
                    facility_id=facility.id,
                    price_usd_per_mwh=price,
                    marginal_energy_usd_per_mwh=marginal_energy_usd_per_mwh(
                        facility.contract, float(self._last_mw[f]), price
                    ),
                    power_cap_mw=facility.power_cap_mw,
                    pue_mining=_pue(facility, facility.pue.mining, ambient),
                    pue_ai=_pue(facility, facility.pue.ai, ambient),
                    ambient_c=ambient,
                    asic_classes=self._asic_classes(f, counts),
                    gpu_pools=self._gpu_pools(f, market, failed_gpus, gpu_readings.type_ids, busy),
                    curtail_request_fraction=request.fraction,
                    four_cp_interval=world.grid.is_four_cp(t0_s),
                )
            )
        snapshot = Snapshot(t0_s, self.interval_s, market, tuple(states), ancillary)
        return snapshot, asic_readings

    def _asic_classes(self, f: int, counts: np.ndarray) -> tuple[AsicClassState, ...]:
        classes = []
        for m, model_id in enumerate(self.asic_models):
            total = int(counts[f, m].sum())
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
                    active=int(counts[f, m, AsicState.ACTIVE]),
                    sleeping=int(counts[f, m, AsicState.SLEEPING]),
                    failed=int(counts[f, m, AsicState.FAILED]),
                )
            )
        return tuple(classes)

    def _gpu_pools(
        self,
        f: int,
        market: MarketState,
        failed: np.ndarray,
        type_ids: tuple[str, ...],
        busy: np.ndarray,
    ) -> tuple[GpuPoolState, ...]:
        pools = []
        for entry in self._pool_map:
            if entry.facility != f or entry.type_id is None:
                continue
            spec = self.gpu_specs[entry.type_id]
            pool = self.world.pools[entry.scheduler_index]
            pools.append(
                GpuPoolState(
                    type_id=entry.type_id,
                    tdp_w=spec.tdp_w,
                    idle_w=spec.idle_w,
                    count=int(pool.installed),
                    busy=round(float(busy[entry.scheduler_index])),
                    failed=int(failed[f, type_ids.index(entry.type_id)]),
                    rental_usd_per_gpu_hour=spec.rental_index_usd_per_gpu_hour
                    * market.gpu_rental_multiplier,
                )
            )
        return tuple(pools)

    # ------------------------------------------------------------------ act

    def act(self, snapshot: Snapshot, plan: Plan, readings: AsicReadings) -> np.ndarray:
        """Send miner commands through the driver; return the scheduler's pool limits."""
        commands = []
        for f, state in enumerate(snapshot.facilities):
            facility_plan = plan.facility(state.facility_id)
            for cls in state.asic_classes:
                target = facility_plan.asic_active[cls.model_id]
                fraction = facility_plan.asic_power_fraction[cls.model_id]
                if target != cls.active or fraction != 1.0:
                    commands.append(AsicCommand(f, cls.model_id, target, fraction))
        if commands:
            result = self.asic_driver.apply(commands)
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
                facility_plan.asic_active[c.model_id] * c.hashrate_ths_each
                for c in state.asic_classes
            )
            for entry in self._pool_map:
                if entry.facility != f:
                    continue
                if entry.type_id is None:
                    limits[entry.scheduler_index] = hashrate_ths
                else:
                    limits[entry.scheduler_index] = gpu_limits[entry.type_id]
        return limits

    # ------------------------------------------------------------------ advance + record

    def advance_and_record(
        self, index: int, snapshot: Snapshot, plan: Plan, limits: np.ndarray
    ) -> None:
        """Play the interval in the world, then account and record each facility."""
        world = self.world
        t0_s, dt_s = snapshot.t_s, self.interval_s
        world.jobs.append(world.generator.arrivals(t0_s, t0_s + dt_s))
        result = world.scheduler.run_interval(t0_s, t0_s + dt_s, limits)
        self._running_by_pool += (result.started - result.completed - result.preempted).sum(axis=1)
        ambient = world.ambient_c[index]
        spot = self._spot_gpus(snapshot, plan, result, limits)
        busy_gpu_s = self._busy_gpu_s(result, spot)
        for entry in self._pool_map:
            if entry.type_id is not None:
                uses = {
                    int(use): busy_gpu_s[entry.fleet_pool, use] / dt_s
                    for use in GpuUse
                    if use not in (GpuUse.IDLE, GpuUse.OFF)
                }
                self.gpu_driver.apply([GpuCommand(entry.facility, entry.type_id, uses=uses)])
        asic_step = world.asic_fleet.step(t0_s, dt_s, ambient)
        gpu_step = world.gpu_fleet.step(t0_s, dt_s, busy_gpu_s, ambient)
        gpu_kw_by_use = gpu_step.by_facility(gpu_step.mean_power_kw_by_use)
        gpus_by_use = gpu_step.by_facility(gpu_step.gpus_by_use)
        gpu_failed = gpu_step.by_facility(gpu_step.failed)
        revenue_by_type = np.zeros((len(self.facilities), result.revenue_usd.shape[1]))
        np.add.at(revenue_by_type, [e.facility for e in self._pool_map], result.revenue_usd)
        running = np.zeros(len(self.facilities))
        np.add.at(running, [e.facility for e in self._pool_map], self._running_by_pool)
        spot_by_facility = np.zeros(len(self.facilities))
        spot_usd_h = np.zeros(len(self.facilities))
        for entry in self._pool_map:
            if entry.type_id is not None:
                count = spot[entry.scheduler_index]
                spot_by_facility[entry.facility] += count
                spot_usd_h[entry.facility] += count * next(
                    p.rental_usd_per_gpu_hour
                    for p in snapshot.facility(self.facilities[entry.facility].id).gpu_pools
                    if p.type_id == entry.type_id
                )
        four_cp_rate = world.scenario.grid.four_cp.rate_usd_per_kw_year
        for f, (facility, state) in enumerate(
            zip(self.facilities, snapshot.facilities, strict=True)
        ):
            request = world.grid.curtail_request(facility.id, t0_s)
            full_mining_it_mw = self._full_mining_it_mw(state)
            kw = gpu_kw_by_use[f]
            inputs = IntervalInputs(
                dt_s=dt_s,
                price_usd_per_mwh=state.price_usd_per_mwh,
                contract=facility.contract,
                pue_mining=state.pue_mining,
                pue_ai=state.pue_ai,
                it_mining_mw=float(asic_step.mean_power_kw[f].sum()) / 1000.0,
                it_inference_mw=float(kw[GpuUse.INFERENCE]) / 1000.0,
                it_batch_mw=float(kw[GpuUse.BATCH]) / 1000.0,
                it_training_mw=float(kw[GpuUse.TRAINING]) / 1000.0,
                it_spot_mw=float(kw[GpuUse.SPOT]) / 1000.0,
                it_gpu_idle_mw=float(kw[GpuUse.IDLE] + kw[GpuUse.OFF]) / 1000.0,
                hashrate_ths=float(asic_step.mean_hashrate_ths[f].sum()),
                hashprice_usd_per_ths_day=snapshot.market.hashprice_usd_per_ths_day,
                revenue_ai_inference_usd=float(
                    revenue_by_type[f, REALTIME] + revenue_by_type[f, BATCH]
                ),
                revenue_training_usd=float(revenue_by_type[f, TRAINING]),
                gpus_spot=float(spot_by_facility[f]),
                spot_usd_per_gpu_hour=float(spot_usd_h[f] / spot_by_facility[f])
                if spot_by_facility[f] > 0
                else 0.0,
                flexible_baseline_mw=full_mining_it_mw * state.pue_mining,
                curtail_fraction=request.fraction,
                curtail_payment_usd_per_mwh=request.payment_usd_per_mwh,
                four_cp=state.four_cp_interval,
                four_cp_rate_usd_per_kw_year=four_cp_rate,
            )
            row = settle_interval(inputs)
            self._last_mw[f] = row["power_total_mw"]
            counts = asic_step
            row.update(
                price_usd_per_mwh=state.price_usd_per_mwh,
                ambient_c=state.ambient_c,
                pue_mining=state.pue_mining,
                pue_ai=state.pue_ai,
                power_cap_mw=state.power_cap_mw,
                curtailed_mw=max(0.0, full_mining_it_mw - inputs.it_mining_mw),
                hashrate_ths=inputs.hashrate_ths,
                asics_active=float(counts.active[f].sum()),
                asics_sleeping=float(counts.sleeping[f].sum()),
                asics_failed=float(counts.failed[f].sum()),
                gpus_inference=float(gpus_by_use[f, GpuUse.INFERENCE]),
                gpus_batch=float(gpus_by_use[f, GpuUse.BATCH]),
                gpus_training=float(gpus_by_use[f, GpuUse.TRAINING]),
                gpus_spot=float(gpus_by_use[f, GpuUse.SPOT]),
                gpus_idle=float(gpus_by_use[f, GpuUse.IDLE]),
                gpus_failed=float(gpu_failed[f]),
                btc_price_usd=snapshot.market.btc_price_usd,
                hashprice_usd_per_ths_day=snapshot.market.hashprice_usd_per_ths_day,
                difficulty=snapshot.market.difficulty,
                ancillary_offer_mw=0.0,
                four_cp=float(state.four_cp_interval),
                grid_event_fraction=request.fraction,
                queued_jobs=float(result.queued_jobs),
                running_jobs=float(running[f]),
            )
            self.recorder.record(index, f, row)

    def _full_mining_it_mw(self, state: FacilityState) -> float:
        """Mining IT power with every healthy miner hashing at nameplate [MW]."""
        return sum((c.count - c.failed) * c.power_w_each for c in state.asic_classes) / 1e6

    def _spot_gpus(
        self, snapshot: Snapshot, plan: Plan, result: IntervalResult, limits: np.ndarray
    ) -> np.ndarray:
        """Mean GPUs rented on spot per scheduler pool: what the plan offers, within the
        room the power budget leaves beside the customer jobs [GPUs]."""
        spot = np.zeros(len(self._pool_map))
        busy = result.mean_busy().sum(axis=1)
        for entry in self._pool_map:
            if entry.type_id is None:
                continue
            facility_plan: FacilityPlan = plan.facility(self.facilities[entry.facility].id)
            offered = facility_plan.gpu_spot.get(entry.type_id, 0)
            room = max(0.0, limits[entry.scheduler_index] - busy[entry.scheduler_index])
            spot[entry.scheduler_index] = min(float(offered), room)
        return spot

    def _busy_gpu_s(self, result: IntervalResult, spot: np.ndarray) -> np.ndarray:
        """Scheduler busy time mapped onto the GPU fleet's pools and uses [GPU-s]."""
        fleet = self.world.gpu_fleet
        busy = np.zeros((fleet.n_pools, len(GpuUse)))
        for entry in self._pool_map:
            if entry.type_id is None:
                continue
            row = result.busy_unit_s[entry.scheduler_index]
            busy[entry.fleet_pool, GpuUse.INFERENCE] += row[REALTIME]
            busy[entry.fleet_pool, GpuUse.BATCH] += row[BATCH]
            busy[entry.fleet_pool, GpuUse.TRAINING] += row[TRAINING]
            busy[entry.fleet_pool, GpuUse.SPOT] += spot[entry.scheduler_index] * result.duration_s
        return busy


def _pue(facility: Facility, base: float, ambient: float) -> float:
    model = facility.pue
    return float(pue(base, model.temp_coeff_per_c, model.reference_ambient_c, ambient))


def _class_state_counts(readings: AsicReadings, n_facilities: int) -> np.ndarray:
    """Miners per (facility, model, state) from driver readings, shape [F, M, 4]."""
    n_models = len(readings.model_ids)
    flat = (
        readings.facility.astype(np.int64) * n_models + readings.model.astype(np.int64)
    ) * 4 + readings.state.astype(np.int64)
    counts = np.bincount(flat, minlength=n_facilities * n_models * 4)
    return counts.reshape(n_facilities, n_models, 4)


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
