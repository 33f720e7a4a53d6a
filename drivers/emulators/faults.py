"""Fault injection for emulated miners: which miners misbehave, and how.

A :class:`FaultPlan` names faulty miners by index or address, or asks for a fraction of
the farm chosen deterministically from a seed. It can change while the farm runs, so a
test can inject a fault, watch the client fail, clear it and watch it recover. Kinds:

* ``timeout``: accept the connection, read the request, never reply;
* ``malformed``: reply with text that is not JSON;
* ``refuse``: refuse control commands (sleep, wake, power limit, ...) with an error
  status; readings still work;
* ``wrong_reading``: report hashrate and power off by a factor (the true state is in the
  miner table).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from drivers.emulators.errors import EmulatorConfigError


class FaultKind(StrEnum):
    """How a faulty miner misbehaves."""

    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    REFUSE = "refuse"
    WRONG_READING = "wrong_reading"


DEFAULT_READING_FACTOR = 0.5
"""Factor applied to the hashrate and power a ``wrong_reading`` miner reports [-]."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One miner's fault.

    Attributes:
        kind: how it misbehaves.
        reading_factor: reported / true hashrate and power, for ``wrong_reading`` [-].
    """

    kind: FaultKind
    reading_factor: float = DEFAULT_READING_FACTOR


def parse_fault_kind(kind: FaultKind | str) -> FaultKind:
    """``kind`` as a FaultKind; EmulatorConfigError listing the kinds if it is none."""
    try:
        return FaultKind(kind)
    except ValueError as error:
        kinds = ", ".join(k.value for k in FaultKind)
        raise EmulatorConfigError(f"fault: unknown kind {kind!r}; choose from {kinds}") from error


def parse_fault_spec(text: str) -> tuple[FaultKind, float]:
    """``"KIND:FRACTION"`` (e.g. ``"timeout:0.1"``) as (kind, fraction of miners [-])."""
    kind, sep, fraction_text = text.partition(":")
    if not sep:
        raise EmulatorConfigError(f"fault: expected KIND:FRACTION, got {text!r}")
    try:
        fraction = float(fraction_text)
    except ValueError as error:
        raise EmulatorConfigError(
            f"fault: fraction in {text!r} is not a number: {fraction_text!r}"
        ) from error
    return parse_fault_kind(kind), _checked_fraction(fraction)


class FaultPlan:
    """Faults of the miners of one farm, by miner index (position in the farm).

    Before the farm starts, faults can be named by index, by address or as a fraction; the
    farm then binds the plan to its addresses (:meth:`bind`), which resolves addresses and
    draws the fraction-chosen miners from ``numpy.random.default_rng(seed)``: the same seed
    and calls give the same faulty miners. After binding, every change applies at once.

    Args:
        seed: seed of the draw of fraction-chosen miners.
        reading_factor: default reported / true factor of ``wrong_reading`` faults [-].
    """

    def __init__(self, seed: int = 0, reading_factor: float = DEFAULT_READING_FACTOR) -> None:
        self.seed = int(seed)
        self.reading_factor = _checked_factor(reading_factor)
        self._by_index: dict[int, Fault] = {}
        self._pending_by_address: dict[str, Fault] = {}
        self._pending_fractions: list[tuple[FaultKind, float]] = []
        self._addresses: tuple[str, ...] | None = None
        self._rng = np.random.default_rng(self.seed)

    # ------------------------------------------------------------------ changes

    def inject(
        self, target: int | str, kind: FaultKind | str, reading_factor: float | None = None
    ) -> None:
        """Give the miner ``target`` (index, or address) a fault, replacing any other."""
        factor = self.reading_factor if reading_factor is None else _checked_factor(reading_factor)
        fault = Fault(parse_fault_kind(kind), factor)
        if isinstance(target, str) and self._addresses is None:
            self._pending_by_address[_checked_address(target)] = fault
            return
        self._by_index[self._index_of(target)] = fault

    def inject_fraction(self, kind: FaultKind | str, fraction: float) -> None:
        """Give a share ``fraction`` [-] of the miners (rounded to whole miners, drawn
        from the seed among miners without a fault) the fault ``kind``."""
        parsed = (parse_fault_kind(kind), _checked_fraction(fraction))
        if self._addresses is None:
            self._pending_fractions.append(parsed)
        else:
            self._draw(*parsed)

    def clear(self, target: int | str | None = None) -> None:
        """Clear the fault of miner ``target`` (index or address), or of every miner."""
        if target is None:
            self._by_index.clear()
            self._pending_by_address.clear()
            self._pending_fractions.clear()
        elif isinstance(target, str) and self._addresses is None:
            self._pending_by_address.pop(_checked_address(target), None)
        else:
            self._by_index.pop(self._index_of(target), None)

    def bind(self, addresses: Sequence[str]) -> None:
        """Tie the plan to a farm's miner addresses (miner ``i`` at ``addresses[i]``):
        resolve faults named by address and draw the fraction-chosen miners."""
        if self._addresses is not None:
            raise EmulatorConfigError("faults: this plan is already bound to a farm")
        self._addresses = tuple(_checked_address(a) for a in addresses)
        for kind, fraction in self._pending_fractions:
            self._draw(kind, fraction)
        for address, fault in self._pending_by_address.items():
            self._by_index[self._index_of(address)] = fault
        self._pending_fractions.clear()
        self._pending_by_address.clear()

    # ------------------------------------------------------------------ queries

    def fault_for(self, index: int) -> Fault | None:
        """The fault of miner ``index``, or None when it behaves."""
        return self._by_index.get(index)

    def faulty_indices(self, kind: FaultKind | str | None = None) -> tuple[int, ...]:
        """Sorted indices of miners with a fault (of ``kind`` when given)."""
        wanted = None if kind is None else parse_fault_kind(kind)
        return tuple(
            sorted(i for i, f in self._by_index.items() if wanted is None or f.kind == wanted)
        )

    # ------------------------------------------------------------------ internals

    def _index_of(self, target: int | str) -> int:
        if isinstance(target, str):
            address = _checked_address(target)
            if self._addresses is None or address not in self._addresses:
                raise EmulatorConfigError(f"faults: no miner at address {target!r}")
            return self._addresses.index(address)
        index = int(target)
        if index < 0 or (self._addresses is not None and index >= len(self._addresses)):
            raise EmulatorConfigError(f"faults: no miner with index {target!r}")
        return index

    def _draw(self, kind: FaultKind, fraction: float) -> None:
        n_miners = len(self._addresses or ())
        healthy = np.array([i for i in range(n_miners) if i not in self._by_index], dtype=int)
        count = round(fraction * n_miners)
        if count > healthy.size:
            raise EmulatorConfigError(
                f"faults: {kind.value}:{fraction} needs {count} miners but only "
                f"{healthy.size} of {n_miners} have no fault yet"
            )
        chosen = self._rng.permutation(healthy)[:count]
        for index in chosen.tolist():
            self._by_index[index] = Fault(kind, self.reading_factor)


def _checked_fraction(fraction: float) -> float:
    if not 0.0 <= fraction <= 1.0:
        raise EmulatorConfigError(f"fault: fraction must lie in [0, 1], got {fraction!r}")
    return float(fraction)


def _checked_factor(factor: float) -> float:
    if not (np.isfinite(factor) and factor >= 0.0):
        raise EmulatorConfigError(f"reading_factor: must be finite and >= 0, got {factor!r}")
    return float(factor)


def _checked_address(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as error:
        raise EmulatorConfigError(f"faults: {address!r} is not an IPv4 address") from error
