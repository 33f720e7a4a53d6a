"""A cgminer-style TCP listener for one emulated miner (asyncio).

Wire format, as miner firmware and pyasic use it: the client connects, writes one JSON
object with no terminator, and reads until the server closes the socket. So the server
reads until the bytes parse as JSON (or the client stops sending), writes the reply
followed by ``\\x00`` (as cgminer does), and closes. A connection that sends nothing (a
port scan) is closed quietly.

Faults that concern the transport are applied here: ``timeout`` (read the request, never
answer, hold the connection until the client gives up) and ``malformed`` (answer with
text that is not JSON). The firmware applies the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Protocol

from drivers.emulators.cgminer import JsonDict
from drivers.emulators.emulated_miner import EmulatedMiner
from drivers.emulators.errors import EmulatorConfigError
from drivers.emulators.faults import FaultKind

logger = logging.getLogger(__name__)

RPC_PORT = 4028
"""TCP port of the cgminer API (pyasic's factory only looks there)."""

REQUEST_IDLE_TIMEOUT_S = 2.0
"""How long to wait for more request bytes before answering what came [s]."""

MAX_REQUEST_BYTES = 1 << 20
"""Largest request read [bytes]; the rest is ignored."""

INVALID_JSON_CODE = 23
"""cgminer's status code for a request that is not valid JSON."""

MALFORMED_REPLY = b'{"STATUS": [{"STATUS": "S", "When": garbled, "Msg": }], "id": 1}\x00'
"""Reply of a ``malformed`` miner: JSON-like, not JSON, and not repairable by the fixes
clients apply to known firmware bugs."""


class RpcFirmware(Protocol):
    """What the server needs of a firmware emulator."""

    miner: EmulatedMiner

    def handle(self, request: JsonDict) -> JsonDict:
        """The reply to one parsed request."""
        ...

    def error(self, code: int, message: str) -> JsonDict:
        """An error reply in the firmware's format."""
        ...


class RpcServer:
    """Serves one firmware emulator on ``host:port``."""

    def __init__(self, firmware: RpcFirmware, host: str, port: int = RPC_PORT) -> None:
        self.firmware = firmware
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen; OSError (naming the address) when the address is taken."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as error:
            raise OSError(
                error.errno, f"cannot listen on {self.host}:{self.port}: {error.strerror}"
            ) from error

    async def stop(self) -> None:
        """Stop listening and drop open connections (held ``timeout`` ones included)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            raw = await _read_request(reader)
            if raw:
                await self._respond(raw, reader, writer)
        except ConnectionError as error:
            logger.debug("%s: client went away: %s", self.host, error)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    async def _respond(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fault = self.firmware.miner.fault()
        if fault is not None and fault.kind == FaultKind.TIMEOUT:
            await reader.read()  # hold until the client closes (or the server stops)
            return
        if fault is not None and fault.kind == FaultKind.MALFORMED:
            writer.write(MALFORMED_REPLY)
        else:
            reply = self._reply(raw)
            writer.write(json.dumps(reply).encode("utf-8") + b"\x00")
        await writer.drain()

    def _reply(self, raw: bytes) -> JsonDict:
        try:
            request = json.loads(_request_text(raw))
        except json.JSONDecodeError as error:
            return self.firmware.error(INVALID_JSON_CODE, f"Invalid JSON: {error.msg}")
        if not isinstance(request, dict):
            return self.firmware.error(INVALID_JSON_CODE, "Invalid JSON: expected an object")
        try:
            return self.firmware.handle(request)
        except EmulatorConfigError as error:
            return self.firmware.error(INVALID_JSON_CODE, str(error))


def _request_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").strip().rstrip("\x00")


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Bytes of one request: until they parse as JSON, EOF, or an idle pause."""
    buffer = b""
    while len(buffer) < MAX_REQUEST_BYTES:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), REQUEST_IDLE_TIMEOUT_S)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
        try:
            json.loads(_request_text(buffer))
        except json.JSONDecodeError:
            continue
        break
    return buffer
