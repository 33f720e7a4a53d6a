"""Deterministic random streams: one scenario seed, one generator per subsystem.

``numpy.random.SeedSequence(seed)`` spawns a child per name in :data:`STREAMS` in a fixed
order, so a subsystem's draws do not depend on how much any other subsystem draws. New
subsystems are appended at the end so existing streams keep their values.
"""

from __future__ import annotations

import numpy as np

STREAMS = (
    "prices",
    "ancillary",
    "btc_price",
    "network_hashrate",
    "fees",
    "gpu_rental",
    "blocks",
    "grid",
    "workloads",
    "customers",
    "faults",
    "scheduler",
    "telemetry",
)


def spawn_generators(seed: int) -> dict[str, np.random.Generator]:
    """One independent ``Generator`` per name in :data:`STREAMS`, from ``seed``."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }
