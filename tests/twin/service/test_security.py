"""Tests for service.security: API keys, roles, TOTP, audit hash chain and rate limiting."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from twin.service.security.api_keys import (
    API_KEY_CHARS,
    API_KEY_PREFIX,
    KEY_PREFIX_CHARS,
    KeyCache,
    KeyCacheConfigError,
    generate_api_key,
    hash_api_key,
    is_well_formed_api_key,
    key_prefix,
    verify_api_key,
)
from twin.service.security.audit_chain import (
    CHAINED_FIELDS,
    GENESIS,
    REASON_BROKEN_LINK,
    REASON_HASH_MISMATCH,
    REASON_HEAD_MISMATCH,
    REASON_MALFORMED,
    REASON_OK,
    AuditRecordError,
    SealedAuditRecord,
    chain_hash,
    seal_record,
    verify_chain,
)
from twin.service.security.rate_limit import RateLimitConfigError, RateLimiter
from twin.service.security.roles import (
    MFA_ACTIONS,
    PERMISSIONS,
    AccessDecision,
    Action,
    Role,
    allowed,
    authorize,
    needs_mfa,
)
from twin.service.security.totp import (
    STEP_S,
    TotpSecretError,
    new_totp_secret,
    totp_code,
    verify_totp,
)


class FakeClock:
    """A settable monotonic clock [s] for cache and rate-limit tests."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


# --------------------------------------------------------------------------- API keys


@pytest.fixture(scope="module")
def issued_key() -> tuple[str, str, str]:
    """One generated key for the whole module: scrypt costs tens of ms per call."""
    return generate_api_key()


def test_generated_key_has_documented_shape(issued_key: tuple[str, str, str]) -> None:
    """A key is hcp_ + 40 URL-safe chars, its prefix is its first 12 chars, hash is scrypt$."""
    plaintext, prefix, key_hash = issued_key
    assert plaintext.startswith(API_KEY_PREFIX)
    assert len(plaintext) == API_KEY_CHARS == 44
    assert is_well_formed_api_key(plaintext)
    assert prefix == plaintext[:KEY_PREFIX_CHARS] == key_prefix(plaintext)
    assert len(prefix) == 12
    scheme, salt_b64, digest_b64 = key_hash.split("$")
    assert scheme == "scrypt"
    assert len(base64.b64decode(salt_b64)) == 16
    assert len(base64.b64decode(digest_b64)) == 32
    assert plaintext not in key_hash


def test_stored_hash_is_scrypt_of_key_with_its_salt(issued_key: tuple[str, str, str]) -> None:
    """The stored digest is hashlib.scrypt(n=2**14, r=8, p=1) of the key with the stored salt."""
    plaintext, _, key_hash = issued_key
    _, salt_b64, digest_b64 = key_hash.split("$")
    expected = hashlib.scrypt(
        plaintext.encode(), salt=base64.b64decode(salt_b64), n=2**14, r=8, p=1, dklen=32
    )
    assert base64.b64decode(digest_b64) == expected


def test_verify_accepts_the_key_and_rejects_a_one_char_change(
    issued_key: tuple[str, str, str],
) -> None:
    """The issued key verifies; the same key with its last character changed does not."""
    plaintext, _, key_hash = issued_key
    assert verify_api_key(plaintext, key_hash)
    last = plaintext[-1]
    altered = plaintext[:-1] + ("A" if last != "A" else "B")
    assert not verify_api_key(altered, key_hash)


def test_two_generated_keys_differ_and_do_not_cross_verify(
    issued_key: tuple[str, str, str],
) -> None:
    """Keys are random: a second key differs and does not verify against the first hash."""
    other_plaintext, _, other_hash = generate_api_key()
    plaintext, _, key_hash = issued_key
    assert other_plaintext != plaintext
    assert other_hash != key_hash
    assert not verify_api_key(other_plaintext, key_hash)


def test_hashing_is_salted(issued_key: tuple[str, str, str]) -> None:
    """Hashing the same key twice gives different stored values that both verify."""
    plaintext, _, key_hash = issued_key
    second_hash = hash_api_key(plaintext)
    assert second_hash != key_hash
    assert verify_api_key(plaintext, second_hash)


