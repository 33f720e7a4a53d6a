"""A farm of emulated miners on loopback addresses, backed by one miner table.

Miner ``i`` listens on the ``i``-th host address of a loopback subnet (127.0.0.0/8 routes
to the loopback interface on Linux with no setup), on the ports its firmware uses (4028
for the cgminer API; Braiins OS adds gRPC on 50051). Firmware is assigned round-robin from
a list, models round-robin from another (or each firmware's default model). The unmodified
pyasic client finds, reads and commands these miners as real ones; the farm's
:class:`~drivers.emulators.miner_state.MinerTable` holds their true state.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

from drivers.emulators.emulated_miner import EmulatedMiner
from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.faults import FaultPlan
from drivers.emulators.identities import (
    BRAIINS,
    DEFAULT_MODEL,
    LUXOS,
    WHATSMINER,
    check_firmware,
    identity_for,
)
from drivers.emulators.luxos import LuxosFirmware
from drivers.emulators.miner_state import DEFAULT_AMBIENT_C, Clock, MinerTable
from drivers.emulators.rpc_server import RPC_PORT, RpcServer
from drivers.emulators.whatsminer import WhatsminerFirmware
from models.hardware import ASIC_CATALOG


class Endpoint(Protocol):
    """A listener of one emulated miner."""

    async def start(self) -> None:
        """Bind and listen."""
        ...

    async def stop(self) -> None:
        """Stop listening and drop connections."""
        ...


class EmulatorFarm:
    """``count`` emulated miners on the loopback ``subnet``.

    Args:
        count: number of miners.
        subnet: loopback CIDR, e.g. ``"127.2.0.0/24"``; miner ``i`` gets its ``i``-th host
            address (the network address is skipped).
        firmware: firmware personalities, assigned round-robin (``luxos``, ``whatsminer``,
            ``braiins``).
        models: catalog model ids, assigned round-robin; None gives each miner its
            firmware's default model (:data:`drivers.emulators.identities.DEFAULT_MODEL`).
        faults: fault plan (bound to the farm's addresses here); None for none.
        clock: time source of the physics [s].
        ambient_c: inlet air temperature [°C].
        rpc_port: port of the cgminer API (pyasic's factory only probes 4028).

    Raises:
        EmulatorConfigError: bad count, subnet (not loopback, too small, malformed),
            firmware, model or firmware/model pair.
    """

    def __init__(
        self,
        count: int,
        subnet: str,
        firmware: Sequence[str] = (LUXOS,),
        models: Sequence[str] | None = None,
        faults: FaultPlan | None = None,
        clock: Clock = time.monotonic,
        ambient_c: float = DEFAULT_AMBIENT_C,
        rpc_port: int = RPC_PORT,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise EmulatorConfigError(f"count: need a whole number of miners >= 1, got {count!r}")
        if isinstance(firmware, str):
            firmware = (firmware,)
        if not firmware:
            raise EmulatorConfigError("firmware: need at least one firmware")
        if models is not None and (isinstance(models, str) or not models):
            raise EmulatorConfigError("models: need a non-empty sequence of model ids or None")
        self.addresses: tuple[str, ...] = loopback_hosts(subnet, count)
        firmware_cycle = [check_firmware(f) for f in firmware]
        self.firmwares: tuple[str, ...] = tuple(
            firmware_cycle[i % len(firmware_cycle)] for i in range(count)
        )
        self.model_ids: tuple[str, ...] = tuple(
            DEFAULT_MODEL[self.firmwares[i]] if models is None else models[i % len(models)]
            for i in range(count)
        )
        identities = [
            identity_for(f, m) for f, m in zip(self.firmwares, self.model_ids, strict=True)
        ]
        self.table = MinerTable([ASIC_CATALOG[m] for m in self.model_ids], clock, ambient_c)
        self.faults = faults if faults is not None else FaultPlan()
        self.faults.bind(self.addresses)
        self.miners: tuple[EmulatedMiner, ...] = tuple(
            EmulatedMiner(i, address, identity, self.table, self.faults)
            for i, (address, identity) in enumerate(zip(self.addresses, identities, strict=True))
        )
        self.rpc_port = rpc_port
        self._endpoints: list[Endpoint] = []

    @property
    def count(self) -> int:
        """Number of miners."""
        return len(self.miners)

    def index_of(self, address: str) -> int:
        """Index of the miner at ``address``; EmulatorConfigError if none is there."""
        try:
            return self.addresses.index(str(ipaddress.IPv4Address(address)))
        except ValueError as error:
            raise EmulatorConfigError(f"address: no emulated miner at {address!r}") from error

    async def start(self) -> None:
        """Bind every miner's listeners; returns once all listen. On a bind failure the
        ones already started are stopped and the OSError (naming the address) raised."""
        if self._endpoints:
            raise EmulatorConfigError("farm: already started")
        endpoints = list(itertools.chain.from_iterable(self._endpoints_of(m) for m in self.miners))
        results = await asyncio.gather(*(e.start() for e in endpoints), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        self._endpoints = endpoints
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        """Stop every listener and drop open connections."""
        endpoints, self._endpoints = self._endpoints, []
        await asyncio.gather(*(e.stop() for e in endpoints), return_exceptions=True)

    async def __aenter__(self) -> EmulatorFarm:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _endpoints_of(self, miner: EmulatedMiner) -> list[Endpoint]:
        firmware = miner.identity.firmware
        if firmware == LUXOS:
            return [RpcServer(LuxosFirmware(miner), miner.address, self.rpc_port)]
        if firmware == WHATSMINER:
            return [RpcServer(WhatsminerFirmware(miner), miner.address, self.rpc_port)]
        if firmware == BRAIINS:
            from drivers.emulators.braiins import braiins_endpoints  # imports pyasic (slow)

            return [*braiins_endpoints(miner, self.rpc_port)]
        raise EmulatorConfigError(f"firmware: no emulator for {firmware!r}")


def loopback_hosts(subnet: str, count: int) -> tuple[str, ...]:
    """The first ``count`` host addresses of the loopback IPv4 ``subnet`` (network address
    skipped).

    Raises:
        EmulatorConfigError: ``subnet`` is not an IPv4 CIDR, not loopback, or has fewer
            than ``count`` host addresses.
    """
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as error:
        raise EmulatorConfigError(f"subnet: {subnet!r} is not an IPv4 CIDR: {error}") from error
    if not network.is_loopback:
        raise EmulatorConfigError(
            f"subnet: {subnet!r} is not loopback; emulated miners only bind 127.0.0.0/8"
        )
    available = network.num_addresses - (2 if network.prefixlen <= 30 else 0)
    if count > available:
        raise EmulatorConfigError(
            f"subnet: {subnet!r} has {available} host addresses, too few for {count} miners"
        )
    return tuple(str(host) for host in itertools.islice(network.hosts(), count))
