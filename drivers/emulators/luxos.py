"""LuxOS (Luxor firmware for Antminers) on the cgminer API, TCP 4028.

Everything, control included, is cgminer JSON. Readings: ``stats`` (per-board hashrate in
GH/s as strings, chip and PCB temperatures as ``"a-b-c-d"`` strings), ``power``,
``fans``, ``summary``. Control needs a session (``session`` / ``logon``); privileged
commands carry ``parameter="<SessionID>,arg,..."``: ``curtail`` sleep|wakeup,
``profileset`` (refused while ATM, the automatic thermal tuner, is on), ``atmset``,
``ledset``. Power is set by choosing a profile; the profiles of a miner span its power
range from ``min_power_fraction`` to nameplate in steps of :data:`PROFILE_STEP` (the top
one is ``default``), named by chip frequency like real LuxOS profiles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from drivers.emulators.cgminer import POOL_KEYS, CgminerFirmware, JsonDict
from drivers.emulators.emulated_miner import EmulatedMiner
from drivers.emulators.miner_state import FAN_FULL_RPM
from models.fleet_physics import asic_hashrate_ths

LUXOS_VERSION = "2024.5.1.155843-9b8ac5a1"
"""Firmware version reported."""

LUXOS_API_VERSION = "3.7"
"""cgminer API version reported."""

PROFILE_STEP = 0.05
"""Spacing of the power profiles, as a fraction of nameplate power [-]."""

DEFAULT_FREQUENCY_MHZ = 525.0
"""Chip frequency of the ``default`` (nameplate) profile [MHz]; lower profiles scale it
with hashrate."""

SESSION_ERROR_CODE = 45
"""Status code of a privileged command with a wrong session id."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One LuxOS power profile.

    Attributes:
        name: profile name (``"465MHz"``, or ``"default"`` at nameplate).
        watts: wall power at this profile [W].
        hashrate_ths: hashrate at this profile [TH/s].
        frequency_mhz: chip frequency [MHz].
        voltage_v: hashboard voltage [V].
    """

    name: str
    watts: int
    hashrate_ths: float
    frequency_mhz: int
    voltage_v: float


def power_profiles(miner: EmulatedMiner) -> tuple[Profile, ...]:
    """The miner's power profiles, lowest power first."""
    spec = miner.spec
    n_steps = max(1, round((1.0 - spec.min_power_fraction) / PROFILE_STEP))
    fractions = np.linspace(spec.min_power_fraction, 1.0, n_steps + 1)
    hashrates = np.asarray(
        asic_hashrate_ths(spec.hashrate_ths, fractions, spec.efficiency_exponent)
    )
    profiles: list[Profile] = []
    names: set[str] = set()
    for k, (fraction, hashrate) in enumerate(
        zip(fractions.tolist(), hashrates.tolist(), strict=True)
    ):
        frequency = round(DEFAULT_FREQUENCY_MHZ * hashrate / spec.hashrate_ths)
        name = "default" if k == n_steps else f"{frequency}MHz"
        if name in names:
            continue
        names.add(name)
        share = (fraction - spec.min_power_fraction) / max(1.0 - spec.min_power_fraction, 1e-9)
        profiles.append(
            Profile(
                name=name,
                watts=round(spec.power_w * fraction),
                hashrate_ths=hashrate,
                frequency_mhz=frequency,
                voltage_v=round(12.0 + 3.0 * share, 2),
            )
        )
    return tuple(profiles)


def _sensor_string(center_c: float, spread_c: int) -> str:
    """Four sensor readings ``"a-b-c-d"`` around ``center_c`` [°C], whole degrees, at
    least 1 (the format has no sign and 0 means "no sensor")."""
    center = round(center_c)
    values = (center - spread_c, center, center, center + spread_c)
    return "-".join(str(max(1, v)) for v in values)


