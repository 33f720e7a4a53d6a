"""Whatsminer (MicroBT btminer) API v2 on TCP 4028.

Readings use the cgminer format (``summary``, ``devs``, ``devdetails``, ``pools``) and a
flat format for ``get_*`` and ``status`` (``{"STATUS": "S", "Code": 131, "Msg": {...}}``).
Control is privileged: the client fetches a token (``get_token``) and sends AES-encrypted
commands (:mod:`drivers.emulators.whatsminer_crypto`): ``power_off`` (sleep), ``power_on``
(wake, ramping up), ``adjust_power_limit`` (clamped to the model's power range),
``set_led``. The firmware version reported predates 2024-11, so pyasic picks its v2 client.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

from drivers.emulators.cgminer import (
    ACCESS_DENIED_CODE,
    DEVDETAILS_KEYS,
    INVALID_COMMAND_CODE,
    REFUSAL_MESSAGE,
    CgminerFirmware,
    JsonDict,
)
from drivers.emulators.emulated_miner import EmulatedMiner
from drivers.emulators.faults import FaultKind
from drivers.emulators.whatsminer_crypto import (
    WhatsminerCryptoError,
    aes_key,
    decrypt_json,
    encrypt_json,
    host_sign,
)

WHATSMINER_FIRMWARE_VERSION = "20230911.12.Rel"
"""Firmware version reported (before 2024-11: API v2)."""

WHATSMINER_API_VERSION = "whatsminer v2.0.5"
"""API version reported."""

DEFAULT_API_PASSWORD = "admin"
"""Password of the privileged API (the factory default)."""

TOKEN_LIFETIME_S = 1800.0
"""A token from ``get_token`` stays valid this long [s] (clients cache it 30 min)."""

MAX_LIVE_TOKENS = 64
"""Tokens remembered per miner; the oldest are forgotten first."""

OK_CODE = 131
"""Whatsminer's status code of a successful command."""

TOKEN_CODE = 134
"""Whatsminer's status code of a ``get_token`` reply."""

BAD_DATA_CODE = 23
"""Status code of a privileged request that does not decrypt."""

BAD_TOKEN_CODE = 135
"""Status code of a privileged request with an unknown or expired token."""

PSU_INPUT_VOLTAGE_V = 230.0
"""Mains voltage the emulated power supply reports [V]."""


