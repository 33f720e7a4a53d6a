"""The conservative policy a live controller falls back to while prices are stale.

Without a fresh price the controller cannot tell a price spike from a quiet hour, and a
spike is where running flat out costs most. So it plans as if every site paid at least
``assumed_price_usd_per_mwh`` (by default well above every miner's breakeven): mining
curtails, AI work that must be served keeps running. As soon as prices are fresh again the
primary policy takes over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from optimizer.policies import Policy
from optimizer.types import Plan, Snapshot

DEFAULT_ASSUMED_PRICE_USD_PER_MWH = 1000.0
"""Price assumed while the feed is stale [USD/MWh]."""


@dataclass
class AssumeHighPrice:
    """Run ``inner`` on the snapshot with every price raised to the assumed one.

    Attributes:
        inner: the policy that plans (e.g. strike).
        assumed_price_usd_per_mwh: floor put under each site's price [USD/MWh].
    """

    inner: Policy
    assumed_price_usd_per_mwh: float = DEFAULT_ASSUMED_PRICE_USD_PER_MWH
    name: str = "conservative"

    def decide(self, snapshot: Snapshot) -> Plan:
        """The inner policy's plan for the pessimistic snapshot."""
        floor = self.assumed_price_usd_per_mwh
        facilities = tuple(
            replace(
                f,
                price_usd_per_mwh=max(f.price_usd_per_mwh, floor),
                marginal_energy_usd_per_mwh=max(f.marginal_energy_usd_per_mwh, floor),
            )
            for f in snapshot.facilities
        )
        return self.inner.decide(replace(snapshot, facilities=facilities))