def test_tampered_stored_hash_rejects(issued_key: tuple[str, str, str]) -> None:
    """Changing the stored salt (still valid base64 of the right length) fails verification."""
    plaintext, _, key_hash = issued_key
    scheme, _, digest_b64 = key_hash.split("$")
    other_salt = base64.b64encode(bytes(16)).decode()
    assert not verify_api_key(plaintext, f"{scheme}${other_salt}${digest_b64}")


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.one_of(st.text(max_size=60), st.none(), st.integers(), st.binary()),
    stored_hash=st.one_of(
        st.text(max_size=80),
        st.builds(lambda a, b: f"scrypt${a}${b}", st.text(max_size=30), st.text(max_size=50)),
        st.none(),
        st.binary(),
    ),
)
def test_verify_never_raises_on_malformed_input(plaintext: Any, stored_hash: Any) -> None:
    """Garbage keys or stored hashes give False, never an exception."""
    assert verify_api_key(plaintext, stored_hash) is False


@pytest.mark.parametrize(
    "candidate",
    ["", "hcp_", "hcp_" + "a" * 39, "hcp_" + "a" * 41, "xyz_" + "a" * 40, "hcp_" + "a" * 39 + "="],
)
def test_malformed_keys_have_no_prefix(candidate: str) -> None:
    """Wrong length, wrong tag or a non-URL-safe char: not a key, no lookup prefix."""
    assert not is_well_formed_api_key(candidate)
    assert key_prefix(candidate) is None


def test_key_cache_remembers_success_until_ttl(issued_key: tuple[str, str, str]) -> None:
    """A verified key is cached; the entry expires after ttl_s on the cache's clock."""
    plaintext, _, key_hash = issued_key
    clock = FakeClock()
    cache = KeyCache(max_entries=8, ttl_s=60.0, clock=clock)
    assert not cache.is_cached(plaintext, key_hash)
    assert cache.verify(plaintext, key_hash)
    assert cache.is_cached(plaintext, key_hash)
    clock.now_s += 59.0
    assert cache.is_cached(plaintext, key_hash)
    clock.now_s += 1.0
    assert not cache.is_cached(plaintext, key_hash)
    assert len(cache) == 0


def test_key_cache_does_not_cache_failures_and_revoke_clears(
    issued_key: tuple[str, str, str],
) -> None:
    """A wrong key is not cached; revoke(prefix) drops the verified key at once."""
    plaintext, prefix, key_hash = issued_key
    cache = KeyCache(clock=FakeClock())
    wrong = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert not cache.verify(wrong, key_hash)
    assert len(cache) == 0
    assert cache.verify(plaintext, key_hash)
    assert cache.revoke("hcp_notthis1") == 0
    assert cache.revoke(prefix) == 1
    assert not cache.is_cached(plaintext, key_hash)
    assert not cache.verify(None, key_hash)


def test_key_cache_is_bound_to_stored_hash_and_bounded(issued_key: tuple[str, str, str]) -> None:
    """A rotated hash misses the cache; with max_entries=1 the older entry is evicted."""
    plaintext, _, key_hash = issued_key
    rotated_hash = hash_api_key(plaintext)
    cache = KeyCache(max_entries=1, clock=FakeClock())
    assert cache.verify(plaintext, key_hash)
    assert not cache.is_cached(plaintext, rotated_hash)
    assert cache.verify(plaintext, rotated_hash)
    assert len(cache) == 1
    assert cache.is_cached(plaintext, rotated_hash)
    assert not cache.is_cached(plaintext, key_hash)


def test_key_cache_rejects_bad_limits() -> None:
    """A cache with no room or no lifetime is a configuration error."""
    with pytest.raises(KeyCacheConfigError, match="max_entries"):
        KeyCache(max_entries=0)
    with pytest.raises(KeyCacheConfigError, match="ttl_s"):
        KeyCache(ttl_s=0.0)


# --------------------------------------------------------------------------- roles


def test_customer_cannot_reach_beyond_own_records() -> None:
    """Customers may submit and read their own work but not read/cancel any or manage keys."""
    assert allowed(Role.CUSTOMER, Action.SUBMIT_WORKLOAD)
    assert allowed(Role.CUSTOMER, Action.READ_OWN_WORKLOAD)
    assert allowed(Role.CUSTOMER, Action.CANCEL_OWN)
    for action in (
        Action.READ_ANY_WORKLOAD,
        Action.CANCEL_ANY,
        Action.MANAGE_KEYS,
        Action.LIST_ANY,
        Action.READ_BILLING_ANY,
        Action.READ_AUDIT,
        Action.MANAGE_FACILITIES,
    ):
        assert not allowed(Role.CUSTOMER, action), action
    assert all(not action.endswith("_any") for action in PERMISSIONS[Role.CUSTOMER])


