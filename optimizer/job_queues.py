"""Waiting jobs, grouped into classes of interchangeable requests.

Jobs of one class (same workload type, GPU type, size and route group) can run on the same
pools and
need the same room, so if the head of a class does not fit anywhere, no member does. The
scheduler therefore only looks at class heads: placing work after a completion costs
O(classes), not O(waiting jobs). Within a class jobs wait in order of their fair-share start
tag (a heap on ``(tag, row)``, see optimizer.fair_share; a preempted job keeps its tag and
so regains its place).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

ClassKey = tuple[int, int, float, int, int]
"""(workload type code, GPU type index or -1, units asked for [GPUs or TH/s], route group,
owning customer or -1 when the customer does not change a job's rank)."""


@dataclass(slots=True)
class QueueClass:
    """Waiting jobs with one request shape.

    Attributes:
        type_code: workload type code.
        gpu_type: GPU type index (-1: any; mining: -1).
        units: room each job needs [GPUs or TH/s].
        priority: the type's priority number (1 first).
        pools: indices of the pools these jobs may run on.
        group: the customers' route group (optimizer.routing).
        pool_set: ``pools`` as a set for membership tests.
        heap: ``(tag, row)`` of the waiting jobs.
    """

    type_code: int
    gpu_type: int
    units: float
    priority: int
    pools: tuple[int, ...]
    group: int = 0
    pool_set: frozenset[int] = field(default_factory=frozenset)
    heap: list[tuple[float, int]] = field(default_factory=list)

    def head(self) -> tuple[float, int]:
        """``(tag, row)`` of the first job in line."""
        return self.heap[0]


class WaitingQueues:
    """All waiting jobs, by class, with running totals per workload type."""

    def __init__(self, type_count: int) -> None:
        self._classes: dict[ClassKey, QueueClass] = {}
        self._by_pool: dict[int, list[QueueClass]] = {}
        """Classes whose jobs may run on each pool (empty ones included)."""
        self._min_units: dict[int, float] = {}
        """Least room any waiting job of each pool asks for; a pool is missing when that
        changed (a class became empty or non-empty) and it must be recomputed."""
        self.total = 0
        """Waiting jobs [-]."""
        self.jobs_by_type = [0] * type_count
        self.units_by_type = [0.0] * type_count
        """Units asked for by waiting jobs, per type [GPUs or TH/s]."""

    def __len__(self) -> int:
        return self.total

    def push(
        self,
        row: int,
        tag: float,
        type_code: int,
        gpu_type: int,
        units: float,
        priority: int,
        pools: tuple[int, ...],
        group: int = 0,
        owner: int = -1,
    ) -> None:
        """Put a job in line with its fair-share ``tag`` (its class is created on first
        use; ``pools``, in any order, is kept from that first use). ``owner``: the
        customer, when quotas or guarantees make its jobs rank differently (-1: not)."""
        key = (type_code, gpu_type, units, group, owner)
        queue = self._classes.get(key)
        if queue is None:
            queue = QueueClass(type_code, gpu_type, units, priority, pools, group, frozenset(pools))
            self._classes[key] = queue
            for pool in pools:
                self._by_pool.setdefault(pool, []).append(queue)
        if not queue.heap:
            self._forget_min_units(queue)
        heapq.heappush(queue.heap, (tag, row))
        self.total += 1
        self.jobs_by_type[type_code] += 1
        self.units_by_type[type_code] += units

    def pop(self, queue: QueueClass) -> int:
        """Remove and return the row of the head of ``queue``."""
        _tag, row = heapq.heappop(queue.heap)
        if not queue.heap:
            self._forget_min_units(queue)
        self.total -= 1
        self.jobs_by_type[queue.type_code] -= 1
        self.units_by_type[queue.type_code] -= queue.units
        return row

    def classes_for_pool(self, pool: int) -> list[QueueClass]:
        """Every class (empty or not) whose jobs may run on ``pool``, in creation order.

        The list is live: classes created later for ``pool`` are appended to it.
        """
        return self._by_pool.setdefault(pool, [])

    def min_units(self, pool: int) -> float:
        """Least room [GPUs or TH/s] any job waiting for ``pool`` needs (inf: none waits).

        When less than this is free on ``pool``, nothing waiting can start there.
        """
        units = self._min_units.get(pool)
        if units is None:
            units = min((q.units for q in self.classes_for_pool(pool) if q.heap), default=math.inf)
            self._min_units[pool] = units
        return units

    def _forget_min_units(self, queue: QueueClass) -> None:
        for pool in queue.pools:
            self._min_units.pop(pool, None)

    def promote(self, queue: QueueClass, rows: set[int], by: float) -> None:
        """Move ``rows`` of ``queue`` ahead by lowering their key by ``by`` (urgent jobs)."""
        queue.heap[:] = [(tag - by if row in rows else tag, row) for tag, row in queue.heap]
        heapq.heapify(queue.heap)

    def nonempty(self) -> list[QueueClass]:
        """Classes with at least one waiting job, in a fixed (creation) order."""
        return [queue for queue in self._classes.values() if queue.heap]

    def remap(self, new_row: np.ndarray) -> None:
        """Renumber rows after the job table dropped rows (``new_row[old]``, order-keeping)."""
        for queue in self._classes.values():
            queue.heap[:] = [(tag, int(new_row[row])) for tag, row in queue.heap]

    def rows(self) -> list[int]:
        """Rows of all waiting jobs (for audits)."""
        return [row for queue in self._classes.values() for _t, row in queue.heap]
