"""Room promised to a starving queue head (EASY backfilling).

When the best-ranked waiting job has waited too long and does not fit, one pool promises it
room at the *shadow time*: the earliest time the running jobs' ends free enough. Until then
other work may start there only if it ends before the shadow time or fits in the room the
promise leaves spare, so the waiting job starts no later than promised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

_EPS = 1e-9
"""Slack for comparing sums of units [GPUs or TH/s]."""


@dataclass(slots=True)
class Reservation:
    """Room promised on one pool to a starving queue head.

    Attributes:
        row: the job it is for.
        shadow_s: when enough room will have freed for it [s] (inf: never under the
            current limit; then nothing is held back).
        spare: units free at ``shadow_s`` beyond its need, which other work may use for any
            length of time [GPUs or TH/s].
    """

    row: int
    shadow_s: float
    spare: float

    def fits(self, end_s: float, units: float) -> bool:
        """Whether work of ``units`` ending at ``end_s`` leaves the promise intact."""
        return end_s <= self.shadow_s or units <= self.spare + _EPS

    def admit(self, end_s: float, units: float) -> bool:
        """:meth:`fits`, and if the work only fits in the spare room, take it from there."""
        if end_s <= self.shadow_s:
            return True
        if units <= self.spare + _EPS:
            self.spare -= units
            return True
        return False


def reserve(
    row: int, units: float, free: float, running_ends: Iterable[tuple[float, float]]
) -> Reservation:
    """The promise for job ``row`` needing ``units`` on a pool with ``free`` room now, given
    ``(end_s, units)`` of every job running there: the shadow time and the spare room."""
    room = free
    for end_s, held in sorted(running_ends):
        room += held
        if room >= units - _EPS:
            return Reservation(row, end_s, room - units)
    return Reservation(row, math.inf, 0.0)
