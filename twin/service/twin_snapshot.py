"""What the API shows of a running twin, taken after each tick: the twin's time, power
prices, the GPU rental multiplier (spot pricing) and free GPUs per facility and type (in
live mode the prices are those the controller's pollers saw).

The API reads only these snapshots (never the twin's live objects), so the twin can run on
another thread or in another process (:mod:`service.twin_process`) and a request never waits
on a tick. A snapshot is small, immutable and picklable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from twin.service.api.schemas import FacilityAvailability
from twin.service.fleet_view import FleetView

if TYPE_CHECKING:
    from twin.controller import World
    from twin.scenario import Scenario
    from twin.service.workload_exchange import BridgeJob, JobUpdate


@dataclass(frozen=True, slots=True)
class TwinSnapshot:
    """The twin as of its last tick.

    Attributes:
        sim_time_s: the twin's time reached [s since the scenario start; in live mode since
            the loop started].
        interval_s: the twin's tick [twin s].
        speed: twin seconds per wall second [-] (1 in live mode).
        prices_usd_per_mwh: power price per facility id now [USD/MWh].
        gpu_rental_multiplier: market GPU rental price over its index now [-].
        pools: free GPUs per facility and GPU type (the A.2 availability items).
        fleet: facility statuses, alerts and recent device commands (None: not tracked).
    """

    sim_time_s: float
    interval_s: float
    speed: float
    prices_usd_per_mwh: dict[str, float]
    gpu_rental_multiplier: float
    pools: tuple[FacilityAvailability, ...]
    fleet: FleetView | None = None

    @property
    def tick_wall_s(self) -> float:
        """Wall seconds between ticks [s]: when a submitted workload is next scheduled."""
        return self.interval_s / self.speed


def take_snapshot(
    world: World,
    sim_time_s: float,
    interval_s: float,
    speed: float,
    prices_usd_per_mwh: Mapping[str, float] | None = None,
    gpu_rental_multiplier: float | None = None,
    fleet: FleetView | None = None,
) -> TwinSnapshot:
    """The snapshot of ``world`` at ``sim_time_s`` [s] (call between ticks, on the twin's
    thread).

    Args:
        world: the twin's world (its scheduler pools give the free GPUs).
        sim_time_s: the twin's time reached [s since its start].
        interval_s: its tick [twin s].
        speed: twin seconds per wall second [-] (1 in live mode).
        prices_usd_per_mwh: power price per facility id (None: the world's price signal at
            ``sim_time_s``; live mode gives the prices its pollers saw).
        gpu_rental_multiplier: market GPU rental price over its index (None: the world's
            market at ``sim_time_s``).
        fleet: the operators' view of the fleet (:mod:`service.fleet_monitor`).
    """
    if gpu_rental_multiplier is None:
        gpu_rental_multiplier = float(world.market.gpu_rental_multiplier.at(sim_time_s))
    multiplier = float(gpu_rental_multiplier)
    facilities = world.scenario.facilities
    prices = (
        {f.id: float(prices_usd_per_mwh[f.id]) for f in facilities}
        if prices_usd_per_mwh is not None
        else {
            f.id: float(world.grid.price_usd_per_mwh(f.settlement_point, sim_time_s))
            for f in facilities
        }
    )
    rental_index = {t.type_id: t.rental_index_usd_per_gpu_hour for t in world.gpu_fleet.types}
    busy = world.scheduler.busy
    pools = []
    for index, pool in enumerate(world.pools):
        if not pool.is_gpu:
            continue
        facility = facilities[pool.facility]
        type_id = world.gpu_type_ids[pool.gpu_type]
        pools.append(
            FacilityAvailability(
                facility_id=facility.id,
                region=facility.region,
                gpu_type=type_id,
                total=int(pool.installed),
                available=max(0, int(pool.capacity - busy[index])),
                price_usd_per_gpu_hour=float(rental_index[type_id]) * multiplier,
                power_price_usd_per_mwh=prices[facility.id],
            )
        )
    return TwinSnapshot(
        sim_time_s=float(sim_time_s),
        interval_s=float(interval_s),
        speed=float(speed),
        prices_usd_per_mwh=prices,
        gpu_rental_multiplier=multiplier,
        pools=tuple(pools),
        fleet=fleet,
    )


class TwinLink(Protocol):
    """What the API needs of a twin: the in-process :class:`service.twin_bridge.TwinBridge`
    (tests) and :class:`service.twin_process.TwinProcess` (``serve``, sim or live mode) both
    offer it."""

    scenario: Scenario
    on_update: Callable[[list[JobUpdate]], None] | None

    @property
    def alive(self) -> bool:
        """Whether the twin runs."""
        ...

    def submit(self, job: BridgeJob) -> None:
        """Hand a committed workload to the twin's next tick (thread-safe)."""
        ...

    def snapshot(self) -> TwinSnapshot:
        """The twin as of its last tick."""
        ...