def test_operator_reads_any_but_needs_mfa_to_cancel_any() -> None:
    """Operators read any workload freely; cancel_any is allowed only with MFA."""
    assert allowed(Role.OPERATOR, Action.READ_ANY_WORKLOAD)
    assert not needs_mfa(Role.OPERATOR, Action.READ_ANY_WORKLOAD)
    assert allowed(Role.OPERATOR, Action.CANCEL_ANY)
    assert needs_mfa(Role.OPERATOR, Action.CANCEL_ANY)
    assert authorize(Role.OPERATOR, Action.CANCEL_ANY, mfa_verified=False) == (
        AccessDecision.MFA_REQUIRED
    )
    assert authorize(Role.OPERATOR, Action.CANCEL_ANY, mfa_verified=True) == AccessDecision.ALLOWED
    assert not allowed(Role.OPERATOR, Action.MANAGE_KEYS)


def test_admin_manages_keys_with_mfa_and_may_do_everything() -> None:
    """Admins may call every action; manage_keys needs MFA."""
    assert all(allowed(Role.ADMIN, action) for action in Action)
    assert needs_mfa(Role.ADMIN, Action.MANAGE_KEYS)
    assert authorize("admin", "manage_keys", mfa_verified=False) == AccessDecision.MFA_REQUIRED
    assert authorize("admin", "manage_keys", mfa_verified=True) == AccessDecision.ALLOWED


def test_unknown_role_or_action_is_denied() -> None:
    """Deny by default: names outside the enums are never allowed."""
    assert not allowed("root", Action.READ_RESOURCES)
    assert not allowed(Role.ADMIN, "drop_tables")
    assert authorize("root", "drop_tables", mfa_verified=True) == AccessDecision.FORBIDDEN
    assert not needs_mfa("root", Action.MANAGE_KEYS)


@given(
    role=st.sampled_from(list(Role)),
    action=st.sampled_from(list(Action)),
    mfa_verified=st.booleans(),
)
def test_authorize_agrees_with_table(role: Role, action: Action, mfa_verified: bool) -> None:
    """authorize = FORBIDDEN off-table, MFA_REQUIRED only for MFA actions without a factor."""
    decision = authorize(role, action, mfa_verified=mfa_verified)
    if action not in PERMISSIONS[role]:
        assert decision == AccessDecision.FORBIDDEN
    elif action in MFA_ACTIONS and not mfa_verified:
        assert decision == AccessDecision.MFA_REQUIRED
    else:
        assert decision == AccessDecision.ALLOWED
    assert not needs_mfa(role, action) or allowed(role, action)


def test_permission_table_is_nested_and_covers_every_action() -> None:
    """customer ⊂ operator ⊂ admin, admin holds every action, and MFA actions are not customers'."""
    assert PERMISSIONS[Role.CUSTOMER] < PERMISSIONS[Role.OPERATOR] < PERMISSIONS[Role.ADMIN]
    assert PERMISSIONS[Role.ADMIN] == frozenset(Action)
    assert MFA_ACTIONS.isdisjoint(PERMISSIONS[Role.CUSTOMER])


# --------------------------------------------------------------------------- TOTP

