"""ASIC driver for real miners (and their emulators) through pyasic.

pyasic speaks each firmware's API (LuxOS, Whatsminer, Braiins OS, stock Antminer, ...)
behind one async interface. This driver turns the controller's class commands ("of the
Antminer S21 at facility 0, 180 should hash at 90 % power") into per-miner calls, with:

* **discovery** of an address list or a subnet scan, each miner mapped to a catalog model
  (:func:`catalog_model_id`, overridable); miners of unknown models are listed in
  ``unsupported`` and left alone;
* **bounded concurrency** (one semaphore over all calls), a **timeout** per call and
  **retries** with exponential backoff inside a call; a miner whose call still fails is
  marked unhealthy (:class:`drivers.device_health.DeviceHealth`), reported as FAILED and
  left out of commands until its retry time;
* **read-back verification** of every command: after the calls the driver reads the miners
  again; a sleep is verified when the miner draws no more than its sleep power allows, a
  wake when its power rose above what it drew asleep, a power limit when the firmware
  reports a limit at or below the requested watts.

The driver is synchronous for the control loop; pyasic runs on a private event loop
(:class:`drivers.async_runner.AsyncRunner`).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from drivers.async_runner import AsyncRunner
from drivers.base import (
    ApplyResult,
    AsicCommand,
    AsicReadings,
    Capabilities,
    CommandResult,
    DeviceClass,
    DriverClosedError,
    DriverError,
)
from drivers.device_health import DeviceHealth
from models.fleet_physics import AsicState
from models.hardware import ASIC_CATALOG, AsicSpec

READ_FIELDS: tuple[str, ...] = ("hashrate", "hashboards", "wattage", "wattage_limit")
"""pyasic data options read each sweep (``hashboards`` carries board hashrates and
temperatures)."""

DETAIL_FIELDS: tuple[str, ...] = ("fans", "errors")
"""Read as well on every ``DETAIL_EVERY``-th sweep (and on a plain ``read`` without
background polling)."""

DETAIL_EVERY = 10
"""Sweeps between detail reads [-]."""

SLEEP_POWER_MARGIN = 2.0
"""A sleeping miner may draw up to this many times its catalog sleep power [-]."""


def _catalog_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_CATALOG_KEYS: dict[str, str] = {_catalog_key(s.name): s.model_id for s in ASIC_CATALOG.values()}


def catalog_model_id(make: str | None, model: str | None) -> str | None:
    """The catalog ``model_id`` of a miner from pyasic's make and model (``"AntMiner"``,
    ``"S19j Pro"``): an exact match of the letters and digits, else the longest catalog
    name the miner's name starts with (``M50S VE30`` is an ``M50S``); None if none."""
    key = _catalog_key(f"{make or ''}{model or ''}")
    if key in _CATALOG_KEYS:
        return _CATALOG_KEYS[key]
    prefixes = [k for k in _CATALOG_KEYS if key.startswith(k)]
    return _CATALOG_KEYS[max(prefixes, key=len)] if prefixes else None


