"""Persistence for the platform service: ORM models, engines, migrations and the repository.

The same SQLAlchemy code runs on an embedded SQLite file (the default) and on PostgreSQL
(by URL). The schema is created and evolved only by the Alembic migrations in
``migrations/`` (:func:`service.db.migrate.upgrade`); the API calls the typed functions in
:mod:`service.db.repository`, each of which runs in one transaction.
"""
