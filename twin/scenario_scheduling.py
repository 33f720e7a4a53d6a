"""The ``scheduling`` block of a scenario: fair sharing, aging, preemption, routing, deferral.

Part of the scenario schema (twin.scenario imports it); the scheduler (optimizer.scheduler)
reads it through :class:`optimizer.scheduling_rules.SchedulingRules`.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Region = Literal["us-central", "us-east", "us-west"]
"""Network regions of customers and sites."""

REGIONS: tuple[str, ...] = get_args(Region)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Routing(_Strict):
    """How jobs are routed across facilities.

    Realtime inference goes to the site with the least network latency from the customer's
    region among those within ``realtime_network_budget_ms``; other work goes to the site
    where it costs least (energy at the site's price and PUE, plus moving its data there),
    then by latency. Latency between a customer region and a site is ``latency_ms[region]
    [facility_id]`` when given, else ``same_region_ms`` / ``neighbour_region_ms`` /
    ``far_region_ms`` by region distance (us-central neighbours both coasts).
    """

    latency_ms: dict[Region, dict[str, float]] = {}
    same_region_ms: float = Field(8.0, ge=0, le=1000)
    neighbour_region_ms: float = Field(35.0, ge=0, le=1000)
    far_region_ms: float = Field(70.0, ge=0, le=1000)
    realtime_network_budget_ms: float = Field(60.0, gt=0, le=1000)
    bandwidth_gbps: float = Field(10.0, gt=0, le=10000)
    """Bandwidth available to move one job's data between regions [Gbit/s]."""
    transfer_usd_per_gb: float = Field(0.02, ge=0, le=10)
    """Cost of moving data between regions [USD/GB]."""

    @model_validator(mode="after")
    def _latencies_valid(self) -> Routing:
        for region, sites in self.latency_ms.items():
            for site, value in sites.items():
                if not 0 <= value <= 1000:
                    raise ValueError(f"latency_ms.{region}.{site}: must be in [0, 1000] ms")
        return self


class FairShare(_Strict):
    """Sharing between customers within a priority class.

    ``weights``: ``equal`` gives every customer the same share of contended capacity;
    ``demand`` weights each by its demand share. ``quota_gpus``: most GPUs one on-demand
    customer may hold at once (None: no quota). The ``reserved_customers`` largest customers
    by demand hold reserved capacity: while they use fewer than ``reserved_gpus`` GPUs their
    waiting jobs go ahead of on-demand jobs of the same priority, and no quota applies.
    """

    weights: Literal["equal", "demand"] = "equal"
    quota_gpus: int | None = Field(None, ge=1)
    reserved_customers: int = Field(0, ge=0)
    reserved_gpus: int = Field(0, ge=0)


class Deferral(_Strict):
    """Moving deferrable work (batch inference, training) into cheap intervals.

    While a facility's price is above both ``min_price_usd_per_mwh`` and the
    ``price_quantile`` of its prices over the look-back window, jobs of the
    ``workload_types`` do not start there unless their deadline would otherwise be missed.
    Training is not deferred by default: on a loaded platform the slack it would spend
    waiting is what it needs to queue for room later (measured on the baseline week:
    training deadlines met 0.76 without deferring it, 0.73 with).
    """

    enabled: bool = True
    workload_types: list[Literal["ai_inference_batch", "model_training"]] = ["ai_inference_batch"]
    price_quantile: float = Field(0.75, ge=0, le=1)
    lookback_h: float = Field(24.0, gt=0, le=24 * 31)
    min_price_usd_per_mwh: float = Field(60.0, ge=-1000, le=10000)


class Scheduling(_Strict):
    """Scheduler rules (see optimizer.scheduler).

    ``aging_s``: a waiting job gains one priority level per ``aging_s`` of waiting (never
    reaching realtime inference's level). ``starvation_s``: once the head of a queue has
    waited this long, the pool with the most room among its candidates reserves room for
    it at the earliest time running jobs free enough (EASY backfilling: other work starts
    there only if it ends before then or uses room left spare), so a large gang cannot
    starve. It is a bound, not a preference: reserving idles room that other deadline work
    could use, so under sustained overload an early threshold costs deadline SLA (measured
    on the baseline week: training met 0.73 with the default, 0.65 at 2 days, 0.62 at 1
    day). ``min_runtime_s``: a job (re)started less than this long ago
    is not preempted for realtime inference (no thrashing). ``restore_s``: time to restore
    a checkpoint when a preempted job resumes, added to its remaining run time [s].
    """

    aging_s: float = Field(1800.0, gt=0)
    starvation_s: float = Field(604800.0, gt=0)
    min_runtime_s: float = Field(600.0, ge=0)
    restore_s: float = Field(60.0, ge=0)
    fair_share: FairShare = FairShare()
    routing: Routing = Routing()
    deferral: Deferral = Deferral()
