"""One emulated miner as its firmware sees it: a row of the miner table plus identity and
faults.

Firmware emulators read the miner through :meth:`EmulatedMiner.snapshot`, which applies a
``wrong_reading`` fault, and command it through the table, so the table always holds the
truth.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from drivers.emulators.faults import Fault, FaultKind, FaultPlan
from drivers.emulators.identities import MinerIdentity
from drivers.emulators.miner_state import MinerTable
from models.fleet_physics import AsicState, asic_hashrate_ths
from models.hardware import AsicSpec

POOL_URL = "stratum+tcp://pool.emulated.invalid:3333"
"""Pool every emulated miner reports (a reserved, unresolvable domain)."""

SHARE_INTERVAL_S = 5
"""Uptime per share the pool accepts while the miner hashes [s]."""


@dataclass(frozen=True, slots=True)
class MinerSnapshot:
    """What one miner reports at one instant (after any ``wrong_reading`` fault).

    Attributes:
        state: operating state.
        power_w: wall power [W].
        power_limit_w: applied power limit [W].
        hashrate_ths: total hashrate [TH/s].
        target_hashrate_ths: steady hashrate at the power limit, what the firmware expects
            once ramped up (unaffected by faults) [TH/s].
        board_hashrate_ths: hashrate per hashboard [TH/s].
        chip_temp_c: chip temperature [°C].
        board_temp_c: hashboard (PCB) temperature [°C].
        fan_rpm: fan speed [rpm].
        uptime_s: time since start [s].
    """

    state: AsicState
    power_w: float
    power_limit_w: float
    hashrate_ths: float
    target_hashrate_ths: float
    board_hashrate_ths: tuple[float, ...]
    chip_temp_c: float
    board_temp_c: float
    fan_rpm: float
    uptime_s: float

    @property
    def hashing(self) -> bool:
        """True when the miner is told to hash (it may still be ramping up)."""
        return self.state == AsicState.ACTIVE

    @property
    def accepted_shares(self) -> int:
        """Shares the pool accepted: one per :data:`SHARE_INTERVAL_S` of uptime while
        hashing, none while asleep [-]."""
        return int(self.uptime_s // SHARE_INTERVAL_S) if self.hashing else 0


@dataclass(frozen=True, slots=True)
class EmulatedMiner:
    """Miner ``index`` of ``table``, reachable at ``address``, presented as ``identity``."""

    index: int
    address: str
    identity: MinerIdentity
    table: MinerTable
    faults: FaultPlan

    @property
    def spec(self) -> AsicSpec:
        """The miner's catalog spec."""
        return self.table.specs[self.index]

    def fault(self) -> Fault | None:
        """The miner's fault right now, or None."""
        return self.faults.fault_for(self.index)

    def snapshot(self) -> MinerSnapshot:
        """The miner's readings now, as its firmware reports them."""
        readings = self.table.read(self.index)
        spec = self.spec
        fault = self.fault()
        factor = (
            fault.reading_factor
            if fault is not None and fault.kind == FaultKind.WRONG_READING
            else 1.0
        )
        return MinerSnapshot(
            state=AsicState(int(readings.state[0])),
            power_w=float(readings.power_w[0]) * factor,
            power_limit_w=float(readings.power_limit_w[0]),
            hashrate_ths=float(readings.hashrate_ths[0]) * factor,
            target_hashrate_ths=float(
                asic_hashrate_ths(
                    spec.hashrate_ths,
                    float(readings.power_limit_w[0]) / spec.power_w,
                    spec.efficiency_exponent,
                )
            ),
            board_hashrate_ths=tuple(float(h) * factor for h in readings.board_hashrate_ths[0]),
            chip_temp_c=float(readings.chip_temp_c[0]),
            board_temp_c=float(readings.board_temp_c[0]),
            fan_rpm=float(readings.fan_rpm[0]),
            uptime_s=float(readings.uptime_s[0]),
        )

    # ------------------------------------------------------------------ commands

    def sleep(self) -> None:
        """Stop hashing now."""
        self.table.sleep(self.index)

    def wake(self) -> None:
        """Start hashing (ramping up) now."""
        self.table.wake(self.index)

    def set_power_limit_w(self, watts: float) -> float:
        """Set the power limit [W]; returns the applied (clamped) limit [W]."""
        return float(self.table.set_power_limit_w(self.index, watts)[0])

    # ------------------------------------------------------------------ identifiers

    @property
    def mac(self) -> str:
        """A stable, locally administered MAC address derived from the IP address."""
        digest = hashlib.sha256(self.address.encode()).digest()
        return ":".join(f"{b:02X}" for b in (0x02, *digest[:5]))

    @property
    def serial_number(self) -> str:
        """A stable serial number derived from the IP address."""
        return "EMU" + hashlib.sha256(self.address.encode()).hexdigest()[:12].upper()

    @property
    def hostname(self) -> str:
        """Host name: the firmware family and the miner's index."""
        return f"{self.identity.firmware}-{self.index:05d}"

    @property
    def pool_user(self) -> str:
        """Worker name the miner logs in to :data:`POOL_URL` with."""
        return f"hcp.{self.hostname}"
