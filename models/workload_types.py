"""The four workload types of the platform and the properties the scheduler acts on.

A job's type is stored as a small integer code: the position of its name in
:data:`twin.scenario.WORKLOAD_TYPES` (``ai_inference_realtime`` = 0 ... ``bitcoin_mining`` = 3).
Properties follow the seed PRD table in DESIGN.md ("Workload types"): a lower priority number
is served first; ``max_latency_s`` is the longest acceptable wait from submission to start
(``inf``: none); interruptible jobs may be preempted and requeued.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.scenario import WORKLOAD_TYPES


@dataclass(frozen=True, slots=True)
class WorkloadTypeSpec:
    """Scheduling properties of one workload type.

    Attributes:
        code: integer code of the type (its index in ``WORKLOAD_TYPES``).
        name: type name as in the scenario (``model_training``).
        priority: 1 is served first; larger numbers wait and are preempted first [-].
        max_latency_s: longest acceptable wait from submission to start [s] (inf: none).
        interruptible: may be preempted and requeued.
        checkpoints: progress survives preemption up to the last checkpoint (taken every
            ``checkpoint_interval_s`` of work); a GPU job without checkpoints loses all the
            work of its current run. Mining loses nothing: hashing has no progress to keep.
        on_asic: runs on the mining ASICs (asks for TH/s) instead of GPUs.
        has_deadline: the SLA is "complete by ``submit + deadline_factor * work``".
    """

    code: int
    name: str
    priority: int
    max_latency_s: float
    interruptible: bool
    checkpoints: bool
    on_asic: bool
    has_deadline: bool


REALTIME, BATCH, TRAINING, MINING = range(4)
"""Integer codes of the four workload types, in ``WORKLOAD_TYPES`` order."""

WORKLOAD_SPECS: tuple[WorkloadTypeSpec, ...] = (
    WorkloadTypeSpec(REALTIME, WORKLOAD_TYPES[REALTIME], 1, 0.1, False, False, False, False),
    WorkloadTypeSpec(BATCH, WORKLOAD_TYPES[BATCH], 2, 5.0, True, True, False, True),
    WorkloadTypeSpec(TRAINING, WORKLOAD_TYPES[TRAINING], 2, float("inf"), True, True, False, True),
    WorkloadTypeSpec(MINING, WORKLOAD_TYPES[MINING], 3, 60.0, True, False, True, False),
)
"""One spec per type, indexed by type code."""

TYPE_COUNT = len(WORKLOAD_SPECS)

PRIORITY_BY_CODE = np.array([s.priority for s in WORKLOAD_SPECS], dtype=np.int8)
"""Priority per type code, for vectorized lookups (``PRIORITY_BY_CODE[job_types]``)."""

TYPE_NAMES: tuple[str, ...] = tuple(s.name for s in WORKLOAD_SPECS)


def type_code(name: str) -> int:
    """The integer code of a workload type name; ValueError naming the known types."""
    try:
        return TYPE_NAMES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown workload type {name!r}; known: {', '.join(TYPE_NAMES)}"
        ) from None
