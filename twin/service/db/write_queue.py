"""Group commit: one writer thread runs the service's writes in batches, one transaction
(and one fsync) per batch, so the API's throughput is not bounded by one fsync per request.

Why: every acknowledged workload must be on disk first (``synchronous=FULL``), and SQLite
has one writer at a time. With a transaction per request, concurrent requests queue on the
write lock (SQLite's busy handler sleeps between tries, which is where the latency tail came
from) and each pays its own fsync. Here a request hands its write to :class:`WriteQueue`
and waits; the writer thread takes everything waiting (up to ``max_batch``), opens one write
transaction, runs the writes one after another, commits once, and only then answers every
caller. Nothing is acknowledged before the commit that holds it; if the commit fails, every
write of the batch fails.

A failing write rolls back alone and its caller gets the exception. Writes rarely fail, so
a batch first runs them without savepoints (a savepoint each cost about a tenth of a
write); if one fails, the batch is rolled back and run again with each write in its own
savepoint. A write may therefore run twice: it must change nothing outside its session.

Repository functions called inside a write see the session flag ``engine.BATCHED``: their own
``write_transaction`` becomes a savepoint and their ``read_transaction`` a no-op, so the
same functions serve both one-off and batched use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from twin.service.db.engine import BATCHED, WRITE_TRANSACTION_OPTION

LOG = logging.getLogger("hcp.service.writes")

T = TypeVar("T")


class WriteQueueClosedError(RuntimeError):
    """A write handed to a queue that has been closed."""


@dataclass(slots=True)
class _Write:
    work: Callable[[Session], Any]
    future: Future[Any]


class Writes(ABC):
    """Where the service's writes go: each ``work(session)`` runs in a write transaction and
    its future resolves once that transaction has committed. :class:`WriteQueue` runs them
    on a thread of this process, :class:`~twin.service.db.writer_process.WriterProcess` in
    a process of their own."""

    @abstractmethod
    def submit(self, work: Callable[[Session], T], *, background: bool = False) -> Future[T]:
        """Queue ``work(session)``; its future resolves once its batch has committed.

        ``background`` writes (bulk work nobody is waiting on, such as the twin's status
        changes) are committed one per transaction, taking turns with batches of the
        others, so a request's write waits for at most one of them.
        """

    @abstractmethod
    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then stop taking writes."""

    @property
    def alive(self) -> bool:
        """Whether writes are taken and committed."""
        return True

    def run(self, work: Callable[[Session], T], *, background: bool = False) -> T:
        """``work(session)`` committed; blocks the calling thread until then."""
        return self.submit(work, background=background).result()

    async def call(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` committed; awaits without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(work))


class WriteQueue(Writes):
    """A writer thread with group commit (see the module docstring).

    Args:
        sessions: factory of sessions on the service's database.
        max_batch: most writes committed together.
    """

    def __init__(self, sessions: sessionmaker[Session], max_batch: int = 256) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._ready = threading.Condition()
        self._urgent: deque[_Write] = deque()
        self._background: deque[_Write] = deque()
        self._closed = False
        self.batches = 0
        """Transactions committed so far."""
        self.writes = 0
        """Writes committed so far."""
        self._thread = threading.Thread(target=self._run, name="hcp-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Session], T], *, background: bool = False) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise WriteQueueClosedError("the write queue is closed")
            (self._background if background else self._urgent).append(_Write(work, future))
            self._ready.notify()
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._ready:
            if self._closed:
                return
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout_s)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        background_turn = False
        while True:
            with self._ready:
                while not (self._urgent or self._background or self._closed):
                    self._ready.wait()
                if not (self._urgent or self._background):
                    return  # closed and drained
                if self._urgent and not (background_turn and self._background):
                    count = min(len(self._urgent), self._max_batch)
                    batch = [self._urgent.popleft() for _ in range(count)]
                    background_turn = True
                else:
                    batch = [self._background.popleft()]
                    background_turn = False
            self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        """Run ``batch`` in one transaction and answer its callers once it has committed."""
        live = [write for write in batch if write.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outcomes = self._transaction(live, savepoints=False)
            if len(live) > 1 and not all(ok for ok, _ in outcomes):
                outcomes = self._transaction(live, savepoints=True)
        except Exception as error:  # the commit itself failed: nothing of it is durable
            LOG.exception("write batch of %d failed to commit", len(live))
            for write in live:
                write.future.set_exception(error)
            return
        self.batches += 1
        self.writes += len(live)
        for write, (ok, value) in zip(live, outcomes, strict=True):
            if ok:
                write.future.set_result(value)
            else:
                write.future.set_exception(value)

    def _transaction(self, batch: list[_Write], *, savepoints: bool) -> list[tuple[bool, Any]]:
        """Each write's (succeeded, result or exception), after one transaction over
        ``batch``: with ``savepoints``, each write in its own and the rest committed; without,
        the writes run as they come, and at the first failure the whole transaction is
        rolled back and the writes after it are not run (reported as not succeeded)."""
        outcomes: list[tuple[bool, Any]] = []
        with self._sessions() as session:
            session.info[BATCHED] = True
            session.connection(execution_options={WRITE_TRANSACTION_OPTION: True})
            for write in batch:
                try:
                    if savepoints:
                        with session.begin_nested():
                            outcomes.append((True, write.work(session)))
                    else:
                        outcomes.append((True, write.work(session)))
                except Exception as error:  # the caller gets it
                    outcomes.append((False, error))
                    if not savepoints:
                        session.rollback()
                        skipped = (False, error)
                        return outcomes + [skipped] * (len(batch) - len(outcomes))
            session.commit()
        return outcomes