RFC6238_SHA1_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("at_s", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_totp_matches_rfc6238_sha1_vectors(at_s: int, expected: str) -> None:
    """RFC 6238 appendix B, SHA-1 rows, 8 digits; the code also verifies."""
    assert totp_code(RFC6238_SHA1_SECRET, at_s, digits=8) == expected
    assert verify_totp(RFC6238_SHA1_SECRET, expected, at_s, window=0, digits=8)


@given(at_s=st.integers(min_value=0, max_value=2**40))
def test_six_digit_code_is_tail_of_eight_digit_code(at_s: int) -> None:
    """Truncation is mod 10**digits, so the 6-digit code is the last 6 of the 8-digit one."""
    six = totp_code(RFC6238_SHA1_SECRET, at_s)
    assert len(six) == 6
    assert six == totp_code(RFC6238_SHA1_SECRET, at_s, digits=8)[-6:]


@given(at_s=st.floats(min_value=0, max_value=4e9))
def test_current_code_verifies(at_s: float) -> None:
    """The code for a time verifies at that time with no drift window."""
    assert verify_totp(RFC6238_SHA1_SECRET, totp_code(RFC6238_SHA1_SECRET, at_s), at_s, window=0)


def test_window_allows_one_step_of_drift_and_no_more() -> None:
    """With window=1, codes one step old or ahead verify; two steps away do not."""
    at_s = 1_700_000_015.0
    previous = totp_code(RFC6238_SHA1_SECRET, at_s - STEP_S)
    following = totp_code(RFC6238_SHA1_SECRET, at_s + STEP_S)
    stale = totp_code(RFC6238_SHA1_SECRET, at_s - 2 * STEP_S)
    current = totp_code(RFC6238_SHA1_SECRET, at_s)
    assert len({previous, following, stale, current}) == 4
    assert verify_totp(RFC6238_SHA1_SECRET, previous, at_s, window=1)
    assert verify_totp(RFC6238_SHA1_SECRET, following, at_s, window=1)
    assert not verify_totp(RFC6238_SHA1_SECRET, previous, at_s, window=0)
    assert not verify_totp(RFC6238_SHA1_SECRET, stale, at_s, window=1)


def test_malformed_codes_are_rejected() -> None:
    """Non-digits, wrong length, non-ASCII digits and non-strings never verify."""
    at_s = 1_700_000_000
    code = totp_code(RFC6238_SHA1_SECRET, at_s)
    wrong_digit = code[:-1] + str((int(code[-1]) + 1) % 10)
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in code)
    for candidate in (
        wrong_digit,
        code + "0",
        code[:-1],
        f" {code[1:]}",
        "12a456",
        arabic_indic,
        "",
        None,
        int(code),
    ):
        assert not verify_totp(RFC6238_SHA1_SECRET, candidate, at_s), candidate
    assert verify_totp(RFC6238_SHA1_SECRET, code, at_s)


def test_new_secret_is_base32_of_20_random_bytes() -> None:
    """Secrets decode to 160 bits, differ per call, and tolerate lower case and spaces."""
    secret = new_totp_secret()
    assert len(secret) == 32
    assert len(base64.b32decode(secret)) == 20
    assert new_totp_secret() != secret
    spaced = " ".join(secret[i : i + 4] for i in range(0, 32, 4)).lower()
    assert totp_code(spaced, 1_700_000_000) == totp_code(secret, 1_700_000_000)


def test_bad_secret_and_time_raise_clear_errors() -> None:
    """A corrupt stored secret or a negative time is a ValueError, not a silent False."""
    with pytest.raises(TotpSecretError, match="base32"):
        verify_totp("not base32!", "123456", 1_700_000_000)
    with pytest.raises(ValueError, match="at_s"):
        totp_code(RFC6238_SHA1_SECRET, -1)
    with pytest.raises(ValueError, match="digits"):
        totp_code(RFC6238_SHA1_SECRET, 0, digits=4)


# --------------------------------------------------------------------------- audit chain

T0 = dt.datetime(2025, 7, 1, 12, 0, tzinfo=dt.UTC)


def build_chain(n_rows: int) -> list[SealedAuditRecord]:
    """A valid chain of n_rows audit records, one second apart."""
    rows: list[SealedAuditRecord] = []
    prev_hash = GENESIS
    for index in range(n_rows):
        row = seal_record(
            prev_hash,
            id=index + 1,
            at=T0 + dt.timedelta(seconds=index),
            actor=f"key:hcp_{index % 7:08d}",
            action="cancel_any" if index % 3 else "submit_workload",
            target=f"workload/{index}",
            payload={"reason": "test", "gpus": index % 8, "price_usd_per_mwh": 31.5},
        )
        rows.append(row)
        prev_hash = row.hash
    return rows


SMALL_CHAIN = build_chain(12)


def test_chain_hash_is_sha256_of_prev_and_canonical_json() -> None:
    """The hash is sha256(prev_hash + sorted-key, no-space JSON with UTC ISO datetimes)."""
    record = {
        "target": "workload/7",
        "payload": {"b": 2, "a": [1, "é"]},
        "id": 7,
        "actor": "operator:1",
        "at": dt.datetime(2025, 1, 31, 6, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=-6))),
        "action": "cancel_any",
        "hash": "ignored",
    }
    expected_json = (
        '{"action":"cancel_any","actor":"operator:1","at":"2025-01-31T12:00:00.000005Z",'
        '"id":7,"payload":{"a":[1,"é"],"b":2},"target":"workload/7"}'
    )
    expected = hashlib.sha256((GENESIS + expected_json).encode("utf-8")).hexdigest()
    assert chain_hash(GENESIS, record) == expected


