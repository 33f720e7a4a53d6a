"""Who is calling and what they may do: API keys, roles, TOTP for privileged actions, and
rate limits per key.

A request carries its key in ``X-API-Key`` (or ``Authorization: Bearer <key>``) and, for
actions that need MFA (operator and admin state changes), a current TOTP code in
``X-TOTP``. Keys are looked up by their prefix and checked against the stored scrypt hash
(service.security.api_keys; verified keys are cached briefly). Failures answer 401
(no or bad key), 403 (role may not), 401 with ``mfa_required`` (TOTP missing or wrong) or
429 (rate limit, with ``Retry-After``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from twin.service.db.models import ApiKey
from twin.service.security.api_keys import KeyCache, key_prefix
from twin.service.security.rate_limit import RateLimiter
from twin.service.security.roles import AccessDecision, Action, authorize
from twin.service.security.totp import verify_totp


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        key_id: the API key's id (the audit log's actor).
        role: customer, operator or admin.
        customer_id: the customer a customer key belongs to (None for staff keys).
        totp_secret: the key's TOTP secret (staff keys).
    """

    key_id: str
    role: str
    customer_id: str | None
    totp_secret: str | None


class Authenticator:
    """Resolves request headers to a :class:`Principal` and enforces rate limits."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        limiter: RateLimiter,
        cache: KeyCache | None = None,
    ) -> None:
        self.sessions = sessions
        self.limiter = limiter
        self.cache = cache or KeyCache()

    def principal(self, request: Request) -> Principal:
        """The caller of ``request``; raises 401 or 429."""
        plaintext = _presented_key(request)
        prefix = key_prefix(plaintext) if plaintext else None
        if plaintext is None or prefix is None:
            raise HTTPException(401, "missing or malformed API key")
        allowed, retry_after_s = self.limiter.allow(prefix)
        if not allowed:
            raise HTTPException(
                429,
                "rate limit exceeded",
                headers={"Retry-After": str(max(1, round(retry_after_s + 0.5)))},
            )
        with self.sessions() as session:
            keys = session.scalars(
                select(ApiKey).where(ApiKey.key_prefix == prefix, ApiKey.revoked_at.is_(None))
            ).all()
            for key in keys:
                if self.cache.verify(plaintext, key.key_hash):
                    return Principal(key.id, key.role, key.customer_id, key.totp_secret)
        raise HTTPException(401, "unknown or revoked API key")

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
            raise HTTPException(401, "mfa_required: send a current TOTP code in X-TOTP")


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None
