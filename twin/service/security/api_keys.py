"""Customer API keys: generate, store only a scrypt hash, verify in constant time.

A key looks like ``hcp_`` + 40 URL-safe base64 characters (30 random bytes, 240 bits).
Its first `KEY_PREFIX_CHARS` characters (``hcp_`` + 8) are stored in clear as the lookup
index; the whole key is stored only as ``scrypt$<salt b64>$<hash b64>``.

Verification never raises: any malformed key or stored hash is simply "not valid", so a
request handler can map every failure to one 401 without leaking which part was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeGuard

API_KEY_PREFIX = "hcp_"
KEY_BODY_BYTES = 30
"""Random bytes in a key; 30 bytes encode to exactly 40 URL-safe base64 characters."""
KEY_BODY_CHARS = 40
API_KEY_CHARS = len(API_KEY_PREFIX) + KEY_BODY_CHARS
KEY_PREFIX_CHARS = 12
"""Characters of the key (including ``hcp_``) stored in clear to find its row."""

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN_BYTES = 32
SCRYPT_MAXMEM_BYTES = 64 * 1024 * 1024
"""Memory ceiling handed to OpenSSL; n=2**14, r=8 needs 128 * r * n = 16 MiB."""
SALT_BYTES = 16
HASH_SCHEME = "scrypt"

_URLSAFE_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")


class KeyCacheConfigError(ValueError):
    """A `KeyCache` parameter is out of range."""


def generate_api_key() -> tuple[str, str, str]:
    """Create a new API key.

    Returns ``(plaintext, key_prefix, key_hash)``: show `plaintext` to the customer once,
    store `key_prefix` (indexed, for lookup) and `key_hash`; never store `plaintext`.
    """
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(KEY_BODY_BYTES)
    return plaintext, plaintext[:KEY_PREFIX_CHARS], hash_api_key(plaintext)


def is_well_formed_api_key(plaintext: object) -> TypeGuard[str]:
    """True if `plaintext` has the shape of a key: ``hcp_`` + 40 URL-safe characters.

    Cheap; lets a handler reject garbage before paying for scrypt or a database lookup.
    """
    return (
        isinstance(plaintext, str)
        and len(plaintext) == API_KEY_CHARS
        and plaintext.startswith(API_KEY_PREFIX)
        and _URLSAFE_ALPHABET.issuperset(plaintext[len(API_KEY_PREFIX) :])
    )


def key_prefix(plaintext: object) -> str | None:
    """The lookup prefix (first 12 characters) of a key, or None if it is not a key."""
    if not is_well_formed_api_key(plaintext):
        return None
    return plaintext[:KEY_PREFIX_CHARS]


def _scrypt(plaintext: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        plaintext.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM_BYTES,
        dklen=SCRYPT_DKLEN_BYTES,
    )


def hash_api_key(plaintext: str) -> str:
    """Hash a key for storage as ``scrypt$<salt b64>$<hash b64>`` with a fresh 16-byte salt.

    Costs one scrypt evaluation (tens of ms).
    """
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(plaintext, salt)
    return "$".join(
        (
            HASH_SCHEME,
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(digest).decode("ascii"),
        )
    )


def _parse_stored_hash(stored_hash: object) -> tuple[bytes, bytes] | None:
    """(salt, digest) from a stored hash, or None if it is not in our format."""
    if not isinstance(stored_hash, str):
        return None
    parts = stored_hash.split("$")
    if len(parts) != 3 or parts[0] != HASH_SCHEME:
        return None
    try:
        salt = base64.b64decode(parts[1], validate=True)
        digest = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) != SALT_BYTES or len(digest) != SCRYPT_DKLEN_BYTES:
        return None
    return salt, digest


def verify_api_key(plaintext: object, stored_hash: object) -> bool:
    """True only if `plaintext` is a well-formed key whose scrypt hash equals `stored_hash`.

    The digest comparison is constant-time (`hmac.compare_digest`). Malformed input of any
    kind returns False; this function never raises.
    """
    parsed = _parse_stored_hash(stored_hash)
    if parsed is None or not is_well_formed_api_key(plaintext):
        return False
    salt, expected_digest = parsed
    return hmac.compare_digest(_scrypt(plaintext, salt), expected_digest)


class KeyCache:
    """A small thread-safe LRU of recently verified keys, so the hot path skips scrypt.

    Each entry records one fact: "this key verified against this stored hash", until it
    expires `ttl_s` seconds later. Why caching that fact is safe:

    - Only successes are cached, so an attacker cannot fill the cache without valid keys,
      and a wrong key always pays the full scrypt cost (rate-limit that path).
    - The cache is keyed by SHA-256 over (stored hash, plaintext). A fast hash is enough
      here: a key carries 240 random bits, so the digest cannot be brute-forced, and the
      plaintext itself is never kept in memory. scrypt guards the *database* copy, which
      may leak; this process-local map never leaves the process.
    - Binding the entry to the stored hash means a rotated key (new hash) misses at once.
    - A revoked key stops working everywhere within `ttl_s` (entries expire), and at once
      in this process when the revoker calls `revoke(prefix)`. Callers must still look up
      the key's row (and its revoked flag) on every request; the cache replaces only the
      scrypt step, never the lookup.
    """

    def __init__(
        self,
        max_entries: int = 4096,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_entries` bounds memory; `ttl_s` [s] bounds how long a revoked key may linger."""
        if max_entries < 1:
            raise KeyCacheConfigError(f"max_entries must be >= 1, got {max_entries}")
        if not ttl_s > 0:
            raise KeyCacheConfigError(f"ttl_s must be > 0 s, got {ttl_s}")
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # (key prefix, SHA-256 digest) -> expiry time [s on `clock`]
        self._entries: OrderedDict[tuple[str, bytes], float] = OrderedDict()

    @staticmethod
    def _cache_key(plaintext: str, stored_hash: str) -> tuple[str, bytes]:
        fingerprint = hashlib.sha256(
            stored_hash.encode("utf-8") + b"\0" + plaintext.encode("utf-8")
        ).digest()
        return plaintext[:KEY_PREFIX_CHARS], fingerprint

    def is_cached(self, plaintext: str, stored_hash: str) -> bool:
        """True if this key verified against this hash less than `ttl_s` ago."""
        if not (is_well_formed_api_key(plaintext) and isinstance(stored_hash, str)):
            return False
        cache_key = self._cache_key(plaintext, stored_hash)
        with self._lock:
            expires_at_s = self._entries.get(cache_key)
            if expires_at_s is None:
                return False
            if self._clock() >= expires_at_s:
                del self._entries[cache_key]
                return False
            self._entries.move_to_end(cache_key)
            return True

    def verify(self, plaintext: object, stored_hash: object) -> bool:
        """`verify_api_key` with caching of successes; never raises."""
        if not (is_well_formed_api_key(plaintext) and isinstance(stored_hash, str)):
            return False
        if self.is_cached(plaintext, stored_hash):
            return True
        if not verify_api_key(plaintext, stored_hash):  # scrypt runs outside the lock
            return False
        cache_key = self._cache_key(plaintext, stored_hash)
        with self._lock:
            self._entries[cache_key] = self._clock() + self._ttl_s
            self._entries.move_to_end(cache_key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return True

    def revoke(self, prefix: str) -> int:
        """Drop every entry for the key with this lookup prefix; returns how many went."""
        with self._lock:
            doomed = [cache_key for cache_key in self._entries if cache_key[0] == prefix]
            for cache_key in doomed:
                del self._entries[cache_key]
        return len(doomed)

    def clear(self) -> None:
        """Forget everything (e.g. after a bulk revocation)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
