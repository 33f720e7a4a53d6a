"""Fixtures for the service database tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``HCP_TEST_POSTGRES_URL`` (``postgresql+psycopg://user:pw@host:port/db``),
else from ``scripts/postgres_test_url.sh`` (which starts a local server where it can). The
tests never skip PostgreSQL: without a server they fail and say how to provide one. Each
test session creates its own database on that server (dropped at the end) and each test
starts from an empty ``public`` schema, so concurrent runs and tests do not interfere.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from twin.service.db.engine import make_engine, session_factory
from twin.service.db.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parents[3]
POSTGRES_URL_SCRIPT = REPO_ROOT / "scripts" / "postgres_test_url.sh"
POSTGRES_URL_ENV = "HCP_TEST_POSTGRES_URL"
POSTGRES_HELP = (
    "the service database tests need a PostgreSQL server: set "
    f"{POSTGRES_URL_ENV}=postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE (a role that "
    "may CREATE DATABASE), or run as root on Debian/Ubuntu so that "
    "scripts/postgres_test_url.sh can install and start one"
)


def _postgres_server_url() -> str:
    """The URL of a PostgreSQL database to connect to, or fail the test with help."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        try:
            found = subprocess.run(
                ["bash", str(POSTGRES_URL_SCRIPT)],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"{POSTGRES_URL_SCRIPT} did not run ({exc}); {POSTGRES_HELP}")
        url = found.stdout.strip().splitlines()[-1] if found.stdout.strip() else ""
        if not url:
            pytest.fail(
                f"{POSTGRES_URL_SCRIPT} found no server (exit {found.returncode}, stderr: "
                f"{found.stderr.strip()[-500:]!r}); {POSTGRES_HELP}"
            )
    return url


def _admin_engine(url: str) -> Engine:
    """An autocommit engine on ``url`` for CREATE / DROP DATABASE."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    server_url = _postgres_server_url()
    name = f"hcp_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        shown = make_url(server_url).render_as_string(hide_password=True)
        pytest.fail(f"cannot create a test database on {shown!r}: {exc}; {POSTGRES_HELP}")
    database_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield database_url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_public_schema(url: str) -> None:
    """Drop every table, trigger and function of the test database's public schema."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file under tmp_path, or a PostgreSQL
    database whose schema was just emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hcp.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    _empty_public_schema(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the database of ``db_url``, migrated to head."""
    upgrade(db_url)
    migrated = make_engine(db_url)
    yield migrated
    migrated.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the migrated database, closed after the test."""
    with session_factory(engine)() as opened:
        yield opened
