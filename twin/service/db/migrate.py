"""Schema migrations: bring a database to the newest schema with Alembic, in code.

There is no ``alembic.ini``; :func:`alembic_config` points Alembic at
``twin/service/db/migrations`` and hands it a connection from :func:`make_engine`, so the same
URL conventions and SQLite settings apply. Command line::

    python -m twin.service.db.migrate upgrade [--url URL]      # to head
    python -m twin.service.db.migrate current [--url URL]      # print the applied revision
    python -m twin.service.db.migrate revision -m "add x" [--autogenerate] [--url URL]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from twin.service.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic script location (env.py, script.py.mako, versions/)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for this package's migrations, optionally bound to a
    connection (placed in ``config.attributes["connection"]`` for env.py)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision id in ``migrations/versions``."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions found under {MIGRATIONS_DIR / 'versions'}")
    return head


def upgrade(url: str | None = None, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` (see :func:`service.db.engine.resolve_url`) to
    ``revision`` in one transaction; returns the revision now applied. Running it on an
    up-to-date database does nothing."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
        return current_revision(url)
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The revision applied to the database at ``url``; None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def make_revision(message: str, *, autogenerate: bool, url: str | None = None) -> None:
    """Write a new revision file; with ``autogenerate`` it holds the differences between
    the models and the database at ``url`` (migrate that database to head first)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.revision(alembic_config(connection), message=message, autogenerate=autogenerate)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``upgrade``, ``current`` or ``revision``."""
    parser = argparse.ArgumentParser(prog="python -m twin.service.db.migrate", description=__doc__)
    parser.add_argument("--url", help="database URL (default: $HCP_DATABASE_URL or SQLite)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="migrate to the newest revision")
    commands.add_parser("current", help="print the applied revision")
    revision_parser = commands.add_parser("revision", help="write a new revision file")
    revision_parser.add_argument("-m", "--message", required=True)
    revision_parser.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "upgrade":
        print(upgrade(args.url))
    elif args.command == "current":
        print(current_revision(args.url))
    else:
        make_revision(args.message, autogenerate=args.autogenerate, url=args.url)


if __name__ == "__main__":
    main()