@dataclass(slots=True)
class _Miner:
    """One miner the driver holds."""

    address: str
    client: Any
    spec: AsicSpec
    capabilities: Capabilities
    health: DeviceHealth = field(default_factory=DeviceHealth)
    sleeping: bool = False
    power_w: float = float("nan")
    hashrate_ths: float = float("nan")
    temp_c: float = float("nan")
    limit_w: float = float("nan")
    fans_rpm: tuple[float, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MinerDetails:
    """The slower-changing readings of one miner, from the latest detail sweep.

    Attributes:
        address: the miner's IP address.
        model_id: catalog model.
        fans_rpm: fan speeds [RPM].
        errors: error messages the firmware reports.
        healthy: the driver's view of it.
        last_error: why the driver last failed to reach it ("" when healthy).
    """

    address: str
    model_id: str
    fans_rpm: tuple[float, ...]
    errors: tuple[str, ...]
    healthy: bool
    last_error: str


@dataclass(frozen=True, slots=True)
class PyasicSettings:
    """Timeouts, retries and concurrency of the pyasic driver.

    Attributes:
        timeout_s: limit of one call to one miner [s].
        retries: extra attempts of a failed call within one read or command [-].
        retry_backoff_s: wait before the first retry, doubling after each [s].
        unhealthy_backoff_s: wait before trying an unhealthy miner again, doubling with
            each failure in a row [s].
        unhealthy_backoff_max_s: cap of that wait [s].
        concurrency: calls in flight at once over all miners [-].
    """

    timeout_s: float = 3.0
    retries: int = 1
    retry_backoff_s: float = 0.2
    unhealthy_backoff_s: float = 5.0
    unhealthy_backoff_max_s: float = 300.0
    concurrency: int = 256


class PyasicAsicDriver:
    """The :class:`drivers.base.AsicDriver` for miners pyasic can talk to.

    Args:
        addresses: miner IP addresses; or
        subnet: a CIDR to scan (``MinerNetwork.from_subnet``).
        facility: facility index the miners belong to.
        model_overrides: catalog ``model_id`` by address, for miners whose reported model
            is not in the catalog or is wrong.
        settings: timeouts, retries, concurrency.
        clock: time source for health bookkeeping [s].

    Raises:
        DriverError: neither or both of ``addresses`` and ``subnet`` given, or pyasic is
            not installed.
    """

    def __init__(
        self,
        addresses: Sequence[str] | None = None,
        subnet: str | None = None,
        facility: int = 0,
        model_overrides: Mapping[str, str] | None = None,
        settings: PyasicSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (addresses is None) == (subnet is None):
            raise DriverError("pyasic driver: give either addresses or a subnet")
        try:
            import pyasic  # noqa: F401  (a heavy import: only when this driver is used)
        except ImportError as error:
            raise DriverError(
                "pyasic driver: pyasic is not installed (pip install '.[drivers]')"
            ) from error
        self.addresses = list(addresses or [])
        self.subnet = subnet
        self.facility = facility
        self.model_overrides = dict(model_overrides or {})
        self.settings = settings or PyasicSettings()
        self.clock = clock
        self.unsupported: dict[str, str] = {}
        """Address -> why it is left alone (not a miner, unknown model)."""
        self._runner: AsyncRunner | None = AsyncRunner("pyasic-driver")
        self._poller: Any = None
        self.sweeps = 0
        """Background read sweeps completed [-]."""
        self.last_sweep_s = math.nan
        """Duration of the last background sweep [s]."""
        self._semaphore: asyncio.Semaphore | None = None
        self._miners: list[_Miner] | None = None

    # ------------------------------------------------------------------ protocol

    def discover(self) -> tuple[DeviceClass, ...]:
        """Find the miners (once; later calls return the same classes)."""
        miners = self._ensure_discovered()
        classes: dict[str, list[_Miner]] = {}
        for miner in miners:
            classes.setdefault(miner.spec.model_id, []).append(miner)
        return tuple(
            DeviceClass(
                kind="asic",
                facility=self.facility,
                model_id=model_id,
                count=len(members),
                capabilities=members[0].capabilities,
                device_ids=tuple(m.address for m in members),
            )
            for model_id, members in classes.items()
        )

    def read(self) -> AsicReadings:
        """Readings of every miner; unhealthy ones show as FAILED until they answer again.

        Without background polling this reads every due miner now; with it
        (:meth:`start_polling`) it returns the latest sweep at once, never waiting on the
        devices."""
        miners = self._ensure_discovered()
        if self._poller is None:
            self._run(self._read_all(miners, details=True))
        return self._readings(miners)

    def details(self) -> tuple[MinerDetails, ...]:
        """Fans, errors and health of every miner (latest detail read)."""
        return tuple(
            MinerDetails(
                m.address,
                m.spec.model_id,
                m.fans_rpm,
                m.errors,
                m.health.healthy,
                m.health.last_error,
            )
            for m in self._ensure_discovered()
        )

    def start_polling(self, period_s: float) -> None:
        """Sweep all miners in the background every ``period_s`` [s] (or back to back when
        a sweep takes longer), so that :meth:`read` answers from the cache at once: a
        live control loop must not wait on a thousand devices each tick."""
        miners = self._ensure_discovered()
        if self._poller is None:
            self._run(self._read_all(miners, details=True))  # a complete first picture
            assert self._runner is not None
            self._poller = asyncio.run_coroutine_threadsafe(
                self._poll_forever(miners, period_s), self._runner.loop
            )

    async def _poll_forever(self, miners: Sequence[_Miner], period_s: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await self._read_all(miners, details=(self.sweeps + 1) % DETAIL_EVERY == 0)
            self.sweeps += 1
            self.last_sweep_s = loop.time() - began
            await asyncio.sleep(max(0.0, period_s - self.last_sweep_s))

    def apply(self, commands: Sequence[AsicCommand]) -> ApplyResult:
        """Carry out each command on its class, then read back and verify."""
        miners = self._ensure_discovered()
        results = [self._run(self._apply_one(miners, command)) for command in commands]
        return ApplyResult(tuple(results), self.clock())

    def quarantine(self, device_ids: Sequence[str], hold_s: float, reason: str) -> dict[str, str]:
        """Sleep each named miner and hold it out of commands, reported FAILED, for
        ``hold_s`` [s] (a :class:`drivers.base.QuarantiningAsicDriver`)."""
        wanted = set(device_ids)
        chosen = [m for m in self._ensure_discovered() if m.address in wanted]
        outcomes = self._run(self._sleep_all(chosen))
        until_s = self.clock() + hold_s
        for miner in chosen:
            miner.health.hold(until_s, f"quarantined: {reason}")
        return {m.address: why for m, why in zip(chosen, outcomes, strict=True)}

    async def _sleep_all(self, miners: Sequence[_Miner]) -> list[str]:
        async def sleep(miner: _Miner) -> str:
            if miner.client is None or miner.sleeping:
                return "" if miner.sleeping else "no connection"
            return await self._act(miner, "sleep", AsicCommand(self.facility, miner.spec.model_id))

        return list(await asyncio.gather(*(sleep(m) for m in miners)))

    def close(self) -> None:
        """Stop the driver's event loop; later calls raise DriverClosedError."""
        if self._runner is not None:
            if self._poller is not None:
                self._poller.cancel()
                self._poller = None
            self._runner.close()
            self._runner = None

    # ------------------------------------------------------------------ health view

    def health(self) -> dict[str, DeviceHealth]:
        """Health per miner address."""
        return {m.address: m.health for m in self._ensure_discovered()}

    # ------------------------------------------------------------------ discovery

    def _ensure_discovered(self) -> list[_Miner]:
        if self._runner is None:
            raise DriverClosedError("pyasic driver: used after close()")
        if self._miners is None:
            self._miners = self._run(self._discover())
        return self._miners

    async def _discover(self) -> list[_Miner]:
        from pyasic import get_miner
        from pyasic.network import MinerNetwork

        if self.subnet is not None:
            clients = await MinerNetwork.from_subnet(self.subnet).scan()
        else:
            found = await asyncio.gather(
                *(self._bounded(partial(get_miner, a)) for a in self.addresses),
                return_exceptions=True,
            )
            clients = []
            for address, client in zip(self.addresses, found, strict=True):
                if isinstance(client, BaseException) or client is None:
                    self.unsupported[address] = f"no miner answered ({client!r})"
                else:
                    clients.append(client)
        miners = []
        for client in sorted(clients, key=lambda c: _address_key(str(c.ip))):
            address = str(client.ip)
            model_id = self.model_overrides.get(address) or catalog_model_id(
                client.make, None if client.raw_model is None else str(client.raw_model)
            )
            if model_id is None:
                self.unsupported[address] = f"model {client.model!r} is not in the catalog"
                continue
            miners.append(
                _Miner(address, client, ASIC_CATALOG[model_id], _capabilities(client, model_id))
            )
        now = self.clock()
        for address in list(self.unsupported):
            model_id = self.model_overrides.get(address)
            if model_id is None or model_id not in ASIC_CATALOG:
                continue
            # a known miner that did not answer: track it as unhealthy and keep trying
            spec = ASIC_CATALOG[model_id]
            miner = _Miner(address, None, spec, _assumed_capabilities(spec))
            miner.health.failed(
                now,
                self.unsupported.pop(address),
                self.settings.unhealthy_backoff_s,
                self.settings.unhealthy_backoff_max_s,
            )
            miners.append(miner)
        return sorted(miners, key=lambda m: _address_key(m.address))

    # ------------------------------------------------------------------ reading

    async def _read_all(self, miners: Sequence[_Miner], details: bool = False) -> None:
        now = self.clock()
        due = [m for m in miners if m.health.due(now)]
        await asyncio.gather(*(self._read_one(m, details) for m in due))

    async def _read_one(self, miner: _Miner, details: bool = False) -> bool:
        """Refresh one miner's readings (with fans and errors when ``details``); False (and
        unhealthy) when it cannot be read."""
        if miner.client is None and not await self._connect(miner):
            return False
        fields = [*READ_FIELDS, *(DETAIL_FIELDS if details else ())]
        data = await self._call(miner, lambda: miner.client.get_data(include=fields))
        if data is None:
            return False
        power_w = _number(data.wattage)
        hashrate_ths = _terahash(data.hashrate)
        if not (np.isfinite(power_w) or np.isfinite(hashrate_ths)):
            # pyasic swallows unparsable replies into empty fields: no reading at all
            miner.health.failed(
                self.clock(),
                "reply carried neither power nor hashrate",
                self.settings.unhealthy_backoff_s,
                self.settings.unhealthy_backoff_max_s,
            )
            return False
        miner.power_w = power_w
        miner.limit_w = _number(data.wattage_limit)
        miner.hashrate_ths = hashrate_ths
        miner.temp_c = _number(getattr(data, "temperature_avg", None))
        if details:
            miner.fans_rpm = tuple(_number(getattr(f, "speed", None)) for f in data.fans or ())
            miner.errors = tuple(str(getattr(e, "error_message", e)) for e in data.errors or ())
        sleep_ceiling = SLEEP_POWER_MARGIN * miner.spec.sleep_power_w
        if np.isfinite(miner.power_w):
            miner.sleeping = miner.power_w <= sleep_ceiling
        elif np.isfinite(miner.hashrate_ths):
            miner.sleeping = miner.hashrate_ths <= 0.0
        return True

    def _readings(self, miners: Sequence[_Miner]) -> AsicReadings:
        model_ids = tuple(dict.fromkeys(m.spec.model_id for m in miners))
        state = np.array(
            [
                AsicState.FAILED
                if not m.health.healthy
                else AsicState.SLEEPING
                if m.sleeping
                else AsicState.ACTIVE
                for m in miners
            ],
            dtype=np.int8,
        )
        return AsicReadings(
            t_s=self.clock(),
            model_ids=model_ids,
            facility=np.full(len(miners), self.facility, dtype=np.int16),
            model=np.array([model_ids.index(m.spec.model_id) for m in miners], dtype=np.int16),
            state=state,
            power_fraction=np.array([m.limit_w / m.spec.power_w for m in miners]),
            power_w=np.array([m.power_w for m in miners]),
            hashrate_ths=np.array([m.hashrate_ths for m in miners]),
            temp_c=np.array([m.temp_c for m in miners]),
            device_ids=tuple(m.address for m in miners),
        )

    async def _connect(self, miner: _Miner) -> bool:
        """Identify a miner that did not answer at discovery (pyasic ``get_miner``)."""
        from pyasic import get_miner

        client = await self._call(miner, lambda: get_miner(miner.address))
        if client is None:
            return False
        miner.client = client
        miner.capabilities = _capabilities(client, miner.spec.model_id)
        return True

    # ------------------------------------------------------------------ commands

    async def _apply_one(self, miners: Sequence[_Miner], command: AsicCommand) -> CommandResult:
        if command.facility != self.facility:
            return CommandResult(command, False, f"no miners at facility {command.facility}")
        now = self.clock()
        members = [m for m in miners if m.spec.model_id == command.model_id]
        if not members:
            return CommandResult(command, False, f"no {command.model_id} miners here")
        usable = [m for m in members if m.health.due(now) and m.client is not None]
        actions: list[tuple[_Miner, str]] = []
        if command.active_count is not None:
            active = [m for m in usable if not m.sleeping]
            asleep = [m for m in usable if m.sleeping]
            target = max(0, min(command.active_count, len(usable)))
            if target < len(active):
                actions += [(m, "sleep") for m in active[target:]]
            elif target > len(active):
                actions += [(m, "wake") for m in asleep[: target - len(active)]]
        if command.power_fraction is not None:
            watts = round(command.power_fraction * members[0].spec.power_w)
            actions += [
                (m, "limit")
                for m in usable
                if m.capabilities.can_set_power_limit and not _close_to(m.limit_w, watts)
            ]
        outcomes = await asyncio.gather(*(self._act(m, what, command) for m, what in actions))
        failed = [
            f"{m.address} {what}: {why}"
            for (m, what), why in zip(actions, outcomes, strict=True)
            if why
        ]
        problems = list(failed)
        unusable = len(members) - len(usable)
        if command.active_count is not None and command.active_count > len(usable):
            problems.append(
                f"asked {command.active_count} active, {len(usable)} usable ({unusable} unhealthy)"
            )
        if command.power_fraction is not None and not members[0].capabilities.can_set_power_limit:
            problems.append(f"{command.model_id} firmware cannot set a power limit")
        reason = "; ".join(problems[:3]) + (
            f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        )
        return CommandResult(command, not problems, reason, changed=len(actions) - len(failed))

    async def _act(self, miner: _Miner, what: str, command: AsicCommand) -> str:
        """Carry out one action on one miner and verify it by reading back; returns "" when
        verified, else why not."""
        before_w = miner.power_w
        if what == "sleep":
            call: Callable[[], Awaitable[Any]] = miner.client.stop_mining
        elif what == "wake":
            call = miner.client.resume_mining
        else:
            watts = round((command.power_fraction or 1.0) * miner.spec.power_w)

            def call() -> Awaitable[Any]:
                return miner.client.set_power_limit(watts)

        accepted = await self._call(miner, call)
        if not accepted:
            return miner.health.last_error or "refused by the firmware"
        if not await self._read_one(miner):
            return f"no read-back: {miner.health.last_error}"
        ceiling = SLEEP_POWER_MARGIN * miner.spec.sleep_power_w
        if what == "sleep" and not miner.power_w <= ceiling:
            return f"still drawing {miner.power_w:.0f} W after sleep"
        if what == "wake" and not (miner.power_w > max(before_w, 0.0) or miner.hashrate_ths > 0):
            return f"power {miner.power_w:.0f} W did not rise after wake"
        if what == "limit" and not miner.limit_w <= watts + 1.0:
            return f"limit reads {miner.limit_w:.0f} W, asked {watts} W"
        if what != "limit":
            miner.sleeping = what == "sleep"
        return ""

    # ------------------------------------------------------------------ calls

    async def _bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` under the concurrency limit and the timeout (the coroutine is made
        only once a slot is free, so a cancelled wait leaves none un-awaited)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        async with self._semaphore:
            return await asyncio.wait_for(call(), self.settings.timeout_s)

    async def _call(self, miner: _Miner, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()`` with timeout and retries; None (and the miner unhealthy) if every
        attempt failed, else its result (healthy)."""
        settings = self.settings
        error = ""
        for attempt in range(settings.retries + 1):
            try:
                result = await self._bounded(call)
            except Exception as failure:  # pyasic raises many types; all mean "no answer"
                error = f"{type(failure).__name__}: {failure}".strip(": ")
            else:
                if result is False:
                    error = "refused by the firmware"
                else:
                    miner.health.succeeded()
                    return result
            if attempt < settings.retries:
                await asyncio.sleep(settings.retry_backoff_s * 2.0**attempt)
        miner.health.failed(
            self.clock(), error, settings.unhealthy_backoff_s, settings.unhealthy_backoff_max_s
        )
        return None

    def _run(self, coroutine: Any) -> Any:
        if self._runner is None:
            raise DriverClosedError("pyasic driver: used after close()")
        return self._runner.run(coroutine)


def _capabilities(client: Any, model_id: str) -> Capabilities:
    """What a pyasic miner class supports: a power limit only where its class implements
    ``set_power_limit`` (pyasic's base answers False, e.g. for stock Antminer firmware)."""
    spec = ASIC_CATALOG[model_id]
    return Capabilities(
        can_sleep=True,
        can_resume=True,
        can_set_power_limit=type(client).set_power_limit is not _base_set_power_limit(),
        can_read_power=True,
        can_read_temperature=True,
        min_power_fraction=spec.min_power_fraction,
    )


def _assumed_capabilities(spec: AsicSpec) -> Capabilities:
    """Capabilities of a miner not yet identified (corrected once it answers)."""
    return Capabilities(True, True, True, min_power_fraction=spec.min_power_fraction)


def _base_set_power_limit() -> Any:
    from pyasic.miners.base import MinerProtocol

    return MinerProtocol.set_power_limit


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _terahash(hashrate: Any) -> float:
    """A pyasic hashrate object in TH/s (NaN when missing)."""
    if hashrate is None:
        return float("nan")
    try:
        return float(hashrate.into(type(hashrate.unit).TH))
    except (AttributeError, TypeError, ValueError):
        return _number(hashrate)


def _close_to(limit_w: float, watts: float) -> bool:
    return bool(np.isfinite(limit_w)) and abs(limit_w - watts) <= 1.0


def _address_key(address: str) -> tuple[int, ...]:
    return tuple(int(part) for part in address.split(".")) if address.count(".") == 3 else (0,)
