"""Prices of the platform's billing models (DESIGN.md, "Billing models").

* **pay per use**: 2.50 USD per GPU-hour, 0.001 USD per inference request (1.00 USD per
  1,000), 0.10 USD per GB-month of storage (metered per GB-hour: 0.10 / 730);
* **reserved**: 1,200 USD per GPU-month list, at a 30 % discount (a committed GPU costs
  840 USD a month whether used or not; per GPU-hour of a 730-hour month: 1.15 USD);
* **spot**: 1.00 USD per GPU-hour times the market's dynamic multiplier.

Inference requests and storage are billed at their pay-per-use prices whatever the GPU
pricing of the workload. Energy is attributed to tenants in kWh but not billed on top.

Mining jobs (hosted hashrate) are billed per TH/s-day at the hashprice they earn, which the
twin's market provides; this module covers the GPU products.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730.0
"""Average hours in a month (8,760 / 12)."""

PAY_PER_USE_USD_PER_GPU_HOUR = 2.50
"""Pay-per-use GPU time [USD/GPU-h] (PRD billing models)."""
INFERENCE_USD_PER_1K_REQUESTS = 1.00
"""Inference requests [USD per 1,000 requests] (PRD billing models: 0.001 USD per request)."""
INFERENCE_USD_PER_REQUEST = INFERENCE_USD_PER_1K_REQUESTS / 1000.0
"""The same price per single request [USD/request]."""
STORAGE_USD_PER_GB_MONTH = 0.10
"""Storage [USD/GB-month] (PRD billing models)."""
STORAGE_USD_PER_GB_HOUR = STORAGE_USD_PER_GB_MONTH / HOURS_PER_MONTH
"""The storage price per GB-hour, the unit storage is metered in [USD/GB-h]."""
ENERGY_USD_PER_KWH_BILLED = 0.0
"""What a tenant is billed for the energy attributed to it [USD/kWh]: nothing on top, since
the GPU-hour rates already cover the energy; kWh are metered per tenant as attribution."""
RESERVED_LIST_USD_PER_GPU_MONTH = 1200.0
"""Reserved GPU list price [USD/GPU-month] (PRD billing models)."""
RESERVED_DISCOUNT = 0.30
"""Discount on the reserved list price [-] (PRD billing models: 30 %)."""
SPOT_BASE_USD_PER_GPU_HOUR = 1.00
"""Spot base price before the market multiplier [USD/GPU-h] (PRD billing models)."""

PRICINGS: tuple[str, ...] = ("pay_per_use", "reserved", "spot")


class PricingError(ValueError):
    """A price was asked for with bad input; the message names the field."""


@dataclass(frozen=True, slots=True)
class Quote:
    """A price.

    Attributes:
        pricing: billing model.
        usd_per_gpu_hour: rate applied [USD/GPU-h].
        usd: total [USD].
    """

    pricing: str
    usd_per_gpu_hour: float
    usd: float


def gpu_hour_rate(pricing: str, spot_multiplier: float = 1.0) -> float:
    """USD per GPU-hour under ``pricing`` (reserved: the discounted monthly price spread
    over the hours of a month)."""
    if pricing == "pay_per_use":
        return PAY_PER_USE_USD_PER_GPU_HOUR
    if pricing == "reserved":
        return RESERVED_LIST_USD_PER_GPU_MONTH * (1.0 - RESERVED_DISCOUNT) / HOURS_PER_MONTH
    if pricing == "spot":
        if not spot_multiplier > 0:
            raise PricingError(f"spot_multiplier: must be > 0, got {spot_multiplier}")
        return SPOT_BASE_USD_PER_GPU_HOUR * spot_multiplier
    raise PricingError(f"pricing: must be one of {', '.join(PRICINGS)}, not {pricing!r}")


def quote(pricing: str, gpus: int, hours: float, spot_multiplier: float = 1.0) -> Quote:
    """The price of ``gpus`` GPUs for ``hours`` hours [USD]."""
    if gpus < 0:
        raise PricingError(f"gpus: must be >= 0, got {gpus}")
    if not hours >= 0:
        raise PricingError(f"hours: must be >= 0, got {hours}")
    rate = gpu_hour_rate(pricing, spot_multiplier)
    return Quote(pricing, rate, round(rate * gpus * hours, 6))


def usage_usd(
    gpu_seconds: float,
    pricing: str,
    requests: int = 0,
    storage_gb_months: float = 0.0,
    spot_multiplier: float = 1.0,
) -> float:
    """What a period's usage costs [USD]: GPU time at the pricing's rate, plus inference
    requests and storage at pay-per-use prices."""
    if gpu_seconds < 0 or requests < 0 or storage_gb_months < 0:
        raise PricingError("usage: quantities must be >= 0")
    gpu_usd = gpu_seconds / 3600.0 * gpu_hour_rate(pricing, spot_multiplier)
    return round(
        gpu_usd
        + requests * INFERENCE_USD_PER_REQUEST
        + storage_gb_months * STORAGE_USD_PER_GB_MONTH,
        6,
    )


def requests_usd(requests: float) -> float:
    """What ``requests`` inference requests cost at the pay-per-use price [USD]."""
    if not requests >= 0:
        raise PricingError(f"requests: must be >= 0, got {requests}")
    return round(requests / 1000.0 * INFERENCE_USD_PER_1K_REQUESTS, 6)


def storage_usd(gb_hours: float) -> float:
    """What ``gb_hours`` of storage [GB-h] cost at the pay-per-use GB-month price [USD]."""
    if not gb_hours >= 0:
        raise PricingError(f"gb_hours: must be >= 0, got {gb_hours}")
    return round(gb_hours * STORAGE_USD_PER_GB_HOUR, 6)
