"""Build a runnable twin from a scenario: signals, models, drivers, policy, control loop.

``build(scenario)`` wires everything for sim mode on a ``simpy.Environment``: the control
loop is one SimPy process that ticks every dispatch interval (observe -> decide -> act ->
record, see twin.controller). Devices are numpy arrays, never processes; jobs are events
inside the scheduler's interval sweep, so a million workloads a day cost heap operations,
not SimPy processes. Live mode (a later layer) swaps in ``simpy.rt.RealtimeEnvironment`` and
real drivers around the same controller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import simpy

from datasets import sources
from datasets.signals import SeriesSignal, Signal, SignalRangeError
from drivers.sim import SimAsicDriver, SimGpuDriver
from models.faults import FleetLayout, resolve_faults
from models.fleet import AsicFleet, GpuFleet
from models.grid import Grid
from models.market import Market
from models.telemetry import reading_offsets_s
from models.workloads import JobTable, WorkloadGenerator, make_customers
from optimizer.policies import Policy, PolicyContext, make_policy
from optimizer.pools import pools_from_scenario, scenario_gpu_type_ids
from optimizer.scheduler import Scheduler
from twin.anomaly_score import faults_frame, score_alerts
from twin.controller import Controller, World, ambient_table
from twin.fault_injection import FaultInjector
from twin.health import HealthMonitor
from twin.kpis import compute_kpis, dump_kpis
from twin.recorder import Recorder, run_metadata
from twin.rng import spawn_generators
from twin.scenario import HistoricalSeries, Scenario


def build_world(scenario: Scenario) -> World:
    """Signals and models for ``scenario``, seeded from its seed (no SimPy here)."""
    rngs = spawn_generators(scenario.seed)
    start = scenario.start
    step_s = float(scenario.dispatch_interval_s)
    n_steps = scenario.interval_count
    settlement_points = sorted({f.settlement_point for f in scenario.facilities})

    market_cfg, grid_cfg = scenario.market, scenario.grid
    prices = _price_signals(scenario, settlement_points, n_steps, rngs["prices"])
    ancillary = sources.ancillary_signals(
        grid_cfg.ancillary, start, n_steps, step_s, rngs["ancillary"]
    )
    market = Market(
        market_cfg,
        start,
        btc_price=sources.btc_price_signal(
            market_cfg.btc_price, start, n_steps, step_s, rngs["btc_price"]
        ),
        network_hashrate_ehs=sources.network_hashrate_signal(
            market_cfg.network_hashrate, start, n_steps, step_s, rngs["network_hashrate"]
        ),
        fees_btc_per_block=sources.fee_signal(
            market_cfg.fees, start, n_steps, step_s, rngs["fees"]
        ),
        gpu_rental_multiplier=sources.gpu_rental_signal(
            market_cfg.gpu_rental, start, n_steps, step_s, rngs["gpu_rental"]
        ),
        rng=rngs["blocks"],
    )
    facility_ids = [f.id for f in scenario.facilities]
    grid = Grid(
        grid_cfg,
        start,
        scenario.duration_s,
        step_s,
        prices,
        ancillary,
        facility_ids,
        rngs["grid"],
    )
    asic_groups = [
        (index, group.spec(), group.count, group.power_target_fraction)
        for index, facility in enumerate(scenario.facilities)
        for group in facility.asics
    ]
    gpu_groups = [
        (index, group.spec(), group.count, group.node_size)
        for index, facility in enumerate(scenario.facilities)
        for group in facility.gpus
    ]
    n_facilities = len(scenario.facilities)
    asic_fleet = AsicFleet.from_groups(asic_groups, n_facilities=n_facilities)
    gpu_fleet = GpuFleet.from_groups(gpu_groups, n_facilities=n_facilities)
    customers = make_customers(
        scenario.workloads.customers,
        rngs["customers"],
        residency_fraction=scenario.workloads.residency_fraction,
    )
    gpu_type_ids = scenario_gpu_type_ids(scenario)
    jobs = JobTable()
    generator = WorkloadGenerator(
        scenario.workloads, gpu_type_ids, start, rngs["workloads"], customers=customers
    )
    gpu_type_ids = generator.gpu_type_names  # plus types asked for but not installed
    pools = pools_from_scenario(scenario, gpu_type_ids)
    scheduler = Scheduler(
        pools, jobs, customers, rules=scenario.scheduling, workloads=scenario.workloads
    )
    return World(
        scenario=scenario,
        facility_ids=facility_ids,
        asic_fleet=asic_fleet,
        gpu_fleet=gpu_fleet,
        market=market,
        grid=grid,
        jobs=jobs,
        generator=generator,
        scheduler=scheduler,
        customers=customers,
        gpu_type_ids=gpu_type_ids,
        pools=pools,
        ambient_c=ambient_table(scenario),
    )


PRICE_HISTORY_DAYS = 35.0
"""Days of real price history loaded before the start of a replay, when the file has them,
so that forecasters have a past to learn from on the first day [days]."""


def _price_signals(
    scenario: Scenario, settlement_points: list[str], n_steps: int, rng: np.random.Generator
) -> dict[str, Signal]:
    """Real-time price per settlement point over the run; a historical replay also carries
    up to :data:`PRICE_HISTORY_DAYS` of the file's past before t = 0 (negative times)."""
    source = scenario.grid.prices
    step_s = float(scenario.dispatch_interval_s)
    if isinstance(source, HistoricalSeries):
        lookback_steps = round(PRICE_HISTORY_DAYS * 86400.0 / step_s)
        while lookback_steps > 0:
            try:
                longer = sources.price_signals(
                    source,
                    settlement_points,
                    scenario.start - timedelta(seconds=lookback_steps * step_s),
                    n_steps + lookback_steps,
                    step_s,
                    rng,
                )
            except SignalRangeError:
                lookback_steps //= 2  # the file starts later: take what it has
                continue
            return {
                point: SeriesSignal(
                    signal.over(signal.start_s, signal.end_s, step_s),
                    step_s,
                    t0_s=-lookback_steps * step_s,
                    name=signal.name,
                    unit=signal.unit,
                )
                for point, signal in longer.items()
            }
    return sources.price_signals(source, settlement_points, scenario.start, n_steps, step_s, rng)