class WhatsminerFirmware(CgminerFirmware):
    """Whatsminer API v2 on one emulated MicroBT miner."""

    description: ClassVar[str] = "btminer"
    board_name: ClassVar[str] = "SM"
    board_driver: ClassVar[str] = "bitmicro"
    devdetails_keys: ClassVar[tuple[str, ...]] = tuple(
        key for key in DEVDETAILS_KEYS if key != "Chips"
    )

    def __init__(self, miner: EmulatedMiner, password: str = DEFAULT_API_PASSWORD) -> None:
        super().__init__(miner)
        self.salt = _derived_text(f"{miner.address}/salt", 8)
        self.password = password
        self._key = aes_key(password, self.salt)
        self._tokens: dict[str, float] = {}
        self._tokens_issued = 0
        self.led = "auto"

    def handle(self, request: JsonDict) -> JsonDict:
        """Encrypted (privileged) requests carry ``enc``; the rest is cgminer-style."""
        if "enc" in request:
            return self._privileged(request)
        return super().handle(request)

    def flat(self, code: int, message: Any, status: str = "S") -> JsonDict:
        """A reply in the flat format of ``get_*`` commands."""
        return {
            "STATUS": status,
            "When": int(time.time()),
            "Code": code,
            "Msg": message,
            "Description": "",
        }

    # ------------------------------------------------------------------ flat readings

    def cmd_get_token(self, parameter: str | None) -> JsonDict:
        """Salts and a time string from which the client derives key and token."""
        self._tokens_issued += 1
        time_text = f"{self._tokens_issued % 10000:04d}"
        newsalt = _derived_text(f"{self.miner.address}/newsalt/{self._tokens_issued}", 8)
        now_s = self.miner.table.now()
        self._tokens = {
            sign: issued_s
            for sign, issued_s in self._tokens.items()
            if now_s - issued_s < TOKEN_LIFETIME_S
        }
        while len(self._tokens) >= MAX_LIVE_TOKENS:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[host_sign(self.password, self.salt, time_text, newsalt)] = now_s
        return self.flat(TOKEN_CODE, {"time": time_text, "salt": self.salt, "newsalt": newsalt})

    def cmd_get_version(self, parameter: str | None) -> JsonDict:
        """API and firmware versions."""
        return self.flat(
            OK_CODE,
            {
                "api_ver": WHATSMINER_API_VERSION,
                "rpc_ver": WHATSMINER_API_VERSION,
                "fw_ver": WHATSMINER_FIRMWARE_VERSION,
            },
        )

    def cmd_version(self, parameter: str | None) -> JsonDict:
        """Same as ``get_version``."""
        return self.cmd_get_version(parameter)

    def cmd_get_miner_info(self, parameter: str | None) -> JsonDict:
        """Network identity, LED mode, serial number."""
        return self.flat(
            OK_CODE,
            {
                "ip": self.miner.address,
                "proto": "dhcp",
                "netmask": "255.0.0.0",
                "gateway": "127.0.0.1",
                "dns": "127.0.0.1",
                "hostname": self.miner.hostname,
                "mac": self.miner.mac,
                "ledstat": self.led,
                "minersn": self.miner.serial_number,
            },
        )

    def cmd_get_psu(self, parameter: str | None) -> JsonDict:
        """Power supply: input current [A] and voltage [V], fan speed [rpm]."""
        s = self.miner.snapshot()
        return self.flat(
            OK_CODE,
            {
                "name": "P221B",
                "model": "P221B",
                "hw_version": "V01.00",
                "sw_version": "V01.00.V01.03",
                "iin": f"{s.power_w / PSU_INPUT_VOLTAGE_V:.2f}",
                "vin": f"{PSU_INPUT_VOLTAGE_V:.0f}",
                "fan_speed": str(round(s.fan_rpm)),
                "serial_no": self.miner.serial_number + "P",
            },
        )

    def cmd_status(self, parameter: str | None) -> JsonDict:
        """Whether the miner is powered off (asleep)."""
        hashing = self.miner.snapshot().hashing
        return self.flat(
            OK_CODE,
            {
                "mineroff": "false" if hashing else "true",
                "mineroff_reason": "" if hashing else "api power_off",
                "FirmwareVersion": f"'{WHATSMINER_FIRMWARE_VERSION}'",
            },
        )

    def cmd_get_error_code(self, parameter: str | None) -> JsonDict:
        """Active error codes (none)."""
        return self.flat(OK_CODE, {"error_code": []})

    # ------------------------------------------------------------------ cgminer readings

    def cmd_summary(self, parameter: str | None) -> JsonDict:
        """Totals: hashrate [MH/s], power and limit [W], fans [rpm], temperatures [°C]."""
        s = self.miner.snapshot()
        mhs = s.hashrate_ths * 1e6
        fan = round(s.fan_rpm)
        return self.ok(
            11,
            "Summary",
            SUMMARY=[
                {
                    "Elapsed": int(s.uptime_s),
                    "MHS av": round(mhs, 2),
                    "MHS 5s": round(mhs, 2),
                    "MHS 1m": round(mhs, 2),
                    "MHS 15m": round(mhs, 2),
                    "HS RT": round(mhs, 2),
                    "Accepted": s.accepted_shares,
                    "Rejected": 0,
                    "Temperature": round(s.board_temp_c, 2),
                    "Chip Temp Avg": round(s.chip_temp_c, 2),
                    "Fan Speed In": fan,
                    "Fan Speed Out": fan,
                    "Power": round(s.power_w),
                    "Power Limit": round(s.power_limit_w),
                    "Power Mode": "Normal",
                    "Power Fanspeed": fan,
                    "Env Temp": round(self.miner.table.ambient_c, 2),
                    "Factory GHS": round(self.miner.spec.hashrate_ths * 1000.0),
                    "Target MHS": round(s.target_hashrate_ths * 1e6, 2),
                    "MAC": self.miner.mac,
                    "Error Code Count": 0,
                    "Firmware Version": f"'{WHATSMINER_FIRMWARE_VERSION}'",
                    "Uptime": int(s.uptime_s),
                }
            ],
        )

    def cmd_devs(self, parameter: str | None) -> JsonDict:
        """One entry per hashboard: hashrate [MH/s], temperatures [°C], chips."""
        s = self.miner.snapshot()
        chips = self.miner.identity.chips_per_board
        boards = [
            {
                "ASC": board,
                "Slot": board,
                **self.devs_fields(board, ths, s),
                "MHS 15m": round(ths * 1e6, 2),
                "Effective Chips": chips,
                "PCB SN": f"{self.miner.serial_number}B{board}",
                "Chip Temp Min": round(s.chip_temp_c - 2.0, 2),
                "Chip Temp Max": round(s.chip_temp_c + 2.0, 2),
                "Chip Temp Avg": round(s.chip_temp_c, 2),
            }
            for board, ths in enumerate(s.board_hashrate_ths)
        ]
        return self.ok(9, f"{len(boards)} ASC(s)", DEVS=boards)

    def cmd_edevs(self, parameter: str | None) -> JsonDict:
        """Same as ``devs``."""
        return self.cmd_devs(parameter)

    # ------------------------------------------------------------------ privileged

    def _privileged(self, request: JsonDict) -> JsonDict:
        data = request.get("data")
        if not isinstance(data, str):
            return self.flat(BAD_DATA_CODE, "invalid JSON message", status="E")
        try:
            command = decrypt_json(self._key, data)
        except WhatsminerCryptoError:
            return self.flat(BAD_DATA_CODE, "invalid JSON message", status="E")
        issued_s = self._tokens.get(str(command.get("token", "")))
        if issued_s is None or self.miner.table.now() - issued_s >= TOKEN_LIFETIME_S:
            return self.flat(BAD_TOKEN_CODE, "check token err", status="E")
        fault = self.miner.fault()
        if fault is not None and fault.kind == FaultKind.REFUSE:
            return self.flat(ACCESS_DENIED_CODE, REFUSAL_MESSAGE, status="E")
        name = str(command.get("cmd", ""))
        handler: Callable[[JsonDict], str | None] | None = (
            getattr(self, f"priv_{name}", None) if name.replace("_", "").isalnum() else None
        )
        if handler is None:
            reply = self.flat(INVALID_COMMAND_CODE, f"invalid cmd: {name}", status="E")
        else:
            problem = handler(command)
            reply = (
                self.flat(OK_CODE, "API command OK")
                if problem is None
                else self.flat(INVALID_COMMAND_CODE, problem, status="E")
            )
        return {"enc": encrypt_json(self._key, reply)}

    def priv_power_off(self, command: JsonDict) -> str | None:
        """Stop hashing (the control board and API stay up)."""
        self.miner.sleep()
        return None

    def priv_power_on(self, command: JsonDict) -> str | None:
        """Start hashing again (ramping up)."""
        self.miner.wake()
        return None

    def priv_adjust_power_limit(self, command: JsonDict) -> str | None:
        """Set the power limit [W] (``power_limit`` as text), clamped to the model's range."""
        try:
            watts = float(command.get("power_limit", ""))
        except (TypeError, ValueError):
            return f"invalid power_limit: {command.get('power_limit')!r}"
        if not (math.isfinite(watts) and watts > 0):
            return f"invalid power_limit: {command.get('power_limit')!r}"
        self.miner.set_power_limit_w(watts)
        return None

    def priv_set_led(self, command: JsonDict) -> str | None:
        """``param: "auto"`` gives the LED back to the firmware; colors set it by hand."""
        self.led = "auto" if command.get("param") == "auto" else "manual"
        return None


def _derived_text(seed: str, length: int) -> str:
    """A stable alphanumeric string of ``length`` characters derived from ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()[:length]
