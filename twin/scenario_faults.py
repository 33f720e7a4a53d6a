"""Scenario schema for fault injection, telemetry and anomaly detection.

Part of the scenario schema (twin.scenario imports it): a top-level ``faults:`` list (one
entry per injected incident, a discriminated union on ``kind``), ``fault_rates:`` for random
faults drawn from the scenario seed, ``telemetry:`` (reading rates and the device sample kept
in full detail) and ``detection:`` (limits of the health monitor and the repair time).

Each fault starts at an aware ``start`` datetime or at ``start_offset_h`` hours after the
scenario start (exactly one of the two) and lasts ``duration_h`` hours, or until the device
is repaired (device faults) or the run ends (site faults) when ``duration_h`` is left out.
Physics and effects: :mod:`models.faults` and :mod:`twin.fault_injection`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FaultBase(_Strict):
    """When a fault starts and how long it lasts, and at which facility."""

    facility: str
    start: datetime | None = None
    start_offset_h: float | None = Field(None, ge=0)
    duration_h: float | None = Field(None, gt=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("needs a UTC offset, e.g. 2025-07-14T06:00:00-05:00")
        return value

    @model_validator(mode="after")
    def _one_start(self) -> _FaultBase:
        if (self.start is None) == (self.start_offset_h is None):
            raise ValueError("give exactly one of start or start_offset_h")
        return self


class _DeviceFault(_FaultBase):
    """A fault on ``count`` devices (or ``fraction`` of them) of one facility's class."""

    count: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_size(self) -> _DeviceFault:
        if self.count is not None and self.fraction is not None:
            raise ValueError("give at most one of count or fraction")
        return self


class _AsicFault(_DeviceFault):
    model: str | None = None
    """ASIC model id (catalog key); None: any miner of the facility."""


class HashboardFailure(_AsicFault):
    """Hashboards of a miner stop: hashrate falls by 1/3 per failed board at the same power
    (J/TH rises); three boards is a dead miner."""

    kind: Literal["hashboard_failure"] = "hashboard_failure"
    boards: int = Field(1, ge=1, le=3)


class FanFailure(_AsicFault):
    """A fan stops: the chip's temperature rise per kW grows by ``thermal_multiplier``; past
    the firmware's throttle temperature the miner cuts its power (and hashrate)."""

    kind: Literal["fan_failure"] = "fan_failure"
    thermal_multiplier: float = Field(1.6, gt=1, le=5)


class ThermalRunaway(_AsicFault):
    """Chip temperature climbs by ``rise_c_per_min`` until the miner trips at ``trip_c``."""

    kind: Literal["thermal_runaway"] = "thermal_runaway"
    rise_c_per_min: float = Field(3.0, gt=0, le=60)
    trip_c: float = Field(105.0, gt=40, le=200)


class GpuXid(_DeviceFault):
    """A GPU logs XID / uncorrectable ECC errors at ``errors_per_hour`` (Poisson) and keeps
    running until the controller takes it out of service."""

    kind: Literal["gpu_xid"] = "gpu_xid"
    gpu_type: str | None = None
    errors_per_hour: float = Field(30.0, gt=0, le=36000)


class NodeFailure(_FaultBase):
    """``nodes`` whole GPU nodes go down: their GPUs stop reporting and drawing power, and
    the jobs on them resume from their last checkpoint elsewhere."""

    kind: Literal["node_failure"] = "node_failure"
    gpu_type: str | None = None
    nodes: int = Field(1, ge=1)


class NetworkPartition(_FaultBase):
    """The controller loses contact with a site: no telemetry, commands not delivered,
    devices keep their last setpoint."""

    kind: Literal["network_partition"] = "network_partition"


class FacilityOutage(_FaultBase):
    """Site power is lost: every device of the site is off and its jobs move elsewhere."""

    kind: Literal["facility_outage"] = "facility_outage"


class PriceFeedGap(_FaultBase):
    """The site's real-time price feed stops: the controller sees stale prices and falls back
    to a conservative price (the highest of the last hour)."""

    kind: Literal["price_feed_gap"] = "price_feed_gap"


class PoolOutage(_FaultBase):
    """The mining pool is unreachable from the site: shares are not accepted, so mining earns
    nothing while it lasts."""

    kind: Literal["pool_outage"] = "pool_outage"


Fault = Annotated[
    HashboardFailure
    | FanFailure
    | ThermalRunaway
    | GpuXid
    | NodeFailure
    | NetworkPartition
    | FacilityOutage
    | PriceFeedGap
    | PoolOutage,
    Field(discriminator="kind"),
]

DEVICE_FAULT_KINDS = ("hashboard_failure", "fan_failure", "thermal_runaway", "gpu_xid")
SITE_FAULT_KINDS = ("network_partition", "facility_outage", "price_feed_gap", "pool_outage")


