"""Security primitives for the platform REST API: API keys, roles, TOTP, audit chain, rate limit.

Pure standard library (hashlib, hmac, secrets, base64, struct). Nothing here touches a
database or a clock it was not given: callers store the values and pass the time in.

- `api_keys`: generate, hash (scrypt) and verify customer API keys; `KeyCache` for the hot path.
- `roles`: the role/action permission table and which actions need a second factor.
- `totp`: RFC 6238 one-time codes for that second factor.
- `audit_chain`: a SHA-256 hash chain that makes edits, deletions and reordering of audit
  rows detectable.
- `rate_limit`: a thread-safe, memory-bounded token bucket per key.
"""
