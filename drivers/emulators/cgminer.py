"""The cgminer JSON API shared by miner firmware: command dispatch, multicommand, status.

A request is one JSON object ``{"command": "summary", "parameter": "..."}``; a command
``"a+b+c"`` asks for several at once and is answered ``{"a": [reply_a], "b": [reply_b],
..., "id": 1}``. Each reply carries a ``STATUS`` list whose ``STATUS`` is ``"S"``
(success) or ``"E"`` (error) with a code and message. A firmware subclass answers command
``x`` with a method ``cmd_x(parameter) -> dict`` and lists the commands that change the
miner in ``control_commands``; those are refused when the miner has a ``refuse`` fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from drivers.emulators.emulated_miner import EmulatedMiner
from drivers.emulators.faults import FaultKind

JsonDict = dict[str, Any]

INVALID_COMMAND_CODE = 14
"""cgminer's status code for a command it does not know."""

ACCESS_DENIED_CODE = 45
"""cgminer's status code for a command the caller may not run."""

REFUSAL_MESSAGE = "Access denied: control commands are disabled on this miner"
"""Message of a control command refused by a ``refuse`` fault."""


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
    built with :meth:`ok` or :meth:`error`.
    """

    description: ClassVar[str] = "cgminer"
    control_commands: ClassVar[frozenset[str]] = frozenset()

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
