"""The interruptible jobs running on one pool, indexed for choosing preemption victims fast.

Preemption picks, among thousands of running jobs, the one that is cheapest to stop: lowest
priority first (largest priority number), then least work lost since its last checkpoint,
then the most recently started. Under a tight limit every realtime arrival may preempt, so
this choice must cost far less than a pass over all running jobs.

Every run segment starts at a checkpoint boundary (a fresh job at 0, a resumed job at its
last checkpoint), so a job that started its segment at ``s`` loses ``(t - s) mod c`` seconds
of work if stopped at ``t`` (``c``: its checkpoint interval; no checkpoints: ``c = inf``, it
loses the whole segment). Lost work is weighed in GPU-seconds (stopping a 64-GPU gang loses
64 times what a 1-GPU job does); mining loses nothing.

Jobs are grouped by (priority, units, checkpoint interval). Within a group the loss is
smallest for the job whose phase ``s mod c`` is the largest one not above ``t mod c``
(circularly), so each group keeps its jobs sorted by phase and the best victim of a group is
one bisection away; the best overall is the best of a handful of groups.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

import numpy as np

GroupKey = tuple[int, float, float]
"""(priority number, units, checkpoint interval [s])."""

VictimKey = tuple[int, float, int]
"""Orders victims, smaller first: (-priority, lost GPU-seconds, -row)."""


class RunningSet:
    """Interruptible running jobs of one pool.

    Args:
        loses_work: True for GPU pools (stopping loses work since the last checkpoint);
            False for ASIC pools, where it loses nothing.
    """

    def __init__(self, loses_work: bool) -> None:
        self.loses_work = loses_work
        self._groups: dict[GroupKey, list[tuple[float, int]]] = {}
        self._entries: dict[int, tuple[GroupKey, float, float]] = {}
        """Row -> (group, phase [s], segment start [s])."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, row: int) -> bool:
        return row in self._entries

    @property
    def rows(self) -> np.ndarray:
        """Rows of the jobs in the set (ascending)."""
        return np.array(sorted(self._entries), dtype=np.int64)

    def add(
        self, row: int, segment_start_s: float, checkpoint_s: float, units: float, priority: int
    ) -> None:
        """Enter a job that started a run at ``segment_start_s`` [s] holding ``units``."""
        interval_s = checkpoint_s if self.loses_work else math.inf
        group = (priority, units, interval_s)
        phase = segment_start_s % interval_s if math.isfinite(interval_s) else segment_start_s
        members = self._groups.get(group)
        if members is None:
            members = self._groups[group] = []
        insort(members, (phase, row))
        self._entries[row] = (group, phase, segment_start_s)

    def remove(self, row: int) -> None:
        """Drop a job (completed or preempted)."""
        group, phase, _start = self._entries.pop(row)
        members = self._groups[group]
        del members[bisect_left(members, (phase, row))]
        if not members:
            del self._groups[group]

    def remap(self, new_row: np.ndarray) -> None:
        """Renumber rows after the job table dropped rows (``new_row[old]``, order-keeping)."""
        self._entries = {int(new_row[row]): entry for row, entry in self._entries.items()}
        for members in self._groups.values():
            members[:] = [(phase, int(new_row[row])) for phase, row in members]

    def lost_s(self, row: int, t_s: float) -> float:
        """Work the job at ``row`` would lose if stopped at ``t_s`` [s]."""
        group, _phase_s, start_s = self._entries[row]
        return math.fmod(t_s - start_s, group[2]) if self.loses_work else 0.0

    def best_victim(
        self,
        t_s: float,
        below_priority: int,
        min_units: float,
        started_before_s: float = math.inf,
    ) -> tuple[VictimKey, int, float] | None:
        """The cheapest job to stop that frees at least ``min_units``, whose priority
        number is above ``below_priority`` and whose run started at or before
        ``started_before_s`` [s] (younger runs are spared): ``(key, row, units)``, or None."""
        best: tuple[VictimKey, int, float] | None = None
        targets: dict[float, float] = {}
        entries = self._entries
        for (priority, units, interval_s), members in self._groups.items():
            if not members or priority <= below_priority or units < min_units:
                continue
            if best is not None and -priority > best[0][0]:
                continue
            target = targets.get(interval_s)
            if target is None:
                target = targets[interval_s] = _phase(t_s, interval_s)
            index = bisect_right(members, (target, math.inf)) - 1
            for _ in range(len(members)):  # cheapest first, circularly; skip young runs
                phase, row = members[index]
                if entries[row][2] <= started_before_s:
                    break
                index = index - 1 if index > -len(members) else -1
            else:
                continue
            if not self.loses_work:
                lost = 0.0
            elif index >= 0:
                lost = (target - phase) * units
            else:
                lost = (target - phase + interval_s) * units
            key = (-priority, lost, -row)
            if best is None or key < best[0]:
                best = (key, row, units)
        return best

    def ranked_victims(
        self,
        t_s: float,
        below_priority: int,
        started_before_s: float = math.inf,
        spare_young: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every eligible job, cheapest first: ``(rows, units)`` (see :meth:`best_victim`).

        Runs started after ``started_before_s`` are left out (``spare_young``) or ranked
        after all others (``spare_young=False``: a power limit must be met).
        """
        count = len(self._entries)
        rows = np.fromiter(self._entries, dtype=np.int64, count=count)
        priority = np.empty(count, dtype=np.int64)
        units = np.empty(count)
        interval_s = np.empty(count)
        start_s = np.empty(count)
        for i, (group, _phase_s, segment_start_s) in enumerate(self._entries.values()):
            priority[i], units[i], interval_s[i] = group
            start_s[i] = segment_start_s
        lost = np.fmod(t_s - start_s, interval_s) * units
        if not self.loses_work:
            lost[:] = 0.0
        young = start_s > started_before_s
        order = np.lexsort((-rows, lost, -priority, young))
        keep = priority[order] > below_priority
        if spare_young:
            keep &= ~young[order]
        order = order[keep]
        return rows[order], units[order]


def _phase(t_s: float, interval_s: float) -> float:
    """Position of ``t_s`` within its checkpoint period [s] (``t_s`` itself if none)."""
    return t_s % interval_s if math.isfinite(interval_s) else t_s
