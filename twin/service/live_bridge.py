"""The service in live mode: the API's workloads enter the live controller's scheduler.

:class:`LiveBridgeController` is :class:`twin.live_controller.LiveController` (wall clock,
real or emulated miners, polled prices) with the API's workloads among its arrivals through a
:class:`service.workload_exchange.WorkloadExchange`, the same hand-off the sandbox uses, so a
workload is scheduled by the same code in both modes. After every tick it reports the status
changes of the API's workloads and a :class:`service.twin_snapshot.TwinSnapshot` of the live
world: the prices the pollers gave the controller, the market's GPU rental multiplier and the
GPUs free in the scheduler's pools. :func:`twin.live.run_live` builds it through its
``controller_factory``.

Energy attribution differs from the sandbox's: live mode does not step a GPU fleet model (it
reads devices instead), so a job is attributed what its GPUs draw busy, ``tdp_w x power
limit fraction``, times the AI hall's PUE, priced at the facility's polled price
(:meth:`LiveBridgeController.energy_rates`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.base import AsicDriver
from drivers.journal import JournaledAsicDriver
from models.job_table import JobBatch
from models.workload_types import TYPE_COUNT, WORKLOAD_SPECS
from optimizer.interval_result import IntervalResult
from optimizer.types import Snapshot
from twin.live_controller import LiveController
from twin.service.fleet_monitor import Alert, FleetMonitor, live_detection_alert
from twin.service.fleet_sources import live_statuses
from twin.service.twin_snapshot import TwinSnapshot, take_snapshot
from twin.service.workload_exchange import JobUpdate, WorkloadExchange

ON_GPU = np.array([not spec.on_asic for spec in WORKLOAD_SPECS])
"""Which workload type codes run on GPUs, ``[TYPE_COUNT]``."""

Reporter = Callable[[list[JobUpdate], TwinSnapshot], None]
"""Takes each tick's status changes of API workloads and the snapshot after the tick."""


class LiveBridgeController(LiveController):
    """The live controller with the API's workloads (module docstring).

    The ASIC driver's commands are journaled (:class:`drivers.journal.JournaledAsicDriver`)
    into :attr:`fleet`, the operators' view, with each tick's measured facility statuses.

    Args:
        exchange: where the API's workloads come from.
        on_report: called after every tick with its status changes and snapshot, on the
            loop's thread (keep it short: the next tick waits).
        (the rest: as :class:`twin.live_controller.LiveController`)
    """

    def __init__(
        self,
        world: Any,
        policy: Any,
        conservative: Any,
        asic_driver: AsicDriver,
        *args: Any,
        exchange: WorkloadExchange,
        on_report: Reporter,
        **kwargs: Any,
    ) -> None:
        self.fleet = FleetMonitor(world.facility_ids)
        journaled = JournaledAsicDriver(asic_driver, self.fleet.journal)
        super().__init__(world, policy, conservative, journaled, *args, **kwargs)
        self.exchange = exchange
        self.on_report = on_report
        self._observed: Snapshot | None = None
        self._was_conservative = False
        self._health_alerts_seen = 0

    def observe(self, index: int, t0_s: float) -> Snapshot:
        """The live controller's snapshot, kept for the energy rates and the API's view."""
        snapshot = super().observe(index, t0_s)
        self._observed = snapshot
        return snapshot

    def arrivals(self, t0_s: float, t1_s: float) -> JobBatch:
        """The API's submissions since the last tick merged with the scenario's demand."""
        return self.exchange.arrivals(self.world, super().arrivals, t0_s, t1_s)

    def step(self, index: int, t0_s: float) -> None:
        """The live tick, then the status changes of the API's workloads and the snapshot
        go to ``on_report``."""
        super().step(index, t0_s)
        t1_s = t0_s + self.interval_s
        self._observe_fleet(t1_s)
        updates = self.exchange.report(
            self.world, index, self._last_result, t1_s, self.energy_rates
        )
        self.on_report(updates, self.twin_snapshot(t1_s))

    def _observe_fleet(self, t_s: float) -> None:
        """The tick's measured statuses into :attr:`fleet`, with an alert when a stale
        price feed switches the loop to its conservative policy (and when it ends)."""
        n_facilities = len(self.facilities)
        samples = self.samples[-n_facilities:]
        if len(samples) < n_facilities:
            return
        conservative = self.policy is self.conservative
        alerts = []
        if conservative != self._was_conservative:
            alerts.append(
                Alert("critical", None, "price feed stale: conservative policy running")
                if conservative
                else Alert("info", None, "prices fresh again: primary policy running")
            )
        self._was_conservative = conservative
        new_alerts = self.health_check.alerts[self._health_alerts_seen :]
        self._health_alerts_seen += len(new_alerts)
        facility_ids = [f.id for f in self.facilities]
        alerts += [live_detection_alert(a, facility_ids) for a in new_alerts]
        statuses = live_statuses(samples, self.world.gpu_fleet, self.world.jobs)
        self.fleet.observe(t_s, statuses, alerts)

    def twin_snapshot(self, t_s: float) -> TwinSnapshot:
        """What the API shows at ``t_s`` [s since the loop started]: the prices and rental
        multiplier the last tick planned with, and the GPUs free now."""
        observed = self._observed
        fleet = self.fleet.view()
        if observed is None:
            return take_snapshot(self.world, t_s, self.interval_s, 1.0, fleet=fleet)
        return take_snapshot(
            self.world,
            t_s,
            self.interval_s,
            1.0,
            {state.facility_id: state.price_usd_per_mwh for state in observed.facilities},
            observed.market.gpu_rental_multiplier,
            fleet=fleet,
        )

    def energy_rates(self, result: IntervalResult, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The energy rates of the tick just stepped (an
        :data:`service.workload_exchange.EnergyRateSource`).

        A busy GPU of scheduler pool ``p`` at facility ``f`` draws ``tdp_w * power limit
        fraction`` (the GPU model's busy draw) times the AI hall's PUE, so a GPU-second of a
        GPU workload there is ``tdp_kw * fraction * PUE_f / 3600`` [kWh]; the price is the
        facility's polled price / 1000 [USD/kWh].

        Returns:
            ``[scheduler pools, TYPE_COUNT]`` facility energy per busy GPU-second [kWh/GPU-s]
            and ``[facilities]`` energy price [USD/kWh].
        """
        world = self.world
        observed = self._observed
        n_facilities = len(self.facilities)
        kwh_per_gpu_s = np.zeros((len(world.pools), TYPE_COUNT))
        if observed is None:
            return kwh_per_gpu_s, np.zeros(n_facilities)
        fleet = world.gpu_fleet
        for p, pool in enumerate(world.pools):
            if not pool.is_gpu:
                continue
            type_id = world.gpu_type_ids[pool.gpu_type]
            first_gpu = fleet.pool_start[fleet.pool_index(pool.facility, type_id)]
            busy_kw = self.gpu_specs[type_id].tdp_w / 1000.0 * fleet.power_limit_fraction[first_gpu]
            pue_ai = observed.facilities[pool.facility].pue_ai
            kwh_per_gpu_s[p, ON_GPU] = busy_kw * pue_ai / 3600.0
        usd_per_kwh = np.array([state.price_usd_per_mwh / 1000.0 for state in observed.facilities])
        return kwh_per_gpu_s, usd_per_kwh