def test_naive_datetime_hashes_as_utc() -> None:
    """A naive datetime (as SQLite returns it) hashes like the same aware UTC instant."""
    row = SMALL_CHAIN[0]
    as_read_back = dataclasses.replace(row, at=row.at.replace(tzinfo=None))
    assert chain_hash(GENESIS, dataclasses.asdict(as_read_back)) == row.hash


def test_intact_chain_of_1000_rows_verifies() -> None:
    """A freshly built chain of 1,000 rows verifies, as objects and as mappings."""
    rows = build_chain(1000)
    report = verify_chain(rows)
    assert report.ok
    assert report.reason == REASON_OK
    assert report.count == 1000
    assert report.first_bad_index is None
    assert report.head_hash == rows[-1].hash
    assert verify_chain(dataclasses.asdict(row) for row in rows).ok
    assert verify_chain(rows, expected_head=rows[-1].hash).ok


def _edited_value(field: str) -> st.SearchStrategy[Any]:
    hex_hash = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
    json_scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    return {
        "id": st.integers(),
        "at": st.datetimes(timezones=st.just(dt.UTC)),
        "actor": st.text(),
        "action": st.text(),
        "target": st.text(),
        "payload": st.dictionaries(st.text(max_size=8), json_scalars, max_size=4),
        "prev_hash": hex_hash,
        "hash": hex_hash,
    }[field]


@settings(max_examples=150)
@given(data=st.data())
def test_any_single_field_edit_is_caught_at_that_row(data: st.DataObject) -> None:
    """Changing any one field of any one row is reported as a hash mismatch at that row."""
    index = data.draw(st.integers(min_value=0, max_value=len(SMALL_CHAIN) - 1))
    field = data.draw(st.sampled_from([*CHAINED_FIELDS, "prev_hash", "hash"]))
    original = getattr(SMALL_CHAIN[index], field)
    new_value = data.draw(_edited_value(field))
    assume(new_value != original)
    rows = list(SMALL_CHAIN)
    rows[index] = dataclasses.replace(rows[index], **{field: new_value})
    report = verify_chain(rows)
    assert not report.ok
    assert report.first_bad_index == index
    assert report.first_bad_id == rows[index].id
    assert report.reason == REASON_HASH_MISMATCH
    assert report.count == len(rows)


@given(index=st.integers(min_value=0, max_value=len(SMALL_CHAIN) - 2))
def test_deleting_a_row_is_caught_at_the_next(index: int) -> None:
    """Removing a row breaks the link of the row that followed it."""
    rows = SMALL_CHAIN[:index] + SMALL_CHAIN[index + 1 :]
    report = verify_chain(rows)
    assert not report.ok
    assert report.reason == REASON_BROKEN_LINK
    assert report.first_bad_index == index
    assert report.first_bad_id == SMALL_CHAIN[index + 1].id


def test_cutting_the_tail_needs_the_expected_head() -> None:
    """Dropping the last rows leaves a valid chain; only the known head hash exposes it."""
    truncated = SMALL_CHAIN[:-2]
    assert verify_chain(truncated).ok
    report = verify_chain(truncated, expected_head=SMALL_CHAIN[-1].hash)
    assert not report.ok
    assert report.reason == REASON_HEAD_MISMATCH
    assert report.first_bad_index == len(truncated)


@given(
    pair=st.lists(
        st.integers(min_value=0, max_value=len(SMALL_CHAIN) - 1),
        min_size=2,
        max_size=2,
        unique=True,
    )
)
def test_reordering_rows_is_caught(pair: list[int]) -> None:
    """Swapping two rows breaks the link at the earlier position."""
    first, second = sorted(pair)
    rows = list(SMALL_CHAIN)
    rows[first], rows[second] = rows[second], rows[first]
    report = verify_chain(rows)
    assert not report.ok
    assert report.reason == REASON_BROKEN_LINK
    assert report.first_bad_index == first


def test_forged_row_sealed_onto_the_chain_breaks_the_next_link() -> None:
    """Inserting a correctly sealed row in the middle is caught at the row after it."""
    forged = seal_record(
        SMALL_CHAIN[4].hash,
        id=999,
        at=T0,
        actor="intruder",
        action="manage_keys",
        target="key/1",
        payload={},
    )
    rows = [*SMALL_CHAIN[:5], forged, *SMALL_CHAIN[5:]]
    report = verify_chain(rows)
    assert report.first_bad_index == 6
    assert report.reason == REASON_BROKEN_LINK


