"""What the service's child processes (the twin, the database writer) share: they die with
the service, so a SIGKILLed service leaves nothing running behind it."""

from __future__ import annotations

import contextlib
import ctypes
import signal

PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal a process gets when its parent dies."""


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies; elsewhere the
    parent's end of the pipe closing ends it."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pipe's end does it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
