"""Routing jobs across facilities: which pools a job may use, in which order of preference.

Customers are grouped by what routing depends on — home region and data residency — into
*route groups*. For each (workload type, GPU type, route group) the table holds the
candidate pools:

* **Eligible** pools have the job's GPU type (any, if the job names none) or are ASIC pools
  for mining. A customer with data residency may only use sites in its home region.
  Realtime inference may only use sites whose network latency from the customer's region
  is within ``realtime_network_budget_ms``. A job with no eligible pool but pools of its
  type elsewhere is rejected with the reason (residency, latency).
* **Order.** Realtime inference: least latency, then least energy cost. Other work: least
  cost per GPU-hour — energy at the site (:meth:`RouteTable.set_energy_costs`) plus, at a
  site outside the customer's region, moving the job's data there amortized over the
  type's typical GPU-hours — then least latency. Ties keep pool order.

Moving a job's data to a site outside the customer's region takes ``data_gb * 8 /
bandwidth_gbps`` seconds (added to the job's run time on the GPUs) and costs
``data_gb * transfer_usd_per_gb``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.customers import Customer
from models.job_table import GPU_TYPE_ABSENT, LATENCY_UNMET, RESIDENCY_UNMET
from models.workload_types import MINING, REALTIME, TYPE_COUNT, WORKLOAD_SPECS
from optimizer.pools import Pool
from twin.scenario import Workloads
from twin.scenario_scheduling import REGIONS, Routing

RouteKey = tuple[int, int, int]
"""(workload type code, GPU type index or -1 for any, route group)."""

_NEIGHBOURS = {frozenset({"us-central", "us-east"}), frozenset({"us-central", "us-west"})}


def region_latency_ms(routing: Routing, customer_region: str, facility_id: str, site: str) -> float:
    """One-way network latency from a customer region to a site [ms]: the configured
    value, else by region distance (same, neighbouring or far)."""
    configured = routing.latency_ms.get(customer_region, {})  # type: ignore[call-overload]
    if facility_id in configured:
        return float(configured[facility_id])
    if customer_region == site:
        return routing.same_region_ms
    if frozenset({customer_region, site}) in _NEIGHBOURS:
        return routing.neighbour_region_ms
    return routing.far_region_ms


class RouteTable:
    """Candidate pools per (type, GPU type, route group), in preference order.

    Args:
        pools: the scheduler's pools (their facility id and region place them).
        customers: tenants (their region and residency set their route group).
        routing: the scenario's routing rules.
        data_gb_by_type: input data per job, per type code [GB].
        typical_gpu_hours_by_type: GPU-hours of a typical job, per type code (amortizes the
            data transfer cost in the ordering) [GPU-h].
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        customers: Sequence[Customer],
        routing: Routing,
        data_gb_by_type: Sequence[float],
        typical_gpu_hours_by_type: Sequence[float],
    ) -> None:
        self.pools = list(pools)
        self.routing = routing
        self.data_gb_by_type = [float(x) for x in data_gb_by_type]
        self.typical_gpu_hours_by_type = [max(float(x), 1e-9) for x in typical_gpu_hours_by_type]
        groups: dict[tuple[str, bool], int] = {}
        self.group_of_customer: list[int] = []
        for customer in customers:
            key = (customer.region, customer.data_residency)
            self.group_of_customer.append(groups.setdefault(key, len(groups)))
        if not groups:
            groups[(REGIONS[0], False)] = 0
        self.groups: list[tuple[str, bool]] = list(groups)
        self._pool_region = [p.region for p in self.pools]
        self.latency_ms = [
            [
                region_latency_ms(routing, region, p.facility_id, site)
                for p, site in zip(self.pools, self._pool_region, strict=True)
            ]
            for region, _residency in self.groups
        ]
        """Latency [ms] per route group and pool."""
        self.off_region = [
            [site != region for site in self._pool_region] for region, _r in self.groups
        ]
        """Whether each pool is outside each group's region (its data must move)."""
        self._energy = [0.0] * len(self.pools)
        self._eligible: dict[RouteKey, tuple[int, ...]] = {}
        self._ordered: dict[RouteKey, tuple[int, ...]] = {}

    def groups_of(self, customers: np.ndarray) -> np.ndarray:
        """Route group of each customer index (group 0 for customers not known here)."""
        table = np.asarray(self.group_of_customer or [0], dtype=np.int64)
        index = np.asarray(customers, dtype=np.int64)
        return np.where(index < table.size, table[np.minimum(index, table.size - 1)], 0)

    @property
    def energy_costs(self) -> list[float]:
        """This interval's energy cost per pool [USD/GPU-h]."""
        return self._energy

    def set_energy_costs(self, usd_per_gpu_hour: Sequence[float] | None) -> None:
        """Energy cost of one GPU-hour in each pool this interval [USD/GPU-h] (ASIC pools:
        ignored); re-orders candidates. None: all equal."""
        values = [0.0] * len(self.pools) if usd_per_gpu_hour is None else list(usd_per_gpu_hour)
        if len(values) != len(self.pools):
            raise ValueError(f"routing: {len(values)} energy costs for {len(self.pools)} pools")
        if values != self._energy:
            self._energy = [float(x) for x in values]
            self._ordered.clear()

    def candidates(self, type_code: int, gpu_type: int, group: int) -> tuple[int, ...]:
        """Pools the job may use, most preferred first (empty: none)."""
        key = (type_code, gpu_type, group)
        ordered = self._ordered.get(key)
        if ordered is None:
            ordered = self._ordered[key] = self._order(key, self.eligible(key))
        return ordered

    def eligible(self, key: RouteKey) -> tuple[int, ...]:
        """The eligible pools of ``key`` in pool order (fixed over a run)."""
        found = self._eligible.get(key)
        if found is None:
            found = self._eligible[key] = tuple(
                i for i in self._of_type(key[0], key[1]) if self._allowed(key, i)
            )
        return found

    def reject_reason(self, type_code: int, gpu_type: int, group: int) -> int:
        """Why a job has no candidate: GPU type absent, residency or latency (0: it has)."""
        if self.eligible((type_code, gpu_type, group)):
            return 0
        of_type = self._of_type(type_code, gpu_type)
        if not of_type:
            return GPU_TYPE_ABSENT
        region, residency = self.groups[group]
        if residency and all(self._pool_region[i] != region for i in of_type):
            return RESIDENCY_UNMET
        return LATENCY_UNMET

    def transfer_s(self, type_code: int, group: int, pool: int) -> float:
        """Time to move the job's data to ``pool`` [s] (0 in the customer's region)."""
        if not self.off_region[group][pool]:
            return 0.0
        return self.data_gb_by_type[type_code] * 8.0 / self.routing.bandwidth_gbps

    def transfer_gb(self, type_code: int, group: int, pool: int) -> float:
        """Data moved when the job runs on ``pool`` [GB]."""
        return self.data_gb_by_type[type_code] if self.off_region[group][pool] else 0.0

    def _of_type(self, type_code: int, gpu_type: int) -> list[int]:
        if type_code == MINING:
            return [i for i, p in enumerate(self.pools) if not p.is_gpu]
        return [
            i
            for i, p in enumerate(self.pools)
            if p.is_gpu and (gpu_type < 0 or p.gpu_type == gpu_type)
        ]

    def _allowed(self, key: RouteKey, pool: int) -> bool:
        type_code, _gpu_type, group = key
        region, residency = self.groups[group]
        if residency and self._pool_region[pool] != region:
            return False
        budget = self.routing.realtime_network_budget_ms
        return not (type_code == REALTIME and self.latency_ms[group][pool] > budget)

    def _order(self, key: RouteKey, eligible: tuple[int, ...]) -> tuple[int, ...]:
        type_code, _gpu_type, group = key
        latency = self.latency_ms[group]
        if type_code == REALTIME:
            return tuple(sorted(eligible, key=lambda i: (latency[i], self._energy[i], i)))
        transfer_usd = self.data_gb_by_type[type_code] * self.routing.transfer_usd_per_gb
        per_gpu_hour = transfer_usd / self.typical_gpu_hours_by_type[type_code]
        off = self.off_region[group]

        def cost(i: int) -> tuple[float, float, int]:
            return (self._energy[i] + (per_gpu_hour if off[i] else 0.0), latency[i], i)

        return tuple(sorted(eligible, key=cost))


def routing_inputs(workloads: Workloads | None) -> tuple[list[float], list[float]]:
    """Data per job [GB] and GPU-hours of a typical job [GPU-h], per type code."""
    data_gb = [0.0] * TYPE_COUNT
    gpu_hours = [1.0] * TYPE_COUNT
    if workloads is None:
        return data_gb, gpu_hours
    for spec in WORKLOAD_SPECS:
        demand = workloads.demand.get(spec.name)  # type: ignore[call-overload]
        if demand is None:
            continue
        data_gb[spec.code] = float(demand.data_gb)
        sizes = np.asarray(demand.gpus.values, dtype=float)
        weights = np.asarray(demand.gpus.weights or [1.0] * sizes.size, dtype=float)
        mean_gpus = float(sizes @ weights / weights.sum())
        gpu_hours[spec.code] = mean_gpus * demand.duration_median_s / 3600.0
    return data_gb, gpu_hours
