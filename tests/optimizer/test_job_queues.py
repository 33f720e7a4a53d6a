"""Waiting queues: class heads, per-pool class lists and the least room a pool's jobs need."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.job_queues import WaitingQueues

POOLS_BY_SHAPE = {0: (0,), 1: (0, 1), 2: (1, 2)}
"""Pools each of three job shapes may run on (shape index = GPU type here)."""


@settings(max_examples=80, deadline=None)
@given(
    actions=st.lists(
        st.tuples(st.booleans(), st.integers(0, 2), st.sampled_from([1.0, 2.0, 8.0])),
        max_size=40,
    )
)
def test_min_units_and_pool_classes_follow_pushes_and_pops(
    actions: list[tuple[bool, int, float]],
) -> None:
    """After any pushes and pops, min_units(pool) is the least room of the non-empty classes
    that may use the pool (inf when none), and classes_for_pool lists exactly those classes."""
    queues = WaitingQueues(type_count=4)
    row = 0
    for push, shape, units in actions:
        if push:
            queues.push(row, float(row), 1, shape, units, 2, POOLS_BY_SHAPE[shape])
            row += 1
        else:
            waiting = queues.nonempty()
            if waiting:
                queues.pop(waiting[row % len(waiting)])
    for pool in range(3):
        listed = queues.classes_for_pool(pool)
        assert all(pool in q.pools for q in listed)
        assert {id(q) for q in queues.nonempty() if pool in q.pools} <= {id(q) for q in listed}
        expected = min((q.units for q in queues.nonempty() if pool in q.pools), default=math.inf)
        assert queues.min_units(pool) == expected
    assert queues.total == sum(len(q.heap) for q in queues.nonempty())


def test_pop_returns_the_earliest_submission_of_a_class() -> None:
    """Within a class, jobs leave in submission order; emptying a class lifts min_units."""
    queues = WaitingQueues(type_count=4)
    queues.push(7, 20.0, 1, 0, 1.0, 2, (0,))
    queues.push(3, 10.0, 1, 0, 1.0, 2, (0,))
    queues.push(9, 5.0, 1, 1, 4.0, 2, (0,))
    assert queues.min_units(0) == 1.0
    small = next(q for q in queues.nonempty() if q.units == 1.0)
    assert queues.pop(small) == 3 and queues.pop(small) == 7
    assert queues.min_units(0) == 4.0 and queues.total == 1
