"""Billing models: pay per use, reserved at its discount, spot with the market multiplier."""

from __future__ import annotations

import pytest

from twin.service.billing import (
    PricingError,
    gpu_hour_rate,
    quote,
    requests_usd,
    storage_usd,
    usage_usd,
)


def test_rates_follow_the_billing_models() -> None:
    """2.50 USD/GPU-h pay per use; 1,200 USD/GPU-month less 30 % over a 730-h month;
    spot 1.00 USD/GPU-h times the multiplier."""
    assert gpu_hour_rate("pay_per_use") == 2.50
    assert gpu_hour_rate("reserved") == pytest.approx(840.0 / 730.0)
    assert gpu_hour_rate("spot", 1.7) == pytest.approx(1.7)
    assert quote("pay_per_use", 4, 2.0).usd == pytest.approx(20.0)


def test_usage_adds_requests_and_storage() -> None:
    """GPU time at the rate plus 0.001 USD per request and 0.10 USD per GB-month."""
    usd = usage_usd(7200.0, "pay_per_use", requests=1000, storage_gb_months=50.0)
    assert usd == pytest.approx(2 * 2.5 + 1.0 + 5.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: gpu_hour_rate("free"), "pricing"),
        (lambda: gpu_hour_rate("spot", 0.0), "spot_multiplier"),
        (lambda: quote("spot", -1, 1.0), "gpus"),
        (lambda: quote("spot", 1, -1.0), "hours"),
    ],
)
def test_bad_input_names_the_field(call, field) -> None:
    """Every refusal names what was wrong."""
    with pytest.raises(PricingError, match=field):
        call()


def test_requests_and_storage_are_priced_per_1k_and_per_gb_hour() -> None:
    """1,000 inference requests cost 1.00 USD; a GB held a whole 730-hour month costs
    0.10 USD, so storage metered in GB-hours agrees with the GB-month price."""
    assert requests_usd(1000) == pytest.approx(1.0)
    assert requests_usd(2500) == pytest.approx(usage_usd(0.0, "pay_per_use", requests=2500))
    assert storage_usd(730.0) == pytest.approx(0.10)
    assert storage_usd(50.0 * 730.0) == pytest.approx(
        usage_usd(0.0, "pay_per_use", storage_gb_months=50.0)
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [(lambda: requests_usd(-1), "requests"), (lambda: storage_usd(float("nan")), "gb_hours")],
)
def test_bad_usage_quantities_name_the_field(call, field) -> None:
    """Negative or NaN quantities are refused, naming the quantity."""
    with pytest.raises(PricingError, match=field):
        call()
