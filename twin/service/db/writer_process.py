"""The service's database writes in a process of their own: a :class:`WriteQueue` (group
commit) in a child process, fed over a pipe.

Why: the writes' Python work (SQLAlchemy, sealing audit entries, applying the twin's status
changes) costs about 1 ms of CPU per submitted workload. On a thread of the API process it
holds Python's GIL for that long, so the event loop, which parses, authenticates and
answers every request, waits on it: under load that is where the latency tail came from.
In a child process the writes run on another core, and the API process only pickles each
write and reads its answer.

Durability is unchanged: a write's future resolves only after the child has committed
the batch holding it, and the API acknowledges a request only then.

A write crosses the pipe pickled, so ``work`` must be a module-level function or a
``functools.partial`` of one, over picklable arguments; so must its result or exception.
Messages over one pipe:

- parent -> child: ``(seq, background, pickled work)``, and ``("close",)``;
- child -> parent: ``("ready", None)`` (or ``("failed", reason)``) once the database
  answers; ``(seq, ok, pickled result or exception)`` after the write's batch committed (or
  failed); ``("closed", None)`` once every queued write is committed.

The child dies with the service (a parent-death signal on Linux, the pipe's end
elsewhere). If it dies first, every write waiting on it fails with
:class:`WriterProcessError` and :attr:`WriterProcess.alive` turns False (``/healthz``
reports it).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

from twin.service.child_process import die_with_parent, start_child
from twin.service.db.engine import make_engine, session_factory
from twin.service.db.write_queue import WriteQueue, WriteQueueClosedError, Writes

LOG = logging.getLogger("hcp.service.writes")

T = TypeVar("T")

FeedHandler = Callable[[Writes], Callable[[Any], None]]
"""Builds, in the writer process, the handler of each message of a feed."""


class WriterProcessError(RuntimeError):
    """The writer process did not start, stopped, or could not return a write's outcome."""


class WriterProcess(Writes):
    """Group-committed writes in a child process (see the module docstring).

    Args:
        db_url: the database (SQLAlchemy URL, password included).
        max_batch: most writes committed together.
        preload: modules the child imports before it says it is ready (those defining the
            write functions), so the first write does not wait on imports.
        start_timeout_s: how long to wait for the child to open the database [s].
        feed: the receiving end of a pipe another process sends work down directly (the
            twin's status changes), so that it never passes through this process.
        feed_handler: called in the child with its writes; returns what handles each
            message from ``feed`` (picklable: a module-level function, class or partial);
            if that has a ``close()``, it is called once the writes are committed at the
            end.

    Raises:
        WriterProcessError: the child could not open the database in time.
    """

    def __init__(
        self,
        db_url: str,
        *,
        max_batch: int = 256,
        preload: Sequence[str] = (),
        start_timeout_s: float = 60.0,
        feed: Connection | None = None,
        feed_handler: FeedHandler | None = None,
    ) -> None:
        if (feed is None) != (feed_handler is None):
            raise ValueError("feed and feed_handler: give both or neither")
        self._process, parent_end, _ = start_child(
            _serve_writes,
            (db_url, max_batch, tuple(preload), feed, feed_handler),
            name="hcp-writer",
            what="the writer process",
            timeout_s=start_timeout_s,
            error=WriterProcessError,
        )
        self._connection = parent_end
        self._lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._next_seq = 0
        self._closed = False
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="hcp-writer-replies", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int | None:
        """The writer process's id."""
        return self._process.pid

    def submit(self, work: Callable[[Session], T], *, background: bool = False) -> Future[T]:
        try:
            pickled = pickle.dumps(work)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise TypeError(f"a write for the writer process must pickle: {error}") from error
        future: Future[T] = Future()
        with self._lock:
            if self._closed or not self._alive:
                raise WriteQueueClosedError("the writer process is closed or has stopped")
            seq = self._next_seq
            self._next_seq += 1
            self._pending[seq] = future
            try:
                self._connection.send((seq, background, pickled))
            except OSError as error:
                del self._pending[seq]
                raise WriterProcessError(f"the writer process is unreachable: {error}") from None
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):  # already gone
                self._connection.send(("close",))
        self._reader.join(timeout_s)
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)

    def _read(self) -> None:
        """Resolve each write's future with the child's answer, until the pipe closes;
        then fail the writes still waiting."""
        while True:
            try:
                message = self._connection.recv()
            except (EOFError, OSError):
                break
            if message[0] == "closed":
                break
            seq, ok, pickled = message
            with self._lock:
                future = self._pending.pop(seq, None)
            if future is not None:
                _resolve(future, ok, pickled)
        with self._lock:
            self._alive = False
            stranded, self._pending = self._pending, {}
        if stranded and not self._closed:
            LOG.error("the writer process stopped with %d writes uncommitted", len(stranded))
        for future in stranded.values():
            with contextlib.suppress(InvalidStateError):
                future.set_exception(
                    WriterProcessError("the writer process stopped before committing this write")
                )


