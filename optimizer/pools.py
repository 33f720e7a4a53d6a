"""Resource pools the scheduler places jobs on.

A GPU pool is the GPUs of one type at one facility, counted in GPUs; an ASIC pool is the
mining fleet of one facility, counted in TH/s. ``installed`` is nameplate (what admission
judges a job against: a job that cannot fit even an empty, healthy pool is rejected);
``capacity`` is what is healthy now (installed minus failed), set by the controller. The
per-interval ``limit`` the controller passes to the scheduler (power budget, curtailment)
is clipped to ``capacity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from twin.scenario import Scenario


class PoolKind(Enum):
    """What a pool is made of and the unit it counts in."""

    GPU = "gpu"
    """GPUs of one type; unit: GPUs."""
    ASIC = "asic"
    """Mining ASICs of one facility; unit: TH/s."""


@dataclass(slots=True)
class Pool:
    """One pool of interchangeable capacity.

    Attributes:
        facility: index of the facility in the scenario's facility list.
        facility_id: the facility's id (for messages and records).
        kind: GPU or ASIC.
        gpu_type: index into the twin's GPU type names (-1 for ASIC pools).
        installed: nameplate capacity [GPUs or TH/s].
        node_size: GPUs per node (1 for ASIC pools) [-].
        capacity: healthy capacity now [GPUs or TH/s]; starts at ``installed``.
        region: network region of the facility (routing).
    """

    facility: int
    facility_id: str
    kind: PoolKind
    gpu_type: int
    installed: float
    node_size: int = 1
    capacity: float = field(default=-1.0)
    region: str = "us-central"

    def __post_init__(self) -> None:
        if self.installed < 0:
            raise ValueError(f"pool at {self.facility_id}: installed must be >= 0")
        if self.node_size < 1:
            raise ValueError(f"pool at {self.facility_id}: node_size must be >= 1")
        if self.capacity < 0:
            self.capacity = self.installed
        if self.capacity > self.installed:
            raise ValueError(f"pool at {self.facility_id}: capacity exceeds installed")

    @property
    def is_gpu(self) -> bool:
        """True for a GPU pool."""
        return self.kind is PoolKind.GPU


def scenario_gpu_type_ids(scenario: Scenario) -> list[str]:
    """GPU type ids present in the scenario, in first-seen order (the ``gpu_type`` index)."""
    seen: dict[str, None] = {}
    for facility in scenario.facilities:
        for group in facility.gpus:
            seen.setdefault(group.spec().type_id, None)
    return list(seen)


def pools_from_scenario(scenario: Scenario, gpu_type_ids: Sequence[str]) -> list[Pool]:
    """One GPU pool per (facility, GPU type) and one ASIC pool per facility with miners.

    GPU groups of one type at one facility are merged (their node size must agree). The
    ASIC pool's ``installed`` is the nameplate hashrate of all its miners at stock tuning
    [TH/s]; the controller passes the active hashrate as the pool's limit.

    Raises:
        ValueError: groups of one type at one facility have different node sizes, or a
            type is missing from ``gpu_type_ids``.
    """
    pools: list[Pool] = []
    for f_index, facility in enumerate(scenario.facilities):
        by_type: dict[str, tuple[int, int]] = {}
        for g_index, group in enumerate(facility.gpus):
            type_id = group.spec().type_id
            count, node_size = by_type.get(type_id, (0, group.node_size))
            if node_size != group.node_size:
                raise ValueError(
                    f"facilities[{f_index}].gpus[{g_index}].node_size: {type_id} groups at "
                    f"{facility.id} must share one node size ({node_size} vs {group.node_size})"
                )
            by_type[type_id] = (count + group.count, node_size)
        for type_id, (count, node_size) in by_type.items():
            if type_id not in gpu_type_ids:
                raise ValueError(f"GPU type {type_id!r} of {facility.id} is not in gpu_type_ids")
            pools.append(
                Pool(
                    f_index,
                    facility.id,
                    PoolKind.GPU,
                    list(gpu_type_ids).index(type_id),
                    float(count),
                    node_size,
                    region=facility.region,
                )
            )
        hashrate_ths = sum(g.count * g.spec().hashrate_ths for g in facility.asics)
        if hashrate_ths > 0:
            pools.append(
                Pool(
                    f_index,
                    facility.id,
                    PoolKind.ASIC,
                    -1,
                    float(hashrate_ths),
                    region=facility.region,
                )
            )
    return pools
