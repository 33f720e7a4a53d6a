"""A lean HTTP/1.1 client for load generation: a pool of keep-alive connections on asyncio
streams, JSON in and out, nothing else.

Why not httpx: on a 2-core machine the load generator shares the CPU with the server under
test, and a full-featured client spends several times more CPU per request than this one,
which would show up as server latency. Only what the API needs is handled: Content-Length
bodies (no chunked replies), keep-alive, one request per connection at a time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


class LeanHttpError(OSError):
    """The connection failed or the reply was not HTTP/1.1 as expected."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply: status code and parsed JSON body (None when empty or not JSON)."""

    status: int
    body: Any


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, head: bytes, body: bytes) -> Reply:
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise LeanHttpError(f"not an HTTP reply: {status_line[:80]!r}")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return Reply(int(parts[1]), parsed)


class LeanClient:
    """Up to ``connections`` keep-alive connections to ``host:port``, all sending
    ``headers`` (e.g. the API key)."""

    def __init__(self, host: str, port: int, headers: dict[str, str], connections: int) -> None:
        self.host = host
        self.port = port
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._capacity = asyncio.Semaphore(connections)

    async def get(self, path: str) -> Reply:
        """GET ``path``."""
        return await self._send("GET", path, b"")

    async def post(self, path: str, payload: Any) -> Reply:
        """POST ``payload`` as JSON to ``path``."""
        return await self._send("POST", path, json.dumps(payload).encode())

    async def close(self) -> None:
        """Close every idle connection."""
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            connection.writer.close()

    async def _send(self, method: str, path: str, body: bytes) -> Reply:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self._capacity:
            connection = self._idle.get_nowait() if not self._idle.empty() else None
            if connection is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                connection = _Connection(reader, writer)
            try:
                reply = await connection.request(head, body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                connection.writer.close()
                raise LeanHttpError(str(error)) from error
            self._idle.put_nowait(connection)
            return reply
