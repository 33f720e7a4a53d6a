"""Customers (tenants) who submit workloads: names from faker, a home region, a demand weight.

Everything is drawn from the numpy Generator passed in, faker included (it is seeded from
that generator), so the same seed gives the same customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

REGIONS: tuple[str, ...] = ("us-central", "us-east", "us-west")
"""Home regions a customer may sit in (used later to route by latency)."""


@dataclass(frozen=True, slots=True)
class Customer:
    """One tenant.

    Attributes:
        customer_id: index of the customer (the ``customer`` column of the job table).
        name: company name, unique within one ``make_customers`` call.
        region: home region, one of :data:`REGIONS`.
        weight: share of all submitted jobs that come from this customer [0-1]; the
            weights of one call sum to 1.
    """

    customer_id: int
    name: str
    region: str
    weight: float


def make_customers(count: int, rng: np.random.Generator) -> list[Customer]:
    """``count`` customers with lognormal demand weights (a few large tenants, many small).

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
    return [
        Customer(i, names[i], REGIONS[int(regions[i])], float(weights[i])) for i in range(count)
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