@dataclass
class RunResult:
    """What a finished run produced, ready to write to ``results/<run>/``."""

    scenario: Scenario
    timeseries: pl.DataFrame
    jobs: pl.DataFrame
    kpis: dict[str, Any]
    metadata: dict[str, Any]
    recorder: Recorder = field(repr=False)

    def write(self, out_dir: Path) -> Path:
        """Write metadata.yaml, timeseries.parquet, jobs.parquet, kpis.json, report.html."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.recorder.write(out_dir, metadata=self.metadata, jobs=self.jobs, kpis=self.kpis)
        return out_dir


class Twin:
    """A built twin: an environment, the world, and the control loop process."""

    def __init__(self, scenario: Scenario, env: simpy.Environment, policy: Policy) -> None:
        self.scenario = scenario
        self.env = env
        self.world = build_world(scenario)
        self.recorder = Recorder(
            self.world.facility_ids,
            scenario.interval_count,
            float(scenario.dispatch_interval_s),
            scenario.start,
        )
        self.health = build_health(scenario, self.world)
        clock: Callable[[], float] = lambda: float(env.now)  # noqa: E731
        self.controller = Controller(
            self.world,
            policy,
            SimAsicDriver(self.world.asic_fleet, clock),
            SimGpuDriver(self.world.gpu_fleet, clock),
            self.recorder,
            health=self.health,
        )

    def run(self, progress: Callable[[float], None] | None = None) -> RunResult:
        """Run to the end of the scenario; ``progress`` gets simulated days done."""
        started_at = datetime.now(UTC)
        wall_start = time.perf_counter()
        self.env.process(self.controller.loop(self.env, progress))
        self.env.run(until=self.scenario.duration_s)
        self.controller.finish(self.scenario.duration_s)
        wall_s = time.perf_counter() - wall_start
        timeseries = self.recorder.timeseries()
        jobs = self.world.jobs.to_polars(
            self.scenario.duration_s,
            [c.name for c in self.world.customers],
            self.world.facility_ids,
            self.world.gpu_type_ids,
        )
        kpis = compute_kpis(
            timeseries,
            jobs,
            sim_days=self.scenario.duration_days,
            wall_s=wall_s,
            interval_s=float(self.scenario.dispatch_interval_s),
        )
        kpis["anomaly"] = self._health_results()
        metadata = run_metadata(self.scenario, self.scenario.seed, wall_s, started_at)
        return RunResult(self.scenario, timeseries, jobs, kpis, metadata, self.recorder)

    def _health_results(self) -> dict[str, Any]:
        """Put faults, alerts and telemetry on the recorder; score the alerts."""
        scenario, health = self.scenario, self.health
        end_s = scenario.duration_s
        health.injector.close(end_s)
        faults = faults_frame(
            health.injector.events, self.world.facility_ids, scenario.start, end_s
        )
        alerts = health.alerts()
        tables = self.recorder.tables
        tables["faults"] = faults
        tables["alerts"] = alerts
        if scenario.telemetry.enabled:
            tables["telemetry_summary"] = health.telemetry_summary(self.world.facility_ids)
            if scenario.telemetry.sample_per_class > 0:
                tables["telemetry"] = health.telemetry_detail()
        grace_s = float(scenario.dispatch_interval_s) + scenario.detection.heartbeat_timeout_s
        return score_alerts(alerts, faults, end_s, grace_s)


def fault_start_offsets_s(scenario: Scenario) -> list[float]:
    """Onset of each declared fault [s since scenario start] (validation rejects onsets
    before the start)."""
    offsets = []
    for fault in scenario.faults:
        if fault.start is not None:
            offset_s = (fault.start - scenario.start).total_seconds()
        else:
            offset_s = float(fault.start_offset_h or 0.0) * 3600.0
        offsets.append(offset_s)
    return offsets


def build_health(scenario: Scenario, world: World) -> HealthMonitor:
    """Fault events (seeded ``faults`` stream), the injector and the health monitor
    (seeded ``telemetry`` stream) for ``world``."""
    rngs = spawn_generators(scenario.seed)
    asic, gpu = world.asic_fleet, world.gpu_fleet
    layout = FleetLayout(
        asic_facility=asic.facility.astype(np.int64),
        asic_model=np.array([m.model_id for m in asic.models])[asic.model.astype(np.int64)]
        if asic.n_devices
        else np.zeros(0, dtype=str),
        gpu_facility=gpu.facility.astype(np.int64),
        gpu_type=np.array([t.type_id for t in gpu.types])[gpu.type.astype(np.int64)]
        if gpu.n_devices
        else np.zeros(0, dtype=str),
        gpu_node=gpu.node.astype(np.int64),
    )
    events = resolve_faults(
        scenario.faults,
        scenario.fault_rates,
        fault_start_offsets_s(scenario),
        world.facility_ids,
        layout,
        scenario.duration_s,
        rngs["faults"],
    )
    interval_s = float(scenario.dispatch_interval_s)
    telemetry = scenario.telemetry
    injector = FaultInjector(
        events,
        asic,
        gpu,
        len(world.facility_ids),
        reading_offsets_s(interval_s, telemetry.asic_interval_s),
    )
    return HealthMonitor(
        asic, gpu, injector, telemetry, scenario.detection, rngs["telemetry"], interval_s
    )


def build(scenario: Scenario, mode: str = "sim") -> Twin:
    """A runnable twin for ``scenario``; only ``mode="sim"`` exists in this layer."""
    if mode != "sim":
        raise ValueError(f"mode: {mode!r} is not available; use 'sim'")
    policy_cfg = scenario.policy
    context = PolicyContext(
        contracts={f.id: f.contract for f in scenario.facilities},
        four_cp_rate_usd_per_kw_year=scenario.grid.four_cp.rate_usd_per_kw_year,
    )
    policy = make_policy(policy_cfg.name, policy_cfg.model_dump(exclude={"name"}), context)
    return Twin(scenario, simpy.Environment(), policy)


__all__ = ["RunResult", "Twin", "build", "build_world", "dump_kpis"]
