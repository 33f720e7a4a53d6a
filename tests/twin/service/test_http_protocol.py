"""Responses go out in one write (service.http_protocol): the writes of one event-loop
step are joined; close sends what is held first, abort drops it; and a real server with
the protocol answers keep-alive requests correctly."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from twin.service.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """An asyncio transport that records what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_step_go_out_as_one() -> None:
    async def scenario() -> RecordingTransport:
        inner = RecordingTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert inner.writes == [] and transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner

    inner = asyncio.run(scenario())
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport]:
        loop = asyncio.get_running_loop()
        closed, aborted = RecordingTransport(), RecordingTransport()
        closing = CoalescingTransport(closed, loop)
        closing.write(b"last words")
        closing.close()
        aborting = CoalescingTransport(aborted, loop)
        aborting.write(b"dropped")
        aborting.abort()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(scenario())
    assert closed.closed and closed.writes == [b"last words"]
    assert aborted.aborted and aborted.writes == []


def test_a_server_with_the_protocol_answers_keep_alive_requests() -> None:
    """Three requests on one connection get three complete, correct responses."""
    app = FastAPI()

    @app.get("/echo/{n}")
    def echo(n: int) -> dict[str, int]:
        return {"n": n}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            for n in range(3):
                client.sendall(f"GET /echo/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                reply = b""
                while not reply.endswith(b"}"):
                    reply += client.recv(4096)
                head, body = reply.split(b"\r\n\r\n", 1)
                assert head.startswith(b"HTTP/1.1 200")
                assert f"content-length: {len(body)}".encode() in head.lower()
                assert body == f'{{"n":{n}}}'.encode()
    finally:
        server.should_exit = True
        thread.join(10)
