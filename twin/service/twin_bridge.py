"""A twin the service drives: workloads posted to the API enter the same scheduler that the
simulation and live mode use.

In ``sim`` mode the twin runs on the wall clock, ``speed`` simulated seconds per wall
second, as a sandbox where customers test integrations. Each tick the controller's step runs
as in a simulation, except that the jobs submitted through the API since the last tick join
the scheduler's arrivals (with the scenario's own synthetic demand, unless
``background_demand`` is off), through a :class:`service.workload_exchange.WorkloadExchange`
(live mode uses the same one, :mod:`service.live_bridge`). After the tick the bridge reports
the status of every API job that changed (queued, running, completed, rejected) to a
callback, which the service writes to its database and passes on to ``callback_url``
subscribers.

Every tick the bridge also meters each API job's run time and the energy it is attributed
(:class:`EnergyRates`): per (GPU pool, use) the twin's GPU fleet draws a known IT energy in
the interval; each job gets the share its busy GPU-seconds are of that cell's, times the
facility's AI-hall PUE, priced at what the facility paid per kWh in the interval. So the
energy of all jobs adds up to the twin's GPU work energy (inference, batch, training uses;
spot and idle GPUs are no tenant's), and the cost to their share of the facility's bill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.journal import JournaledAsicDriver
from models.fleet import N_GPU_USES, GpuUse
from models.job_table import JobBatch
from models.workload_types import BATCH, REALTIME, TRAINING, TYPE_COUNT, TYPE_NAMES
from optimizer.interval_result import IntervalResult
from twin.controller import Controller, World
from twin.engine import build
from twin.recorder import Recorder
from twin.scenario import Scenario
from twin.service.fleet_monitor import Alert, FleetMonitor, detection_alert
from twin.service.fleet_sources import recorded_statuses
from twin.service.resource_health import resource_health
from twin.service.twin_snapshot import TwinSnapshot, take_snapshot
from twin.service.workload_exchange import BridgeJob, JobUpdate, WorkloadExchange


class BridgeController(Controller):
    """The simulation's controller whose arrivals include the API's workloads.

    Args:
        exchange: where the API's workloads come from.
        (the rest: as :class:`twin.controller.Controller`)
    """

    def __init__(self, *args: Any, exchange: WorkloadExchange, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchange = exchange
        self.energy_rates = EnergyRates(self.world, self.recorder)

    @property
    def last_interval(self) -> IntervalResult | None:
        """What the scheduler did in the last interval stepped (None before the first)."""
        return self._last_result

    def arrivals(self, t0_s: float, t1_s: float) -> JobBatch:
        """The API's submissions since the last tick merged with the scenario's demand."""
        return self.exchange.arrivals(self.world, super().arrivals, t0_s, t1_s)


class TwinBridge:
    """Runs a twin on the wall clock and exchanges workloads with the service.

    Args:
        scenario: the sandbox scenario.
        speed: simulated seconds per wall second [-].
        on_update: called with each batch of status changes of API workloads.
        background_demand: keep the scenario's synthetic demand running beside the API's.
    """

    def __init__(
        self,
        scenario: Scenario,
        speed: float = 60.0,
        on_update: Callable[[list[JobUpdate]], None] | None = None,
        background_demand: bool = True,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: must be > 0, got {speed}")
        self.scenario = scenario
        self.speed = speed
        self.on_update = on_update
        self.exchange = WorkloadExchange(background_demand)
        twin = build(scenario)
        self.world = twin.world
        base = twin.controller
        self.fleet = FleetMonitor(self.world.facility_ids)
        self.controller = BridgeController(
            base.world,
            base.policy,
            JournaledAsicDriver(base.asic_driver, self.fleet.journal),
            base.gpu_driver,
            base.recorder,
            exchange=self.exchange,
            health=twin.health,
        )
        self._health_alerts_seen = 0
        self._index = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def background_demand(self) -> bool:
        """Whether the scenario's synthetic demand runs beside the API's."""
        return self.exchange.background_demand

    @property
    def sim_time_s(self) -> float:
        """Simulated time reached [s since the scenario start]."""
        return self._index * self.controller.interval_s

    def submit(self, job: BridgeJob) -> None:
        """Queue a workload for the next tick (thread-safe)."""
        self.exchange.submit(job)

    @property
    def alive(self) -> bool:
        """Always true: an in-process twin runs as long as the service does."""
        return True

    def snapshot(self) -> TwinSnapshot:
        """What the API shows of the twin now (call between ticks): prices and the rental
        multiplier of the world's signals at the simulated time reached."""
        return take_snapshot(
            self.world,
            self.sim_time_s,
            self.controller.interval_s,
            self.speed,
            fleet=self.fleet.view(),
        )

    def start(self) -> None:
        """Run ticks on a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="twin-bridge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)

    def step(self) -> list[JobUpdate]:
        """Run one tick now (the thread calls this; tests may too)."""
        controller = self.controller
        index = self._index
        if index >= controller.n_intervals:
            return []
        controller.step(index, self.sim_time_s)
        self._index += 1
        self._observe_fleet(index)
        updates = self.exchange.report(
            self.world,
            index,
            controller.last_interval,
            self.sim_time_s,
            controller.energy_rates.interval,
        )
        if updates and self.on_update is not None:
            self.on_update(updates)
        return updates

    def _observe_fleet(self, index: int) -> None:
        """The tick's recorded statuses, pool health and health-monitor detections into
        :attr:`fleet`."""
        controller = self.controller
        health = controller.health
        detections: list[Alert] = []
        if health is not None:
            rows = health.alerts_since(self._health_alerts_seen)
            self._health_alerts_seen += len(rows)
            detections = [detection_alert(row, self.world.facility_ids) for row in rows]
        self.fleet.observe(
            self.sim_time_s,
            recorded_statuses(controller.recorder, index),
            detections,
            resources=resource_health(self.world, controller.injector, self.sim_time_s),
        )

    def _run(self) -> None:
        tick_wall_s = self.controller.interval_s / self.speed
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.step()
            next_at += tick_wall_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))


_GPU_USES = {REALTIME: GpuUse.INFERENCE, BATCH: GpuUse.BATCH, TRAINING: GpuUse.TRAINING}
_USE_OF_TYPE = np.array([_GPU_USES.get(code, -1) for code in range(TYPE_COUNT)], dtype=np.int64)
"""GPU fleet use of each workload type code (-1: mining, no GPU use)."""


class EnergyRates:
    """Energy per busy GPU-second and energy price per facility in the last interval.

    Per GPU fleet cell ``c`` = (pool, use) of a work use, the interval's IT energy is the
    fleet's draw summed over the cell's GPUs, ``E_c = sum(power_w) * dt_s / 3.6e6`` [kWh]
    (labelled GPUs not busy draw idle power and are counted: they were held for the work).
    With ``B_c`` the busy GPU-seconds the scheduler ran in the cell and ``PUE_f`` the AI
    hall's PUE of its facility, a job with ``g`` GPU-seconds there is attributed
    ``g * E_c * PUE_f / B_c`` [kWh], so the jobs of a cell share its energy exactly. The
    price is the facility's energy cost over its energy in the interval, as the twin settled
    them (contract adder and fixed block included) [USD/kWh].

    Args:
        world: the twin's world (its GPU fleet and scheduler pools).
        recorder: the controller's recorder (the settled energy, cost and PUE per interval).
    """

    def __init__(self, world: World, recorder: Recorder) -> None:
        fleet = world.gpu_fleet
        self._fleet = fleet
        self._recorder = recorder
        self._device_cell = (
            np.repeat(np.arange(fleet.n_pools, dtype=np.int64), np.diff(fleet.pool_start))
            * N_GPU_USES
        )
        fleet_pool = np.array(
            [
                fleet.pool_index(pool.facility, world.gpu_type_ids[pool.gpu_type])
                if pool.is_gpu
                else -1
                for pool in world.pools
            ],
            dtype=np.int64,
        ).reshape(-1, 1)
        self._valid = (fleet_pool >= 0) & (_USE_OF_TYPE >= 0)
        """Which (scheduler pool, type) cells draw GPU power, ``[pools, TYPE_COUNT]``."""
        self._cell = (fleet_pool * N_GPU_USES + _USE_OF_TYPE)[self._valid]
        """Fleet cell of each valid (scheduler pool, type), in ``_valid`` order."""
        self._cell_pue_facility = np.repeat(fleet.pool_facility.astype(np.int64), N_GPU_USES)
        self._shape = self._valid.shape

    def interval(self, result: IntervalResult, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The rates of interval ``index`` just stepped (an
        :data:`service.workload_exchange.EnergyRateSource`).

        Returns:
            ``[scheduler pools, TYPE_COUNT]`` facility energy per busy GPU-second [kWh/GPU-s]
            and ``[facilities]`` energy price [USD/kWh].
        """
        fleet = self._fleet
        n_cells = fleet.n_pools * N_GPU_USES
        it_kwh = np.bincount(
            self._device_cell + fleet.use, weights=fleet.power_w, minlength=n_cells
        ) * (result.duration_s / 3.6e6)
        busy_gpu_s = np.bincount(
            self._cell, weights=result.busy_unit_s[self._valid], minlength=n_cells
        )
        recorder = self._recorder
        pue_ai = recorder.column("pue_ai")[index]
        facility_kwh = it_kwh * pue_ai[self._cell_pue_facility]
        per_gpu_s = np.divide(facility_kwh, busy_gpu_s, out=np.zeros(n_cells), where=busy_gpu_s > 0)
        kwh_per_gpu_s = np.zeros(self._shape)
        kwh_per_gpu_s[self._valid] = per_gpu_s[self._cell]
        energy_kwh = recorder.column("energy_mwh")[index] * 1000.0
        cost_usd = recorder.column("cost_energy_usd")[index]
        usd_per_kwh = np.divide(
            cost_usd, energy_kwh, out=np.zeros(energy_kwh.shape), where=energy_kwh > 0
        )
        return kwh_per_gpu_s, usd_per_kwh


__all__ = [
    "TYPE_NAMES",
    "BridgeController",
    "BridgeJob",
    "EnergyRates",
    "JobUpdate",
    "TwinBridge",
]
