"""Metering: the usage records of a workload the twin has finished with.

A workload becomes up to four records; summed per (resource_type, unit, pricing) each is
one line of ``GET /v1/billing/usage``. Rates are in :mod:`service.billing`.

* ``gpu:<type>``, ``gpu_s``: GPU-seconds run, work redone after preemptions included;
  priced at the GPU rate quoted at submission, under the workload's pricing. Always written.
* ``inference``, ``requests``: inference requests served (rule below); 1.00 USD per 1,000,
  ``pay_per_use``.
* ``storage``, ``gb_h``: ``requirements["data_gb"]`` held from the run's first start to
  its end [GB-h]; 0.10 USD per GB-month (/ 730 h), ``pay_per_use``.
* ``energy``, ``kwh``: the facility energy the twin attributes to the workload (its share
  of its GPUs' draw times the AI hall's PUE, :class:`service.twin_bridge.EnergyRates`);
  priced 0 under the workload's pricing. It is attribution per tenant, not a charge: the
  GPU-hour rates already cover energy, so invoices still add up to the workloads' costs.

Records other than GPU time are written only when their quantity is above zero.

**Inference requests.** Only the two inference types have them. The count is the one the
submission declares in ``requirements["requests"]`` (a whole number >= 0). A submission
that declares none gets no requests record: an estimate would need a request throughput per
GPU type, and the hardware catalog (:mod:`models.hardware`) has none (it gives power,
memory and rental prices), so the platform bills no guessed count.

**Times.** Quantities follow the twin's simulated time, as GPU-seconds do (the sandbox runs
faster than the wall clock); each record's ``[started_at, ended_at]`` are the workload's
own start and completion stamps, which put it into a billing period.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from twin.service.billing import ENERGY_USD_PER_KWH_BILLED, requests_usd, storage_usd
from twin.service.db.repository import NewUsageRecord, WorkloadRow
from twin.service.twin_bridge import JobUpdate

INFERENCE_TYPES: tuple[str, ...] = ("ai_inference_realtime", "ai_inference_batch")
"""Workload types that serve inference requests."""

DEFAULT_PRICING = "pay_per_use"
"""Billing model of a workload whose requirements name none, and of requests and storage."""


class MeteringError(ValueError):
    """A stored workload has a value metering cannot use; the message names the field."""


def gpu_cost_usd(workload: WorkloadRow, update: JobUpdate) -> float:
    """The GPU time of ``update`` at the rate quoted when ``workload`` was submitted
    (``requirements["usd_per_gpu_hour"]``) [USD]."""
    rate = _number(_requirements(workload), "usd_per_gpu_hour", 0.0)
    return round(update.gpu_seconds / 3600.0 * rate, 6)


def requests_served(workload: WorkloadRow) -> int:
    """Inference requests to bill for ``workload`` [-]: the count its submission declares,
    0 for a workload that is not inference or declares none (see the module docstring)."""
    if workload.workload_type not in INFERENCE_TYPES:
        return 0
    declared = _requirements(workload).get("requests")
    if declared is None:
        return 0
    if isinstance(declared, bool) or not isinstance(declared, int | float):
        raise MeteringError(f"requirements.requests: must be a number, got {declared!r}")
    if not (math.isfinite(declared) and declared >= 0 and declared == int(declared)):
        raise MeteringError(f"requirements.requests: must be a whole number >= 0, got {declared}")
    return int(declared)


def storage_gb_hours(workload: WorkloadRow, update: JobUpdate) -> float:
    """Storage ``workload`` held: its ``data_gb`` over its run's simulated wall time
    (first start to end) [GB-h]."""
    data_gb = _number(_requirements(workload), "data_gb", 0.0)
    return data_gb * max(0.0, update.run_wall_s) / 3600.0


def usage_records(
    workload: WorkloadRow, update: JobUpdate, cost_usd: float
) -> list[NewUsageRecord]:
    """Every usage record of ``workload`` as of ``update`` (see the module docstring).

    Args:
        workload: the stored workload (its customer, type, requirements and time stamps).
        update: the twin's last report on it: GPU-seconds, GPU type, energy, run time.
        cost_usd: what its GPU time costs under its pricing (:func:`gpu_cost_usd`) [USD].
    """
    requirements = _requirements(workload)
    pricing = str(requirements.get("pricing") or DEFAULT_PRICING)
    ended_at = workload.completed_at or datetime.now(UTC)
    started_at = min(workload.started_at or ended_at, ended_at)

    def record(
        resource_type: str, quantity: float, unit: str, usd: float, billed_as: str
    ) -> NewUsageRecord:
        return NewUsageRecord(
            customer_id=workload.customer_id,
            resource_type=resource_type,
            quantity=quantity,
            unit=unit,
            started_at=started_at,
            ended_at=ended_at,
            price_usd=usd,
            pricing=billed_as,
            workload_id=workload.id,
        )

    records = [
        record(f"gpu:{update.gpu_type or 'any'}", update.gpu_seconds, "gpu_s", cost_usd, pricing)
    ]
    requests = requests_served(workload)
    if requests > 0:
        records.append(
            record("inference", requests, "requests", requests_usd(requests), DEFAULT_PRICING)
        )
    gb_hours = storage_gb_hours(workload, update)
    if gb_hours > 0:
        records.append(record("storage", gb_hours, "gb_h", storage_usd(gb_hours), DEFAULT_PRICING))
    if update.energy_kwh > 0:
        energy_usd = round(update.energy_kwh * ENERGY_USD_PER_KWH_BILLED, 6)
        records.append(record("energy", update.energy_kwh, "kwh", energy_usd, pricing))
    return records


def charged_usd(records: Iterable[NewUsageRecord]) -> float:
    """What ``records`` charge in all [USD]: a workload's cost is the sum of its records."""
    return round(float(sum(Decimal(str(r.price_usd)) for r in records)), 6)


def _requirements(workload: WorkloadRow) -> Mapping[str, Any]:
    return workload.requirements or {}


def _number(requirements: Mapping[str, Any], field: str, default: float) -> float:
    """``requirements[field]`` as a finite number >= 0 (``default`` when absent)."""
    value = requirements.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise MeteringError(f"requirements.{field}: must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise MeteringError(f"requirements.{field}: must be finite, got {value}")
    return float(value)
