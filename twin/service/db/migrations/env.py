"""Alembic environment: runs migrations on the connection that ``twin.service.db.migrate`` passes.

There is no ``alembic.ini``: :func:`service.db.migrate.alembic_config` builds the
configuration in code and puts an open SQLAlchemy connection in
``config.attributes["connection"]``, so the engine's settings (SQLite pragmas, the
PostgreSQL driver) apply to migrations too. ``target_metadata`` is the models' metadata,
which ``python -m twin.service.db.migrate revision --autogenerate`` compares against.
"""

from __future__ import annotations

from alembic import context

from twin.service.db.models import Base


class MigrationSetupError(RuntimeError):
    """Migrations were started without a connection (use service.db.migrate)."""


def run_migrations() -> None:
    """Run the pending migrations in one transaction on the configured connection."""
    if context.is_offline_mode():
        raise MigrationSetupError(
            "offline (SQL script) migrations are not supported; run "
            "`python -m twin.service.db.migrate upgrade --url URL` against a database"
        )
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise MigrationSetupError(
            "no database connection in the Alembic config; run migrations through "
            "twin.service.db.migrate.upgrade(url) or `python -m twin.service.db.migrate upgrade`"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
