"""Several ASIC drivers seen as one: a driver per facility (or per firmware family), one
:class:`drivers.base.AsicDriver` for the controller.

Readings are concatenated in driver order with model indices remapped onto the union of
model ids; commands go to the drivers that hold miners of their facility and model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from drivers.base import (
    ApplyResult,
    AsicCommand,
    AsicDriver,
    AsicReadings,
    CommandResult,
    DeviceClass,
    QuarantiningAsicDriver,
)


class CompositeAsicDriver:
    """One AsicDriver over ``drivers`` (each holding different miners).

    Args:
        drivers: the drivers; a (facility, model) class may be split across several.
    """

    def __init__(self, drivers: Sequence[AsicDriver]) -> None:
        if not drivers:
            raise ValueError("composite driver: need at least one driver")
        self.drivers = list(drivers)

    def discover(self) -> tuple[DeviceClass, ...]:
        """Every (facility, model) class once, in order of first appearance; a class split
        over drivers sums their counts and joins their device ids."""
        merged: dict[tuple[int, str], DeviceClass] = {}
        for driver in self.drivers:
            for c in driver.discover():
                key = (c.facility, c.model_id)
                seen = merged.get(key)
                merged[key] = (
                    c
                    if seen is None
                    else replace(
                        seen, count=seen.count + c.count, device_ids=seen.device_ids + c.device_ids
                    )
                )
        return tuple(merged.values())

    def read(self) -> AsicReadings:
        """All drivers' readings as one table."""
        parts = [driver.read() for driver in self.drivers]
        model_ids = tuple(dict.fromkeys(m for part in parts for m in part.model_ids))
        remap = [
            np.array([model_ids.index(m) for m in part.model_ids], dtype=np.int16) for part in parts
        ]
        return AsicReadings(
            t_s=max(part.t_s for part in parts),
            model_ids=model_ids,
            facility=np.concatenate([p.facility for p in parts]),
            model=np.concatenate(
                [r[p.model] if p.model.size else p.model for p, r in zip(parts, remap, strict=True)]
            ),
            state=np.concatenate([p.state for p in parts]),
            power_fraction=np.concatenate([p.power_fraction for p in parts]),
            power_w=np.concatenate([p.power_w for p in parts]),
            hashrate_ths=np.concatenate([p.hashrate_ths for p in parts]),
            temp_c=np.concatenate([p.temp_c for p in parts]),
            device_ids=tuple(d for p in parts for d in p.device_ids),
        )

    def apply(self, commands: Sequence[AsicCommand]) -> ApplyResult:
        """Each command to the driver holding its class (split active counts across
        drivers that share a class, in driver order); results in command order."""
        holders: dict[tuple[int, str], list[tuple[AsicDriver, int]]] = {}
        for driver in self.drivers:
            for c in driver.discover():
                holders.setdefault((c.facility, c.model_id), []).append((driver, c.count))
        results = []
        t_s = 0.0
        for command in commands:
            owners = holders.get((command.facility, command.model_id), [])
            if not owners:
                results.append(CommandResult(command, False, f"no driver holds {command.model_id}"))
                continue
            parts = _split(command, owners)
            outcomes = [driver.apply([part]) for driver, part in parts]
            t_s = max([t_s, *(o.t_s for o in outcomes)])
            inner = [r for o in outcomes for r in o.results]
            verified = all(r.verified for r in inner)
            reason = "; ".join(r.reason for r in inner if r.reason)
            results.append(
                CommandResult(command, verified, reason, changed=sum(r.changed for r in inner))
            )
        return ApplyResult(tuple(results), t_s)

    def start_polling(self, period_s: float) -> None:
        """Start background polling in every driver that offers it."""
        for driver in self.drivers:
            start = getattr(driver, "start_polling", None)
            if start is not None:
                start(period_s)

    def quarantine(self, device_ids: Sequence[str], hold_s: float, reason: str) -> dict[str, str]:
        """Quarantine the named miners in whichever driver holds them."""
        outcomes: dict[str, str] = {}
        for driver in self.drivers:
            if isinstance(driver, QuarantiningAsicDriver):
                outcomes.update(driver.quarantine(device_ids, hold_s, reason))
        return outcomes

    def close(self) -> None:
        """Close every driver."""
        for driver in self.drivers:
            driver.close()


def _split(
    command: AsicCommand, owners: list[tuple[AsicDriver, int]]
) -> list[tuple[AsicDriver, AsicCommand]]:
    """Share a class command among the drivers holding the class: active counts fill the
    drivers in order; the power target goes to all."""
    if command.active_count is None:
        return [(driver, command) for driver, _count in owners]
    left = command.active_count
    parts = []
    for driver, count in owners:
        take = max(0, min(left, count))
        left -= take
        parts.append(
            (
                driver,
                AsicCommand(command.facility, command.model_id, take, command.power_fraction),
            )
        )
    if left > 0:  # more asked than the class holds: the last driver reports the shortfall
        driver, last = parts[-1]
        parts[-1] = (
            driver,
            AsicCommand(
                last.facility, last.model_id, (last.active_count or 0) + left, last.power_fraction
            ),
        )
    return parts
