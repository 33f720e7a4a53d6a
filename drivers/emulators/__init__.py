"""Emulated hardware: virtual miners speaking firmware APIs on loopback, fake NVML.

Miners: :class:`EmulatorFarm` serves N virtual ASICs on loopback addresses, each speaking
a real firmware API (LuxOS, Whatsminer API v2, Braiins OS) that the unmodified pyasic
client detects, reads and commands; a :class:`MinerTable` holds their true state (the
twin's miner physics) and a :class:`FaultPlan` makes chosen miners misbehave.
"""

from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.farm import EmulatorFarm
from drivers.emulators.faults import Fault, FaultKind, FaultPlan
from drivers.emulators.miner_state import MinerReadings, MinerTable

__all__ = [
    "EmulatorConfigError",
    "EmulatorFarm",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "MinerReadings",
    "MinerTable",
]
