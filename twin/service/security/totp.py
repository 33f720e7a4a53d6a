"""RFC 6238 time-based one-time passwords (HMAC-SHA-1, 30 s steps), from the standard library.

The secret is exchanged as base32 (what authenticator apps read from a QR code); codes are
``digits`` decimal digits (6 by default, 8 for the RFC test vectors). Time is passed in as
`at_s` [s since the Unix epoch]; nothing here reads a clock.

Replay: a code stays valid for its whole step (and `window` steps either side). To make
each code single-use, store the counter `matching_counter` returns and refuse counters at
or below the last one accepted for that principal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import struct

SECRET_BYTES = 20
"""Secret length; RFC 4226 recommends 160 bits for HMAC-SHA-1."""
STEP_S = 30
"""Time step X [s]."""
DEFAULT_DIGITS = 6
SUPPORTED_DIGITS = frozenset({6, 7, 8})


class TotpSecretError(ValueError):
    """A stored TOTP secret is not valid base32 (a server-side data error, not user input)."""


def new_totp_secret() -> str:
    """A fresh random secret: 20 bytes as upper-case base32 without padding (32 chars)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def _decode_secret(secret: str) -> bytes:
    """Base32 secret -> key bytes; tolerant of case, spaces and missing padding."""
    compact = secret.replace(" ", "").upper()
    padded = compact + "=" * (-len(compact) % 8)
    try:
        key = base64.b32decode(padded, casefold=False)
    except (binascii.Error, ValueError) as error:
        raise TotpSecretError(f"TOTP secret is not valid base32: {error}") from error
    if not key:
        raise TotpSecretError("TOTP secret is empty")
    return key


def _check_digits(digits: int) -> None:
    if digits not in SUPPORTED_DIGITS:
        raise ValueError(f"digits must be one of {sorted(SUPPORTED_DIGITS)}, got {digits}")


def _counter_at(at_s: float) -> int:
    if not math.isfinite(at_s) or at_s < 0:
        raise ValueError(f"at_s must be a finite time >= 0 s since the epoch, got {at_s}")
    return int(at_s // STEP_S)


def _hotp(key: bytes, counter: int, digits: int) -> str:
    """RFC 4226 HOTP: HMAC-SHA-1 over the 8-byte big-endian counter, dynamic truncation."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    (truncated,) = struct.unpack(">I", mac[offset : offset + 4])
    return str((truncated & 0x7FFFFFFF) % 10**digits).zfill(digits)


def totp_code(secret: str, at_s: float, *, digits: int = DEFAULT_DIGITS) -> str:
    """The code for base32 `secret` at time `at_s` [s since the epoch], zero-padded."""
    _check_digits(digits)
    return _hotp(_decode_secret(secret), _counter_at(at_s), digits)


def matching_counter(
    secret: str, code: object, at_s: float, window: int = 1, *, digits: int = DEFAULT_DIGITS
) -> int | None:
    """The time-step counter whose code equals `code`, within `window` steps of `at_s`.

    None if no step matches or `code` is not exactly `digits` ASCII digits. Every step in
    the window is compared (constant-time compare, no early exit), so timing does not tell
    which step matched.
    """
    _check_digits(digits)
    if window < 0:
        raise ValueError(f"window must be >= 0 steps, got {window}")
    if not (isinstance(code, str) and len(code) == digits and code.isascii() and code.isdigit()):
        return None
    key = _decode_secret(secret)
    center = _counter_at(at_s)
    found: int | None = None
    for counter in range(max(0, center - window), center + window + 1):
        if hmac.compare_digest(_hotp(key, counter, digits), code) and found is None:
            found = counter
    return found


def verify_totp(
    secret: str, code: object, at_s: float, window: int = 1, *, digits: int = DEFAULT_DIGITS
) -> bool:
    """True if `code` is valid at `at_s` [s], allowing `window` steps of clock drift each way.

    Rejects (False) anything that is not exactly `digits` ASCII digits. A malformed
    `secret` raises `TotpSecretError`: that is a server-side fault, not a wrong code.
    """
    return matching_counter(secret, code, at_s, window, digits=digits) is not None
