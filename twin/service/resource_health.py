"""Health of the platform's resources, one per device pool (a facility's miners of one model
or GPUs of one type), as the PRD's ``resources`` table and ``GET /v1/resources`` show it.

A pool is ``offline`` while its site is cut off (a facility outage or a network partition),
``unhealthy`` while any of its devices is out of service (failed, or taken out by the health
monitor after an alert, until repaired), and ``online`` otherwise. The counts say how many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from models.fleet_physics import AsicState, GpuHealth

if TYPE_CHECKING:
    from twin.controller import World
    from twin.fault_injection import FaultInjector

ResourceStatus = Literal["online", "offline", "unhealthy"]
SITE_CUT_OFF = ("facility_outage", "network_partition")
"""Site faults that take every pool of the site offline."""


@dataclass(frozen=True, slots=True)
class ResourceHealth:
    """One device pool.

    Attributes:
        resource_id: ``<facility>:<asic|gpu>:<model or type>``.
        facility_id: its facility.
        type: ``asic`` or ``gpu``.
        subtype: the ASIC model or GPU type id.
        status: ``online``, ``offline`` or ``unhealthy`` (module docstring).
        devices: devices in the pool [-].
        out_of_service: of those, failed or held out after an alert [-].
        reason: why it is not online (empty when it is).
    """

    resource_id: str
    facility_id: str
    type: Literal["asic", "gpu"]
    subtype: str
    status: ResourceStatus
    devices: int
    out_of_service: int
    reason: str = ""


def resource_health(
    world: World, injector: FaultInjector | None, t_s: float
) -> tuple[ResourceHealth, ...]:
    """Every pool of ``world`` at ``t_s`` [s]: miners first, then GPUs, in fleet order.

    Args:
        world: the twin's world (its ASIC and GPU fleets).
        injector: the world's fault injector (None: no faults; only failed devices count).
        t_s: the twin's time [s since its start].
    """
    asic, gpu = world.asic_fleet, world.gpu_fleet
    asic_out = asic.state == AsicState.FAILED
    gpu_out = gpu.state != GpuHealth.OK
    if injector is not None:
        asic_out = asic_out | injector.asic_excluded | injector.asic_down
        gpu_out = gpu_out | injector.gpu_excluded | injector.gpu_down
    cut_off = [
        injector is not None and any(injector.site_active(kind, f, t_s) for kind in SITE_CUT_OFF)
        for f in range(len(world.facility_ids))
    ]
    pools = [
        ("asic", np.asarray(asic.class_start), asic.class_facility, asic_out,
         [asic.models[int(m)].model_id for m in asic.class_model]),
        ("gpu", np.asarray(gpu.pool_start), gpu.pool_facility, gpu_out,
         [gpu.types[int(t)].type_id for t in gpu.pool_type]),
    ]  # fmt: skip
    resources = []
    for kind, starts, facilities, out, subtypes in pools:
        sizes = np.diff(starts)
        group_of_row = np.repeat(np.arange(sizes.size), sizes)
        out_counts = np.bincount(group_of_row, weights=out, minlength=sizes.size)
        for group, subtype in enumerate(subtypes):
            f = int(facilities[group])
            facility_id = world.facility_ids[f]
            devices, down = int(sizes[group]), int(out_counts[group])
            status: ResourceStatus = "online"
            reason = ""
            if cut_off[f]:
                status, reason = "offline", "site cut off (outage or network partition)"
            elif down:
                status, reason = "unhealthy", f"{down} of {devices} devices out of service"
            resources.append(
                ResourceHealth(
                    resource_id=f"{facility_id}:{kind}:{subtype}",
                    facility_id=facility_id,
                    type=kind,  # type: ignore[arg-type]
                    subtype=subtype,
                    status=status,
                    devices=devices,
                    out_of_service=down,
                    reason=reason,
                )
            )
    return tuple(resources)