def test_tail_verifies_from_a_checkpoint() -> None:
    """start_prev_hash lets a tail be verified without the rows before it."""
    assert not verify_chain(SMALL_CHAIN[5:]).ok
    assert verify_chain(SMALL_CHAIN[5:], start_prev_hash=SMALL_CHAIN[4].hash).ok


def test_malformed_rows_are_reported_not_raised() -> None:
    """A row lacking a field or holding non-JSON data is reported; chain_hash raises clearly."""
    rows: list[Any] = [dataclasses.asdict(row) for row in SMALL_CHAIN[:3]]
    del rows[1]["actor"]
    report = verify_chain(rows)
    assert (report.ok, report.first_bad_index, report.reason) == (False, 1, REASON_MALFORMED)
    content = dataclasses.asdict(SMALL_CHAIN[0])
    with pytest.raises(AuditRecordError, match="canonical JSON"):
        chain_hash(GENESIS, {**content, "payload": {"x": math.nan}})
    with pytest.raises(AuditRecordError, match="canonical JSON"):
        chain_hash(GENESIS, {**content, "payload": object()})
    with pytest.raises(AuditRecordError, match="prev_hash"):
        chain_hash("abc", content)


# --------------------------------------------------------------------------- rate limit


def test_bucket_allows_burst_then_reports_retry_after() -> None:
    """burst requests pass at once; the next waits 1/rate s, and passes after that wait."""
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.allow("k")[0] for _ in range(3)] == [True, True, True]
    allowed_now, retry_after_s = limiter.allow("k")
    assert not allowed_now
    assert retry_after_s == pytest.approx(0.5)
    assert limiter.allow("other") == (True, 0.0)
    clock.now_s += retry_after_s
    assert limiter.allow("k") == (True, 0.0)


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=3), st.sampled_from(["a", "b"])), max_size=60
    ),
    rate_per_s=st.floats(min_value=0.1, max_value=10),
    burst=st.integers(min_value=1, max_value=5),
)
def test_never_more_than_burst_plus_refill(
    steps: list[tuple[float, str]], rate_per_s: float, burst: int
) -> None:
    """Per key, allowed requests over T seconds never exceed burst + rate*T, and a refusal's
    retry_after_s is enough: the same request right after that wait is allowed."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(rate_per_s=rate_per_s, burst=burst, clock=clock)
    granted = {"a": 0, "b": 0}
    for advance_s, key in steps:
        clock.now_s += advance_s
        ok, retry_after_s = limiter.allow(key)
        if ok:
            granted[key] += 1
        else:
            assert retry_after_s > 0
            clock.now_s += retry_after_s * (1 + 1e-9)
            assert limiter.allow(key)[0]
            granted[key] += 1
        assert granted[key] <= burst + rate_per_s * clock.now_s + 1e-6


def test_memory_is_bounded_and_idle_buckets_are_dropped() -> None:
    """Many keys never hold more than max_keys buckets; fully refilled buckets are evicted."""
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=5, clock=clock, max_keys=100)
    for key in range(5000):
        limiter.allow(key)
    assert len(limiter) == 100
    clock.now_s += 5.0
    limiter.allow("fresh")
    assert len(limiter) == 1


def test_clock_stepping_back_grants_nothing() -> None:
    """A clock that goes backwards adds no tokens."""
    clock = FakeClock(100.0)
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    assert limiter.allow("k")[0]
    clock.now_s = 50.0
    assert not limiter.allow("k")[0]


def test_concurrent_callers_share_one_bucket_exactly() -> None:
    """With a frozen clock, 8 threads x 300 calls on one key get exactly burst grants."""
    limiter = RateLimiter(rate_per_s=1.0, burst=1000, clock=FakeClock())
    grants: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(limiter.allow("shared")[0] for _ in range(300))
        with lock:
            grants.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(grants) == 1000


@pytest.mark.parametrize(
    "make",
    [
        lambda: RateLimiter(rate_per_s=0, burst=1),
        lambda: RateLimiter(rate_per_s=math.nan, burst=1),
        lambda: RateLimiter(rate_per_s=1, burst=0.5),
        lambda: RateLimiter(rate_per_s=1, burst=1, max_keys=0),
        lambda: RateLimiter(rate_per_s=1, burst=2).allow("k", cost=3),
    ],
)
def test_bad_limits_raise(make: Callable[[], object]) -> None:
    """Out-of-range parameters raise RateLimitConfigError (a ValueError)."""
    with pytest.raises(RateLimitConfigError):
        make()
