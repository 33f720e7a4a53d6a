"""Request and response bodies of REST API v1 (the PRD's Appendix A.1 and A.2 shapes).

``WorkloadRequest`` is what a customer posts to ``/v1/workloads/submit``; its
``requirements`` map onto :class:`optimizer.classify.Submission`, which checks them and picks
the workload type (every problem is returned at once, each naming its field).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

Pricing = Literal["pay_per_use", "reserved", "spot"]


def _as_utc(value: datetime) -> datetime:
    """A timezone-aware time moved to UTC; ValueError (a 422 naming the field) when it has
    no zone or when moving it to UTC leaves the calendar (e.g. 9999-12-31T23:59-23:59)."""
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-01-31T12:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of the calendar's range once moved to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A request time: must carry a zone; held in UTC."""
WorkloadStatus = Literal["queued", "running", "completed", "failed", "cancelled", "rejected"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Requirements(_Body):
    """What the workload needs (fields of :class:`optimizer.classify.Submission`)."""

    estimated_duration_s: float = Field(gt=0, le=365 * 86400)
    gpu_count: int = Field(0, ge=0, le=4096)
    gpu_type: str | None = Field(None, max_length=40)
    hashrate_ths: float = Field(0.0, ge=0, le=1e7)
    max_latency_ms: float | None = Field(None, gt=0, le=86400000)
    interruptible: bool | None = None
    checkpoint_interval_s: float | None = Field(None, gt=0, le=365 * 86400)
    data_residency: str | None = Field(None, max_length=20)
    data_gb: float = Field(0.0, ge=0, le=1e7)
    requests: int | None = Field(None, ge=0, le=10**12)
    """Inference requests the workload will serve (metered and billed per 1,000)."""


class WorkloadRequest(_Body):
    """``POST /v1/workloads/submit`` (A.1 request)."""

    workload_type: str | None = Field(None, max_length=40)
    requirements: Requirements
    deadline: UtcDatetime | None = None
    pricing: Pricing = "pay_per_use"
    callback_url: HttpUrl | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class EstimatedCost(_Body):
    """What the workload is expected to cost."""

    usd: float
    pricing: Pricing
    usd_per_gpu_hour: float


class Sla(_Body):
    """The service level the workload gets."""

    workload_type: str
    priority: int
    max_latency_ms: float | None
    deadline: datetime | None
    interruptible: bool


class WorkloadAccepted(_Body):
    """``POST /v1/workloads/submit`` (A.1 response)."""

    workload_id: str
    status: WorkloadStatus
    estimated_start: datetime
    estimated_cost: EstimatedCost
    sla: Sla


class WorkloadView(_Body):
    """``GET /v1/workloads/{id}/status`` and list items."""

    workload_id: str
    customer_id: str
    workload_type: str
    status: WorkloadStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    facility_id: str | None
    cost_usd: float | None
    requirements: dict[str, Any]


class WorkloadPage(_Body):
    """``GET /v1/workloads`` (keyset-paginated)."""

    items: list[WorkloadView]
    next_cursor: str | None


class FacilityAvailability(_Body):
    """Free capacity of one GPU type at one facility (A.2 response item)."""

    facility_id: str
    region: str
    gpu_type: str
    total: int
    available: int
    price_usd_per_gpu_hour: float
    power_price_usd_per_mwh: float


class Availability(_Body):
    """``GET /v1/resources/availability`` (A.2 response)."""

    as_of: datetime
    facilities: list[FacilityAvailability]


class ProblemDetail(_Body):
    """Every error body: a short title, the HTTP status, and the problems by field."""

    title: str
    status: int
    errors: list[dict[str, str]] = Field(default_factory=list)


class FleetFacility(_Body):
    """One facility after the twin's last tick (``GET /v1/fleet/status``); power in MW."""

    facility_id: str
    price_usd_per_mwh: float
    power_cap_mw: float
    power_total_mw: float
    power_by_use_mw: dict[str, float] = Field(
        description="mining, inference, batch, training, spot, gpu_idle, overhead [MW]"
    )
    curtailed_mw: float
    hashrate_ths: float
    asics: dict[str, int] = Field(description="miners by state: active, sleeping, failed")
    gpus: dict[str, int] = Field(
        description="GPUs by use or state: inference, batch, training, spot, idle, failed"
    )
    running_jobs: int
    grid_event_fraction: float
    four_cp: bool


class SwitchTimesView(_Body):
    """Switch times of recent command batches: send to verified read-back [ms]."""

    batches: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class FleetStatus(_Body):
    """``GET /v1/fleet/status``: the fleet as of the twin's last tick."""

    sim_time_s: float
    as_of: datetime = Field(description="the twin's time as a UTC instant")
    facilities: list[FleetFacility]
    switch_times: SwitchTimesView
    commands_sent: int
    command_failures: int
    last_event_seq: int = Field(description="pass as `since` to read only newer events")


class FleetEventView(_Body):
    """One alert or device command (``GET /v1/fleet/events``)."""

    seq: int
    at: datetime = Field(description="wall clock when it happened (UTC)")
    sim_time_s: float
    kind: Literal["command", "alert"]
    severity: Literal["info", "warning", "critical"]
    facility_id: str | None
    message: str
    latency_ms: float | None = Field(description="commands: the batch's switch time [ms]")
    verified: bool | None


class FleetEvents(_Body):
    """``GET /v1/fleet/events``: events after ``since``, oldest first."""

    events: list[FleetEventView]
    next_since: int = Field(description="pass as `since` next time")


class ResourceView(_Body):
    """One device pool of the ``resources`` table (``GET /v1/resources``)."""

    id: str = Field(description="<facility>:<asic|gpu>:<model or type>")
    facility_id: str
    type: Literal["asic", "gpu"]
    subtype: str
    status: Literal["online", "offline", "maintenance", "unhealthy"]
    devices: int
    out_of_service: int
    reason: str
    updated_at: datetime