class FaultRates(_Strict):
    """Random faults: expected incidents per device (per node) per year [1/yr], drawn from
    the scenario seed at build time; each lasts until the device is repaired."""

    hashboard_failure_per_device_year: float = Field(0.0, ge=0, le=1000)
    fan_failure_per_device_year: float = Field(0.0, ge=0, le=1000)
    thermal_runaway_per_device_year: float = Field(0.0, ge=0, le=1000)
    gpu_xid_per_device_year: float = Field(0.0, ge=0, le=1000)
    node_failure_per_node_year: float = Field(0.0, ge=0, le=1000)
    node_failure_duration_h: float = Field(4.0, gt=0, le=8760)
    """How long a random node failure keeps its node down [h]."""


class Telemetry(_Strict):
    """Device readings in the simulation, at the PRD rates by default.

    Every device reports every ``gpu_interval_s`` / ``asic_interval_s``; each dispatch
    interval the readings are summarised per device (mean of the interval's readings) for the
    health monitor and per facility and class for ``telemetry_summary.parquet``. Up to
    ``sample_per_class`` devices of each (facility, class) keep every reading in
    ``telemetry.parquet`` (0: summaries only, which keeps a week's results small).
    """

    enabled: bool = True
    gpu_interval_s: float = Field(1.0, ge=0.1, le=3600)
    asic_interval_s: float = Field(10.0, ge=0.1, le=3600)
    sample_per_class: int = Field(0, ge=0, le=256)


class Detection(_Strict):
    """The health monitor: statistical limits, timeouts and repairs.

    ``shewhart_sigma``: a device's interval mean residual beyond this many standard errors
    raises an alert; ``ewma_sigma`` does the same for the EWMA (weight ``ewma_lambda``) of
    those means across intervals (slow drifts). An alert is dated by the first reading where
    a CUSUM (reference ``cusum_k``, limit ``cusum_h``, in reading standard deviations) of
    the device's readings crosses. ``isolation_forest``: score each alerted device's
    residual vector with an IsolationForest trained on the first intervals (triage).
    ``heartbeat_timeout_s``: a device or site silent this long is unreachable.
    ``repair_s``: an alerted device is out of service this long, then comes back repaired.
    """

    enabled: bool = True
    shewhart_sigma: float = Field(7.0, gt=2, le=100)
    ewma_lambda: float = Field(0.2, gt=0, le=1)
    ewma_sigma: float = Field(6.0, gt=2, le=100)
    cusum_k: float = Field(0.5, ge=0, le=10)
    cusum_h: float = Field(8.0, gt=0, le=1000)
    isolation_forest: bool = True
    heartbeat_timeout_s: float = Field(30.0, gt=0, le=3600)
    share_timeout_s: float = Field(60.0, gt=0, le=3600)
    price_stale_after_s: float = Field(60.0, ge=0, le=86400)
    """Grace after a missed price update before the feed counts as stale [s]."""
    repair_s: float = Field(14400.0, gt=0, le=30 * 86400)


def fault_problems(
    faults: list[Fault],
    sites: dict[str, tuple[dict[str, int], dict[str, tuple[int, int]]]],
) -> list[str]:
    """Problems with faults that name what the scenario lacks, as ``faults[i].field: reason``.

    ``sites`` maps facility id to (ASICs per model id, (GPUs, nodes) per GPU type id).
    """
    problems = []
    for index, fault in enumerate(faults):
        where = f"faults[{index}]"
        if fault.facility not in sites:
            known = ", ".join(sorted(sites))
            problems.append(f"{where}.facility: no such facility {fault.facility!r} ({known})")
            continue
        asics, gpus = sites[fault.facility]
        if isinstance(fault, HashboardFailure | FanFailure | ThermalRunaway):
            problems += _size_problems(where, fault, asics, fault.model, "model", "ASICs")
        elif isinstance(fault, GpuXid):
            counts = {k: v[0] for k, v in gpus.items()}
            problems += _size_problems(where, fault, counts, fault.gpu_type, "gpu_type", "GPUs")
        elif isinstance(fault, PoolOutage) and not sum(asics.values()):
            problems.append(f"{where}.facility: {fault.facility} has no miners to lose a pool")
        elif isinstance(fault, NodeFailure):
            nodes = {k: v[1] for k, v in gpus.items()}
            available = _available(nodes, fault.gpu_type)
            if available is None:
                problems.append(_absent(where, "gpu_type", fault.gpu_type, fault.facility))
            elif fault.nodes > available:
                problems.append(
                    f"{where}.nodes: {fault.nodes} > the {available} GPU nodes at {fault.facility}"
                )
    return problems


def _available(counts: dict[str, int], key: str | None) -> int | None:
    if key is None:
        return sum(counts.values())
    return counts.get(key)


def _absent(where: str, field: str, key: str | None, facility: str) -> str:
    if key is None:
        return f"{where}.facility: {facility} has no such devices"
    return f"{where}.{field}: {facility} has no {key!r}"


def _size_problems(
    where: str,
    fault: _DeviceFault,
    counts: dict[str, int],
    key: str | None,
    field: str,
    noun: str,
) -> list[str]:
    available = _available(counts, key)
    if not available:
        return [_absent(where, field, key, fault.facility)]
    if fault.count is not None and fault.count > available:
        return [f"{where}.count: {fault.count} > the {available} {noun} there"]
    return []
