"""API keys for people and systems: ``python run.py keys create --role ROLE [--customer NAME]
--db URL`` prints the new key as its last line (it is shown once; only its hash is kept);
``python run.py keys revoke KEY_ID --db URL`` revokes one (a running service stops
accepting it within its key memory, 5 s by default).

Customer keys belong to a customer (created by name if new). Operator and admin keys get a
TOTP secret for the actions that need a second factor; it is printed once, before the key,
for the authenticator app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from twin.service import audit
from twin.service.db.engine import make_engine, session_factory
from twin.service.db.migrate import upgrade
from twin.service.db.models import ApiKey, Customer, new_id
from twin.service.db.repository import RepositoryError, create_customer, revoke_api_key
from twin.service.security.api_keys import generate_api_key
from twin.service.security.roles import Role
from twin.service.security.totp import new_totp_secret


class KeyError_(ValueError):
    """A key could not be created; the message names the option."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the plaintext is never stored."""

    key: str
    key_id: str
    role: str
    customer_id: str | None
    totp_secret: str | None


def create_key(db_url: str | None, role: str, customer: str | None = None) -> NewKey:
    """Create an API key of ``role`` (customer keys need ``customer``, a name)."""
    try:
        role_value = Role(role)
    except ValueError:
        raise KeyError_(f"--role: must be one of customer, operator, admin, not {role!r}") from None
    if role_value is Role.CUSTOMER and not customer:
        raise KeyError_("--customer: a customer key needs the customer's name")
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        return _insert_key(session_factory(engine), role_value, customer)
    finally:
        engine.dispose()


def _insert_key(sessions: Any, role_value: Role, customer: str | None) -> NewKey:
    plaintext, prefix, key_hash = generate_api_key()
    totp = None if role_value is Role.CUSTOMER else new_totp_secret()
    with sessions() as session:
        customer_id = None
        if customer:
            found = session.scalars(select(Customer).where(Customer.name == customer)).first()
            customer_id = found.id if found else create_customer(session, customer).id
        key = ApiKey(
            id=new_id("api_key"),
            key_prefix=prefix,
            key_hash=key_hash,
            role=role_value.value,
            customer_id=customer_id,
            totp_secret=totp,
        )
        session.add(key)
        session.commit()
        audit.record(session, "system", "create_key", key.id, {"role": role_value.value})
        return NewKey(plaintext, key.id, role_value.value, customer_id, totp)


def revoke_key(db_url: str | None, key_id: str) -> None:
    """Revoke the key with id ``key_id`` (audited).

    Raises:
        KeyError_: no such key.
    """
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            try:
                revoke_api_key(session, key_id)
            except RepositoryError:
                raise KeyError_(f"KEY_ID: no API key {key_id!r}") from None
            audit.record(session, "system", "revoke_key", key_id, {})
    finally:
        engine.dispose()
