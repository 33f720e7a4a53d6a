"""Customers (tenants) who submit workloads: names from faker, a home region, a demand weight.

Everything is drawn from the numpy Generator passed in, faker included (it is seeded from
that generator), so the same seed gives the same customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

from twin.scenario_scheduling import REGIONS

__all__ = ["REGIONS", "Customer", "customer_weights", "make_customers"]


@dataclass(frozen=True, slots=True)
class Customer:
    """One tenant.

    Attributes:
        customer_id: index of the customer (the ``customer`` column of the job table).
        name: company name, unique within one ``make_customers`` call.
        region: home region, one of :data:`REGIONS`.
        weight: share of all submitted jobs that come from this customer [0-1]; the
            weights of one call sum to 1.
        data_residency: the customer's data must stay in its home region (its jobs run only
            at sites there).
    """

    customer_id: int
    name: str
    region: str
    weight: float
    data_residency: bool = False


_GOLDEN_FRACTION = 0.6180339887498949
"""Spreads residency over customer ids evenly (a low-discrepancy sequence, no random draw)."""


def make_customers(
    count: int, rng: np.random.Generator, residency_fraction: float = 0.0
) -> list[Customer]:
    """``count`` customers with lognormal demand weights (a few large tenants, many small).

    About ``residency_fraction`` of them require data residency: customer ``i`` does when
    ``(i * 0.618...) mod 1 < residency_fraction`` (no random draw, so changing the fraction
    leaves names, regions and weights unchanged).

    Raises:
        ValueError: ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"customers: count must be >= 1, got {count}")
    fake = Faker()
    fake.seed_instance(int(rng.integers(0, 2**31 - 1)))
    raw_weights = rng.lognormal(mean=0.0, sigma=1.0, size=count)
    weights = raw_weights / raw_weights.sum()
    regions = rng.integers(0, len(REGIONS), size=count)
    names = _unique_names(fake, count)
    if not 0.0 <= residency_fraction <= 1.0:
        raise ValueError(
            f"customers: residency_fraction must be in [0, 1], got {residency_fraction}"
        )
    return [
        Customer(
            i,
            names[i],
            REGIONS[int(regions[i])],
            float(weights[i]),
            data_residency=(i * _GOLDEN_FRACTION) % 1.0 < residency_fraction,
        )
        for i in range(count)
    ]


def customer_weights(customers: list[Customer]) -> np.ndarray:
    """The customers' weights as a probability vector (renormalised to sum to 1)."""
    if not customers:
        raise ValueError("customers: need at least one customer")
    weights = np.array([c.weight for c in customers], dtype=float)
    if np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError("customers: weights must be >= 0 and not all 0")
    return weights / weights.sum()


def _unique_names(fake: Faker, count: int) -> list[str]:
    """Company names; a repeated name gets a numeric suffix so names identify customers."""
    seen: set[str] = set()
    names = []
    for _ in range(count):
        base = name = fake.company()
        suffix = 1
        while name in seen:
            suffix += 1
            name = f"{base} {suffix}"
        seen.add(name)
        names.append(name)
    return names