class LuxosFirmware(CgminerFirmware):
    """LuxOS on one emulated Antminer."""

    description: ClassVar[str] = f"LUXminer {LUXOS_VERSION}"
    control_commands: ClassVar[frozenset[str]] = frozenset(
        {"curtail", "profileset", "atmset", "ledset", "fanset", "tempctrlset"}
    )
    pool_keys: ClassVar[tuple[str, ...]] = (*POOL_KEYS, "GROUP")

    def __init__(self, miner: EmulatedMiner) -> None:
        super().__init__(miner)
        self.profiles = power_profiles(miner)
        self.session_id = ""
        self.atm_enabled = True
        self.red_led = "off"
        self._sessions_opened = 0

    # ------------------------------------------------------------------ helpers

    def active_profile(self) -> Profile:
        """The profile matching the miner's applied power limit: the highest at or below
        it, else the lowest."""
        limit_w = float(self.miner.table.power_limit_w(self.miner.index)[0])
        fitting = [p for p in self.profiles if p.watts <= limit_w + 0.5]
        return fitting[-1] if fitting else self.profiles[0]

    def _privileged_args(self, parameter: str | None) -> list[str] | None:
        """Arguments after a valid session id, or None when the session id is wrong."""
        parts = [] if parameter is None else [p.strip() for p in parameter.split(",")]
        if not parts or not self.session_id or parts[0] != self.session_id:
            return None
        return parts[1:]

    def _session_error(self) -> JsonDict:
        return self.error(SESSION_ERROR_CODE, "Invalid session id")

    # ------------------------------------------------------------------ identity

    def cmd_version(self, parameter: str | None) -> JsonDict:
        """Firmware and API versions and the model."""
        return self.ok(
            22,
            "LUXminer versions",
            VERSION=[
                {
                    "API": LUXOS_API_VERSION,
                    "LUXminer": LUXOS_VERSION,
                    "Miner": LUXOS_VERSION,
                    "Type": self.miner.identity.reported_model,
                }
            ],
        )

    def cmd_config(self, parameter: str | None) -> JsonDict:
        """Active profile, LED, MAC address, ATM and curtail state."""
        snapshot = self.miner.snapshot()
        return self.ok(
            33,
            "LUXminer config",
            CONFIG=[
                {
                    "Profile": self.active_profile().name,
                    "RedLed": self.red_led,
                    "MACAddr": self.miner.mac.lower(),
                    "Hostname": self.miner.hostname,
                    "IsAtmEnabled": self.atm_enabled,
                    "CurtailMode": "None" if snapshot.hashing else "Sleep",
                    "IsTuning": False,
                }
            ],
        )

    def cmd_profiles(self, parameter: str | None) -> JsonDict:
        """The power profiles."""
        return self.ok(
            69,
            "LUXminer profiles",
            PROFILES=[
                {
                    "Profile Name": p.name,
                    "Frequency": p.frequency_mhz,
                    "Voltage": p.voltage_v,
                    "Watts": p.watts,
                    "Hashrate": round(p.hashrate_ths, 2),
                    "IsTuned": False,
                    "IsDynamic": False,
                    "Step": k,
                }
                for k, p in enumerate(self.profiles)
            ],
        )

    # ------------------------------------------------------------------ readings

    def cmd_summary(self, parameter: str | None) -> JsonDict:
        """Totals: hashrate [GH/s], uptime [s]."""
        s = self.miner.snapshot()
        ghs = s.hashrate_ths * 1000.0
        return self.ok(
            11,
            "Summary",
            SUMMARY=[
                {
                    "Elapsed": int(s.uptime_s),
                    "GHS 5s": round(ghs, 2),
                    "GHS av": round(ghs, 2),
                    "GHS 30m": round(ghs, 2),
                    "Accepted": s.accepted_shares,
                    "Rejected": 0,
                    "Hardware Errors": 0,
                }
            ],
        )

    def cmd_stats(self, parameter: str | None) -> JsonDict:
        """Per-board hashrate [GH/s], chips, temperatures [°C]; fans [rpm]."""
        s = self.miner.snapshot()
        identity = self.miner.identity
        boards: JsonDict = {}
        for n, board_ths in enumerate(s.board_hashrate_ths, start=1):
            boards[f"chain_rate{n}"] = f"{board_ths * 1000.0:.2f}"
            boards[f"chain_acn{n}"] = identity.chips_per_board
            boards[f"temp_chip{n}"] = _sensor_string(s.chip_temp_c, 1)
            boards[f"temp_pcb{n}"] = _sensor_string(s.board_temp_c, 2)
        fans = {f"fan{k}": round(s.fan_rpm) for k in range(1, identity.fans + 1)}
        return self.ok(
            70,
            "LUXminer stats",
            STATS=[
                {
                    "STATS": 0,
                    "ID": "luxminer",
                    "Elapsed": int(s.uptime_s),
                    "Type": identity.reported_model,
                    "Miner": LUXOS_VERSION,
                },
                {
                    "STATS": 1,
                    "ID": "BC50",
                    "Elapsed": int(s.uptime_s),
                    "GHS 5s": round(s.hashrate_ths * 1000.0, 2),
                    "total_rateideal": round(s.target_hashrate_ths * 1000.0, 2),
                    "rate_unit": "GH",
                    "total_freqavg": self.active_profile().frequency_mhz,
                    "fan_num": identity.fans,
                    **fans,
                    **boards,
                },
            ],
        )

    def cmd_power(self, parameter: str | None) -> JsonDict:
        """Wall power [W]."""
        return self.ok(
            30, "Power", POWER=[{"Watts": round(self.miner.snapshot().power_w), "PSU": True}]
        )

    def cmd_fans(self, parameter: str | None) -> JsonDict:
        """Fan speeds [rpm] and duty [%]."""
        s = self.miner.snapshot()
        speed_pct = round(100.0 * s.fan_rpm / FAN_FULL_RPM)
        return self.ok(
            202,
            f"{self.miner.identity.fans} Fan(s)",
            FANS=[
                {"ID": k, "RPM": round(s.fan_rpm), "Speed": speed_pct}
                for k in range(self.miner.identity.fans)
            ],
            FANCTRL=[{"Mode": "Auto", "MinFans": 1, "Speed": speed_pct}],
        )

    def cmd_tempctrl(self, parameter: str | None) -> JsonDict:
        """Temperature control set points [°C]."""
        return self.ok(
            203,
            "Temperature control",
            TEMPCTRL=[{"Mode": "Auto", "Target": 75, "Hot": 85, "Dangerous": 95}],
        )

    def cmd_groups(self, parameter: str | None) -> JsonDict:
        """The one pool group."""
        return self.ok(7, "1 Group(s)", GROUPS=[{"GROUP": 0, "Name": "Default", "Quota": 1}])

    def cmd_atm(self, parameter: str | None) -> JsonDict:
        """Automatic thermal management settings."""
        return self.ok(
            339,
            "Advanced Thermal Management configuration",
            ATM=[
                {
                    "Enabled": self.atm_enabled,
                    "MinProfile": self.profiles[0].name,
                    "MaxProfile": "default",
                    "PostRampMinutes": 15,
                    "StartupMinutes": 15,
                    "TempWindow": 7,
                    "PreventOC": True,
                }
            ],
        )

    # ------------------------------------------------------------------ sessions

    def cmd_session(self, parameter: str | None) -> JsonDict:
        """The open session id (empty when none)."""
        return self.ok(36, "Session", SESSION=[{"SessionID": self.session_id}])

    def cmd_logon(self, parameter: str | None) -> JsonDict:
        """Open a session (or return the open one)."""
        if not self.session_id:
            self._sessions_opened += 1
            seed = f"{self.miner.address}/{self._sessions_opened}".encode()
            self.session_id = hashlib.sha256(seed).hexdigest()[:8]
        return self.ok(36, "Logon", SESSION=[{"SessionID": self.session_id}])

    def cmd_logoff(self, parameter: str | None) -> JsonDict:
        """Close the session."""
        if self._privileged_args(parameter) is None:
            return self._session_error()
        self.session_id = ""
        return self.ok(36, "Logoff")

    # ------------------------------------------------------------------ control

    def cmd_curtail(self, parameter: str | None) -> JsonDict:
        """``<sid>,sleep`` stops hashing; ``<sid>,wakeup`` ramps back up."""
        args = self._privileged_args(parameter)
        if args is None:
            return self._session_error()
        mode = args[0] if args else ""
        if mode == "sleep":
            self.miner.sleep()
        elif mode == "wakeup":
            self.miner.wake()
        else:
            return self.error(14, f"Invalid curtail mode: {mode!r}")
        return self.ok(301, f"Curtail {mode}")

    def cmd_profileset(self, parameter: str | None) -> JsonDict:
        """``<sid>,<profile>``: run at that profile's power (ATM must be off)."""
        args = self._privileged_args(parameter)
        if args is None:
            return self._session_error()
        if self.atm_enabled:
            return self.error(14, "Cannot set profile while ATM is enabled")
        name = args[0] if args else ""
        profile = next((p for p in self.profiles if p.name == name), None)
        if profile is None:
            return self.error(14, f"Unknown profile: {name!r}")
        self.miner.set_power_limit_w(profile.watts)
        return self.ok(
            78, "Profile set", PROFILE=[{"Profile": profile.name, "Board": "all", "Rebooting": 0}]
        )

    def cmd_atmset(self, parameter: str | None) -> JsonDict:
        """``<sid>,enabled=true|false[,...]``: switch ATM (other settings are accepted)."""
        args = self._privileged_args(parameter)
        if args is None:
            return self._session_error()
        for arg in args:
            key, _, value = arg.partition("=")
            if key == "enabled":
                if value not in ("true", "false"):
                    return self.error(14, f"Invalid value for enabled: {value!r}")
                self.atm_enabled = value == "true"
        return self.ok(340, "Advanced Thermal Management configuration updated")

    def cmd_ledset(self, parameter: str | None) -> JsonDict:
        """``<sid>,red,blink|on|off``: the locate LED."""
        args = self._privileged_args(parameter)
        if args is None:
            return self._session_error()
        if len(args) != 2 or args[0] != "red" or args[1] not in ("blink", "on", "off"):
            return self.error(14, f"Invalid LED setting: {','.join(args)!r}")
        self.red_led = args[1]
        return self.ok(331, "LED set")
