"""One workload by id, read straight through the database driver: the status route's hot
path on SQLite.

Why: the status read is half of the API's traffic, and through a session it costs about
0.8 ms of CPU under load (a session, a pooled connection, BEGIN, the statement, COMMIT),
of which the SQLite read itself is a few microseconds. :class:`WorkloadReader` keeps one
driver connection of its own in autocommit mode, where a lone SELECT is its own read
transaction and so always sees the latest commit, and runs one statement compiled once by
SQLAlchemy. Each column's value goes through the same result processor SQLAlchemy would
apply, so a row read here equals the row :func:`repository.get_workload` returns.

Only for SQLite, and only from one thread (the event loop, where a local read is cheaper
than a hop to the thread pool). A PostgreSQL read is a network round trip, which must not
block the event loop: it stays on the pool's sessions in the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.pool import PoolProxiedConnection

from twin.service.db.repository import WORKLOADS, WorkloadRow


class WorkloadReader:
    """Reads workloads by id on one SQLite connection of its own (see the module docstring).

    Args:
        engine: the service's SQLite engine; its connect hook configures the connection
            (WAL, autocommit, busy timeout).
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError(f"WorkloadReader reads SQLite only, not {engine.dialect.name}")
        self._engine = engine
        dialect = engine.dialect
        query = select(WORKLOADS).where(WORKLOADS.c.id == bindparam("workload_id"))
        compiled = query.compile(dialect=dialect)
        self._sql = compiled.string
        self._names = [column.name for column in WORKLOADS.columns]
        self._processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in WORKLOADS.columns
        ]
        self._connection: PoolProxiedConnection | None = None

    def get(self, workload_id: str, customer_id: str | None = None) -> WorkloadRow | None:
        """The workload, or None if it does not exist or (with ``customer_id``) belongs to
        another customer."""
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql, (workload_id,))
            stored = cursor.fetchone()
        finally:
            cursor.close()
        if stored is None:
            return None
        values = {
            name: process(value) if process is not None and value is not None else value
            for name, process, value in zip(self._names, self._processors, stored, strict=True)
        }
        workload = WorkloadRow(**values)
        if customer_id is not None and workload.customer_id != customer_id:
            return None
        return workload

    def close(self) -> None:
        """Give the connection back (it is opened again by the next read)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
