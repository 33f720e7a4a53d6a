"""Prices of the platform's billing models (DESIGN.md, "Billing models").

* **pay per use**: 2.50 USD per GPU-hour, 0.001 USD per inference request, 0.10 USD per
  GB-month of storage;
* **reserved**: 1,200 USD per GPU-month list, at a 30 % discount (a committed GPU costs
  840 USD a month whether used or not; per GPU-hour of a 730-hour month: 1.15 USD);
* **spot**: 1.00 USD per GPU-hour times the market's dynamic multiplier.

Mining jobs (hosted hashrate) are billed per TH/s-day at the hashprice they earn, which the
twin's market provides; this module covers the GPU products.
"""

from __future__ import annotations

from dataclasses import dataclass

PAY_PER_USE_USD_PER_GPU_HOUR = 2.50
INFERENCE_USD_PER_REQUEST = 0.001
STORAGE_USD_PER_GB_MONTH = 0.10
RESERVED_LIST_USD_PER_GPU_MONTH = 1200.0
RESERVED_DISCOUNT = 0.30
SPOT_BASE_USD_PER_GPU_HOUR = 1.00
HOURS_PER_MONTH = 730.0
"""Average hours in a month (8,760 / 12)."""

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
