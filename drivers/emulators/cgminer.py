"""The cgminer JSON API shared by miner firmware: command dispatch, multicommand, status.

A request is one JSON object ``{"command": "summary", "parameter": "..."}``; a command
``"a+b+c"`` asks for several at once and is answered ``{"a": [reply_a], "b": [reply_b],
..., "id": 1}``. Each reply carries a ``STATUS`` list whose ``STATUS`` is ``"S"``
(success) or ``"E"`` (error) with a code and message. A firmware subclass answers command
``x`` with a method ``cmd_x(parameter) -> dict`` and lists the commands that change the
miner in ``control_commands``; those are refused when the miner has a ``refuse`` fault.

``devdetails`` and ``pools`` answer alike on every firmware; the base class answers them,
and a firmware names the keys it reports (and how it names its hashboards) in class
attributes. :meth:`CgminerFirmware.devs_fields` holds the per-board fields of ``devs``
that the firmware answering it share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from drivers.emulators.emulated_miner import POOL_URL, EmulatedMiner, MinerSnapshot
from drivers.emulators.faults import FaultKind
from drivers.emulators.miner_state import HASHBOARDS

JsonDict = dict[str, Any]

INVALID_COMMAND_CODE = 14
"""cgminer's status code for a command it does not know."""

ACCESS_DENIED_CODE = 45
"""cgminer's status code for a command the caller may not run."""

REFUSAL_MESSAGE = "Access denied: control commands are disabled on this miner"
"""Message of a control command refused by a ``refuse`` fault."""

DEVDETAILS_KEYS: tuple[str, ...] = (
    "DEVDETAILS",
    "Name",
    "ID",
    "Driver",
    "Kernel",
    "Model",
    "Chips",
)
"""Keys of a ``devdetails`` entry (one per hashboard) as Antminer firmware reports them."""

POOL_KEYS: tuple[str, ...] = (
    "POOL",
    "URL",
    "Status",
    "Priority",
    "Quota",
    "Accepted",
    "Rejected",
    "Get Failures",
    "Remote Failures",
    "User",
    "Stratum Active",
)
"""Keys of a ``pools`` entry as stock cgminer reports them."""


def status_block(status: str, code: int, message: str, description: str) -> list[JsonDict]:
    """A cgminer ``STATUS`` list: ``status`` is ``"S"`` (success), ``"I"`` (info) or
    ``"E"`` (error); ``When`` is the Unix time of the reply [s]."""
    return [
        {
            "STATUS": status,
            "When": int(time.time()),
            "Code": code,
            "Msg": message,
            "Description": description,
        }
    ]


class CgminerFirmware:
    """Answers cgminer-style requests for one emulated miner.

    Subclasses set ``description`` (the firmware banner in every STATUS) and
    ``control_commands``, and define ``cmd_<name>(parameter)`` methods returning a reply
    built with :meth:`ok` or :meth:`error`. ``board_name``, ``board_driver``,
    ``devdetails_keys`` and ``pool_keys`` shape the shared ``devdetails`` and ``pools``
    replies (and ``board_name`` the ``devs`` entries): each key list names, in order, the
    keys that firmware's entries carry.
    """

    description: ClassVar[str] = "cgminer"
    control_commands: ClassVar[frozenset[str]] = frozenset()
    board_name: ClassVar[str] = ""
    board_driver: ClassVar[str] = "bitmain"
    devdetails_keys: ClassVar[tuple[str, ...]] = DEVDETAILS_KEYS
    pool_keys: ClassVar[tuple[str, ...]] = POOL_KEYS

    def __init__(self, miner: EmulatedMiner) -> None:
        self.miner = miner

    def handle(self, request: JsonDict) -> JsonDict:
        """The reply to one parsed request (single or multicommand)."""
        command = request.get("command")
        parameter = request.get("parameter")
        if not isinstance(command, str) or not command:
            return self.error(INVALID_COMMAND_CODE, "Missing or invalid command")
        parameter_text = None if parameter is None else str(parameter)
        if "+" in command:
            reply: JsonDict = {
                part: [self.answer(part, parameter_text)] for part in command.split("+")
            }
            reply["id"] = 1
            return reply
        return self.answer(command, parameter_text)

    def answer(self, command: str, parameter: str | None) -> JsonDict:
        """The reply to one command, after the ``refuse`` fault check."""
        fault = self.miner.fault()
        if (
            fault is not None
            and fault.kind == FaultKind.REFUSE
            and command in self.control_commands
        ):
            return self.error(ACCESS_DENIED_CODE, REFUSAL_MESSAGE)
        handler: Callable[[str | None], JsonDict] | None = (
            getattr(self, f"cmd_{command}", None) if command.replace("_", "").isalnum() else None
        )
        if handler is None:
            return self.error(INVALID_COMMAND_CODE, f"Invalid command: {command}")
        return handler(parameter)

    def ok(self, code: int, message: str, **sections: Any) -> JsonDict:
        """A success reply with data ``sections`` (e.g. ``SUMMARY=[{...}]``)."""
        return {"STATUS": status_block("S", code, message, self.description), **sections, "id": 1}

    def error(self, code: int, message: str) -> JsonDict:
        """An error reply."""
        return {"STATUS": status_block("E", code, message, self.description), "id": 1}

    # ------------------------------------------------------------------ shared commands

    def cmd_devdetails(self, parameter: str | None) -> JsonDict:
        """One entry per hashboard: its name, driver and the model, with the keys in
        ``devdetails_keys``."""
        identity = self.miner.identity
        boards = []
        for board in range(HASHBOARDS):
            entry: JsonDict = {
                "DEVDETAILS": board,
                "Name": self.board_name,
                "ID": board,
                "Driver": self.board_driver,
                "Kernel": "",
                "Model": identity.reported_model,
                "Chips": identity.chips_per_board,
            }
            boards.append({key: entry[key] for key in self.devdetails_keys})
        return self.ok(69, "Device Details", DEVDETAILS=boards)

    def cmd_pools(self, parameter: str | None) -> JsonDict:
        """The one emulated pool, with the keys in ``pool_keys``."""
        s = self.miner.snapshot()
        pool: JsonDict = {
            "POOL": 0,
            "URL": POOL_URL,
            "Status": "Alive",
            "Priority": 0,
            "Quota": 1,
            "Accepted": s.accepted_shares,
            "Rejected": 0,
            "Get Failures": 0,
            "Remote Failures": 0,
            "User": self.miner.pool_user,
            "Stratum Active": s.hashing,
            "GROUP": 0,
        }
        return self.ok(7, "1 Pool(s)", POOLS=[{key: pool[key] for key in self.pool_keys}])

    def devs_fields(self, board: int, board_ths: float, snapshot: MinerSnapshot) -> JsonDict:
        """The ``devs`` fields of hashboard ``board`` that follow its ``ASC`` index (and a
        firmware's own index keys): name, state, board temperature [°C] and hashrate
        [MH/s] from ``board_ths`` [TH/s]."""
        board_mhs = round(board_ths * 1e6, 2)
        return {
            "Name": self.board_name,
            "ID": board,
            "Enabled": "Y",
            "Status": "Alive",
            "Temperature": round(snapshot.board_temp_c, 2),
            "MHS av": board_mhs,
            "MHS 5s": board_mhs,
            "MHS 1m": board_mhs,
        }