def _resolve(future: Future[Any], ok: bool, pickled: bytes) -> None:
    """Set the write's result or exception from its pickled outcome (a future cancelled
    meanwhile keeps its state: its write may have committed regardless)."""
    try:
        value = pickle.loads(pickled)
    except Exception as error:  # the caller must hear of it, whatever it is
        ok, value = False, WriterProcessError(f"the write's outcome could not be read: {error}")
    with contextlib.suppress(InvalidStateError):
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


# ---------------------------------------------------------------------- child process


def _serve_writes(
    connection: Connection,
    db_url: str,
    max_batch: int,
    preload: tuple[str, ...],
    feed: Connection | None,
    feed_handler: FeedHandler | None,
) -> None:
    """The child's main function: commit the parent's writes (and handle the feed's
    messages) until the parent says ``close`` or goes away, then commit what is queued."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        for module in preload:
            importlib.import_module(module)
        engine = make_engine(db_url)
        with engine.connect() as probe:
            probe.execute(text("SELECT 1"))
        writes = WriteQueue(session_factory(engine), max_batch)
    except Exception as error:  # reported to the parent, which raises it
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        return
    handle = feed_handler(writes) if feed_handler is not None else None
    if feed is not None and handle is not None:
        drain = threading.Thread(target=_drain_feed, args=(feed, handle), daemon=True)
        drain.start()
    send_lock = threading.Lock()
    connection.send(("ready", None))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if message[0] == "close":
            break
        seq, background, pickled = message
        answer = functools.partial(_answer, connection, send_lock, seq)
        try:
            work = pickle.loads(pickled)
        except Exception as error:  # its caller hears of it
            failed: Future[Any] = Future()
            failed.set_exception(WriterProcessError(f"the write could not be read: {error}"))
            answer(failed)
            continue
        writes.submit(work, background=background).add_done_callback(answer)
    writes.close()
    if handle is not None and hasattr(handle, "close"):
        handle.close()  # e.g. send what the handler still has queued
    with contextlib.suppress(OSError):
        connection.send(("closed", None))
    engine.dispose()


def _answer(connection: Connection, send_lock: threading.Lock, seq: int, done: Future[Any]) -> None:
    """Send a finished write's outcome to the parent (an unpicklable one as an error)."""
    error = done.exception()
    ok, value = (True, done.result()) if error is None else (False, error)
    try:
        pickled = pickle.dumps(value)
    except Exception as failure:  # whatever it is, the caller hears of it
        ok = False
        pickled = pickle.dumps(
            WriterProcessError(f"the write's {type(value).__name__} could not be sent: {failure}")
        )
    with send_lock, contextlib.suppress(OSError):  # the parent is gone: nobody to tell
        connection.send((seq, ok, pickled))


def _drain_feed(feed: Connection, handle: Callable[[Any], None]) -> None:
    """Hand each message of ``feed`` to ``handle`` until the sender goes away."""
    while True:
        try:
            message = feed.recv()
        except (EOFError, OSError):
            return
        try:
            handle(message)
        except Exception:  # one bad message must not stop the ones after it
            LOG.exception("a message of the writer's feed was not handled")
