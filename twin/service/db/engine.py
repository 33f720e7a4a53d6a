"""Database engines and sessions: an embedded SQLite file by default, PostgreSQL by URL.

URL conventions:

- ``None`` -> the ``HCP_DATABASE_URL`` environment variable if set, else
  :data:`DEFAULT_URL` (``sqlite:///results/service/hcp.db``, relative to the working
  directory; its folder is created).
- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: a SQLite file.
- ``postgresql+psycopg://user:password@host:port/database``: PostgreSQL through psycopg 3.
  A bare ``postgresql://`` URL is given the ``psycopg`` driver.

SQLite settings, and why:

- ``journal_mode=WAL``: readers do not block the writer nor the writer the readers.
- ``synchronous=FULL``: every commit is fsynced before it returns. A workload must be on
  disk before the API acknowledges it (DESIGN "accepted work is persisted before it is
  acknowledged"); ``NORMAL`` in WAL mode may lose the last commits on power loss.
- ``foreign_keys=ON``: SQLite does not enforce foreign keys unless asked.
- ``busy_timeout`` (:data:`SQLITE_BUSY_TIMEOUT_MS`): a writer waits for another writer's
  lock instead of failing at once.
- Transactions are explicit: ``BEGIN`` (deferred) for reads, ``BEGIN IMMEDIATE`` for a
  transaction opened with the execution option :data:`WRITE_TRANSACTION_OPTION` (see
  :func:`service.db.repository.write_transaction`), which takes the write lock up front
  so a read-then-write transaction cannot fail on a stale snapshot.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

DATABASE_URL_ENV = "HCP_DATABASE_URL"
"""Environment variable naming the database URL when none is passed."""

DEFAULT_URL = "sqlite:///results/service/hcp.db"
"""Embedded default: a SQLite file under ``results/service/`` of the working directory."""

POOL_SIZE = 32
"""Connections the pool keeps open: at least the API's request threads plus its writer, so
a burst of requests never opens (and configures) connections that are closed again."""
POOL_OVERFLOW = 16
"""Extra connections allowed beyond POOL_SIZE at a peak (closed when returned)."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another writer's lock [ms]."""

WRITE_TRANSACTION_OPTION = "hcp_write_transaction"
"""Execution option that makes the next SQLite transaction ``BEGIN IMMEDIATE``."""

BATCHED = "hcp_batched"
"""``Session.info`` flag: the session's transaction is a write batch that commits many
writes at once (:class:`service.db.write_queue.WriteQueue`)."""


class DatabaseUrlError(ValueError):
    """A database URL that cannot be used (unsupported backend or malformed)."""


def resolve_url(url: str | None = None) -> URL:
    """The database URL to use: ``url``, else ``$HCP_DATABASE_URL``, else the default.

    Raises:
        DatabaseUrlError: the URL is malformed or names a backend other than SQLite or
            PostgreSQL.
    """
    text = url or os.environ.get(DATABASE_URL_ENV) or DEFAULT_URL
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(f"database url {text!r} is malformed: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(
            f"database url {parsed.render_as_string(hide_password=True)!r}: backend "
            f"{backend!r} is not supported; use sqlite:///path.db or "
            "postgresql+psycopg://user:password@host:port/database"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """A SQLAlchemy engine for ``url`` (see the module docstring for the conventions).

    For a SQLite file the parent folder is created and the connection settings above are
    applied to every new connection. For PostgreSQL, pooled connections are pinged before
    use so a restarted server does not fail the first request.
    """
    resolved = resolve_url(url)
    if resolved.get_backend_name() == "sqlite":
        return _make_sqlite_engine(resolved, echo=echo)
    return create_engine(
        resolved,
        echo=echo,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (no expiry), so
    the API can serialize what a repository function returned."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _make_sqlite_engine(url: URL, *, echo: bool) -> Engine:
    """A SQLite engine with WAL, FULL sync, foreign keys, busy timeout and explicit BEGIN."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    pool: dict[str, Any] = {}
    if database and database != ":memory:":  # a file: the default QueuePool, sized
        pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False}, **pool)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(
    dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry
) -> None:
    """Apply the per-connection pragmas and hand transaction control to SQLAlchemy."""
    # The sqlite3 module would otherwise open transactions itself, and only before DML.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    """Open the transaction: IMMEDIATE (write lock now) for writers, deferred for readers."""
    options: dict[str, Any] = dict(connection.get_execution_options())
    statement = "BEGIN IMMEDIATE" if options.get(WRITE_TRANSACTION_OPTION) else "BEGIN"
    connection.exec_driver_sql(statement)
