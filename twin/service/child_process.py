"""What the service's child processes (the twin, the database writer) share: how they are
started (spawned, then waited for until they say they are ready), and that they die with
the service, so a SIGKILLed service leaves nothing running behind it."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal a process gets when its parent dies."""


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies; elsewhere the
    parent's end of the pipe closing ends it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pipe's end does it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_child(
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    name: str,
    what: str,
    timeout_s: float,
    error: type[Exception],
) -> tuple[BaseProcess, Connection, Any]:
    """Spawn ``target(pipe_end, *args)`` and wait for its first message, which must be
    ``("ready", detail)`` (or ``("failed", reason)``).

    Args:
        name: the process's name.
        what: how errors name it ("the twin", "the writer process").
        timeout_s: how long to wait for the first message [s].
        error: the exception raised if it does not come up.

    Returns:
        (the process, the parent's end of the pipe, the ``detail`` it sent).
    """
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=target, args=(child_end, *args), name=name, daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(timeout_s):
        process.kill()
        raise error(f"{what} did not start within {timeout_s:.0f} s")
    try:
        kind, detail = parent_end.recv()
    except EOFError:
        process.join(5.0)
        raise error(f"{what} exited while starting") from None
    if kind == "failed":
        process.join(30.0)
        raise error(f"{what} did not start: {detail}")
    if kind != "ready":
        process.kill()
        raise error(f"{what} said {kind!r} instead of 'ready'")
    return process, parent_end, detail
