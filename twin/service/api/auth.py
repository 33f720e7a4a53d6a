"""Who is calling and what they may do: API keys, roles, TOTP for privileged actions, and
rate limits per key.

A request carries its key in ``X-API-Key`` (or ``Authorization: Bearer <key>``) and, for
actions that need MFA (operator and admin state changes), a current TOTP code in
``X-TOTP``. Keys are looked up by their prefix and checked against the stored scrypt hash
(service.security.api_keys). A resolved caller is remembered for ``principal_ttl_s``
(default 5 s) so the hot path reads neither the database nor scrypt: a revoked key stops
working within that time (at once through :meth:`Authenticator.forget`). Failures answer 401
(no or bad key), 403 (role may not), 401 with ``mfa_required`` (TOTP missing or wrong) or
429 (rate limit, with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from twin.service.db.models import ApiKey
from twin.service.security.api_keys import KEY_PREFIX_CHARS, KeyCache, key_prefix
from twin.service.security.rate_limit import RateLimiter
from twin.service.security.roles import AccessDecision, Action, authorize
from twin.service.security.totp import verify_totp

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hcp"'}
"""Sent with every 401 (RFC 9110): the key goes in ``Authorization: Bearer`` or
``X-API-Key``."""

MAX_REMEMBERED = 10_000
"""Callers remembered at most (the map is emptied when full: a bound, not an LRU)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        key_id: the API key's id (the audit log's actor).
        role: customer, operator or admin.
        customer_id: the customer a customer key belongs to (None for staff keys).
        totp_secret: the key's TOTP secret (staff keys).
        key_prefix: the key's lookup prefix.
    """

    key_id: str
    role: str
    customer_id: str | None
    totp_secret: str | None
    key_prefix: str = ""


class Authenticator:
    """Resolves request headers to a :class:`Principal` and enforces rate limits."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        limiter: RateLimiter,
        cache: KeyCache | None = None,
        principal_ttl_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.limiter = limiter
        self.cache = cache or KeyCache()
        self.principal_ttl_s = principal_ttl_s
        self.lookups = 0
        """Keys looked up in the database (and checked with scrypt) so far."""
        self._known: dict[bytes, tuple[Principal, float]] = {}
        self._known_lock = threading.Lock()
        self._lookup_locks: dict[bytes, threading.Lock] = {}
        self._in_flight: dict[bytes, asyncio.Future[Principal]] = {}

    async def principal(self, request: Request) -> Principal:
        """The caller of ``request``; raises 401 or 429. A remembered caller costs no I/O; a
        new one is looked up on a worker thread so the event loop never waits on scrypt."""
        plaintext, fingerprint = self._admit(request)
        known = self._remembered(fingerprint)
        if known is not None:
            return known
        # Single flight: the first request of a burst looks the key up; the others await
        # it instead of each running scrypt (tens of ms of CPU apiece).
        lookup = self._in_flight.get(fingerprint)
        if lookup is None:
            lookup = asyncio.ensure_future(run_in_threadpool(self._look_up_once, plaintext))
            self._in_flight[fingerprint] = lookup
            lookup.add_done_callback(lambda _done: self._in_flight.pop(fingerprint, None))
        return await asyncio.shield(lookup)

    def _look_up_once(self, plaintext: str) -> Principal:
        """The caller holding ``plaintext`` (a well-formed key), looked up once per key at
        a time; 401 if unknown or revoked."""
        fingerprint = _fingerprint(plaintext)
        with self._lookup_lock(fingerprint):
            return self._remembered(fingerprint) or self._look_up(plaintext, fingerprint)

    def _lookup_lock(self, fingerprint: bytes) -> threading.Lock:
        with self._known_lock:
            lock = self._lookup_locks.get(fingerprint)
            if lock is None:
                if len(self._lookup_locks) >= MAX_REMEMBERED:
                    self._lookup_locks.clear()
                lock = self._lookup_locks[fingerprint] = threading.Lock()
            return lock

    def forget(self, prefix: str) -> None:
        """Stop remembering every caller of the key with this prefix (after a revocation)."""
        with self._known_lock:
            self._known = {f: e for f, e in self._known.items() if e[0].key_prefix != prefix}
        self.cache.revoke(prefix)

    def _admit(self, request: Request) -> tuple[str, bytes]:
        """The presented key and its fingerprint, after the rate limit; 401 or 429."""
        plaintext = _presented_key(request)
        prefix = key_prefix(plaintext) if plaintext else None
        if plaintext is None or prefix is None:
            raise HTTPException(401, "missing or malformed API key", headers=CHALLENGE)
        allowed, retry_after_s = self.limiter.allow(prefix)
        if not allowed:
            raise HTTPException(
                429,
                "rate limit exceeded",
                headers={"Retry-After": str(max(1, round(retry_after_s + 0.5)))},
            )
        return plaintext, _fingerprint(plaintext)

    def _remembered(self, fingerprint: bytes) -> Principal | None:
        entry = self._known.get(fingerprint)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _look_up(self, plaintext: str, fingerprint: bytes) -> Principal:
        """The key's row, checked against its scrypt hash; remembered on success; 401."""
        prefix = plaintext[:KEY_PREFIX_CHARS]
        self.lookups += 1
        with self.sessions() as session:
            keys = session.scalars(
                select(ApiKey).where(ApiKey.key_prefix == prefix, ApiKey.revoked_at.is_(None))
            ).all()
            for key in keys:
                if self.cache.verify(plaintext, key.key_hash):
                    found = Principal(
                        key.id, key.role, key.customer_id, key.totp_secret, key.key_prefix
                    )
                    with self._known_lock:
                        if len(self._known) >= MAX_REMEMBERED:
                            self._known.clear()
                        self._known[fingerprint] = (found, time.monotonic() + self.principal_ttl_s)
                    return found
        raise HTTPException(401, "unknown or revoked API key", headers=CHALLENGE)

    def require(self, principal: Principal, action: Action, request: Request) -> None:
        """Raise 403 when the role may not do ``action``, 401 when it needs a valid TOTP
        code that the request does not carry."""
        code = request.headers.get("X-TOTP", "")
        mfa_ok = bool(
            principal.totp_secret and code and verify_totp(principal.totp_secret, code, time.time())
        )
        decision = authorize(principal.role, action, mfa_verified=mfa_ok)
        if decision is AccessDecision.FORBIDDEN:
            raise HTTPException(403, f"role {principal.role} may not {action.value}")
        if decision is AccessDecision.MFA_REQUIRED:
            raise HTTPException(
                401, "mfa_required: send a current TOTP code in X-TOTP", headers=CHALLENGE
            )


def _fingerprint(plaintext: str) -> bytes:
    """SHA-256 of a presented key: what remembered callers are found by (the plaintext is
    not kept)."""
    return hashlib.sha256(plaintext.encode("utf-8")).digest()


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


async def _caller(request: Request) -> Principal:
    """The authenticated caller, resolved before the request's parameters and body are
    validated: a request without a valid key gets 401, never a validation error."""
    auth: Authenticator = request.app.state.auth
    return await auth.principal(request)


Caller = Annotated[Principal, Depends(_caller)]
"""An endpoint parameter that receives the authenticated caller."""
