"""Fair sharing between customers: start-time fair queuing, quotas, reserved capacity.

Within a priority level, waiting jobs are served in order of a *start tag* (start-time fair
queuing, Goyal et al. 1996): a job of customer ``c`` arriving when the level's virtual time
is ``V`` gets ``S = max(V, F_c)`` and moves the customer's finish tag to ``F_c = S + u w /
φ_c`` (``u``: GPUs or TH/s, ``w``: work [s], ``φ_c``: the customer's weight). ``V`` is the
largest start tag that has begun service. A customer that submits a burst gets growing tags
and waits behind the others' next jobs, so under saturation each backlogged customer
receives service in proportion to its weight, whatever its arrival rate. A preempted job
keeps its tag and so its place.

Quotas are soft (work-conserving): an on-demand customer holding ``quota_gpus`` or more
ranks behind every customer within quota, so it only uses what nobody else waits for.
Reserved customers holding fewer than ``reserved_gpus`` rank ahead of on-demand jobs of the
same priority level (their guaranteed capacity); they have no quota.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from models.customers import Customer
from twin.scenario_scheduling import FairShare as FairShareConfig

OVER_QUOTA_PENALTY = 10.0
"""Added to the priority number of a customer over quota: behind every level [-]."""

RESERVED_BOOST = 0.5
"""Subtracted from the priority number of a reserved customer below its guarantee [-]."""

LEVELS = 4
"""Priority levels tracked (priority numbers 1..3 and a spare)."""


class FairShare:
    """Tags, quotas and guarantees for the customers of one scheduler.

    Args:
        customers: tenants, indexed by ``customer_id``.
        config: the scenario's fair-share rules.
    """

    def __init__(self, customers: Sequence[Customer], config: FairShareConfig) -> None:
        n = max(1, len(customers))
        if config.weights == "demand" and customers:
            weights = np.array([max(c.weight, 1e-9) for c in customers])
            weights = weights / weights.mean()
        else:
            weights = np.ones(n)
        self.weight: list[float] = weights.tolist()
        """Fair-share weight per customer [-] (mean 1)."""
        reserved = np.zeros(n, dtype=bool)
        if config.reserved_customers and customers:
            largest = np.argsort([-c.weight for c in customers], kind="stable")
            reserved[largest[: config.reserved_customers]] = True
        self.reserved: list[bool] = reserved.tolist()
        self.guarantee_gpus: list[float] = [
            float(config.reserved_gpus) if r else 0.0 for r in self.reserved
        ]
        quota = math.inf if config.quota_gpus is None else float(config.quota_gpus)
        self._default_quota = quota
        self.quota_gpus: list[float] = [math.inf if r else quota for r in self.reserved]
        self.tracks_holdings = config.quota_gpus is not None or any(self.guarantee_gpus)
        """Whether GPU holdings per customer change any ranking (else not tracked)."""
        self.held_gpus: list[float] = [0.0] * n
        """GPUs each customer holds now [GPUs] (kept only when ``tracks_holdings``)."""
        self.served_unit_s: list[float] = [0.0] * n
        """Work started per customer, weighted by units [GPU-s or TH/s-s] (tag charges)."""
        self._finish = [[0.0] * n for _ in range(LEVELS)]
        self._virtual = [0.0] * LEVELS

    def ensure_customers(self, count: int) -> None:
        """Make room for customer indices below ``count`` (unknown ones: weight 1,
        on-demand, no quota beyond the configured one)."""
        missing = count - len(self.weight)
        if missing <= 0:
            return
        default_quota = self._default_quota
        self.weight += [1.0] * missing
        self.reserved += [False] * missing
        self.guarantee_gpus += [0.0] * missing
        self.quota_gpus += [default_quota] * missing
        self.held_gpus += [0.0] * missing
        self.served_unit_s += [0.0] * missing
        for finish in self._finish:
            finish += [0.0] * missing

    def tag(self, priority: int, customer: int, units: float, work_s: float) -> float:
        """The start tag of a new job; advances the customer's finish tag."""
        finish = self._finish[priority]
        start = finish[customer]
        virtual = self._virtual[priority]
        if virtual > start:
            start = virtual
        cost = units * work_s
        finish[customer] = start + cost / self.weight[customer]
        self.served_unit_s[customer] += cost
        return start

    def started(self, priority: int, tag: float) -> None:
        """A job with start tag ``tag`` began service at ``priority``: advance virtual time."""
        if tag > self._virtual[priority]:
            self._virtual[priority] = tag

    def rank_adjustment(self, customer: int) -> float:
        """Added to a waiting job's priority number for quota or guarantee [-]."""
        if not self.tracks_holdings:
            return 0.0
        held = self.held_gpus[customer]
        if held < self.guarantee_gpus[customer]:
            return -RESERVED_BOOST
        if held >= self.quota_gpus[customer]:
            return OVER_QUOTA_PENALTY
        return 0.0
