"""The Whatsminer v2 privileged-channel scheme: MD5-crypt and the AES envelope."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.emulators.whatsminer_crypto import (
    WhatsminerCryptoError,
    aes_key,
    decrypt_json,
    encrypt_json,
    md5_crypt_hash,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # passlib imports the crypt module
    from passlib.handlers.md5_crypt import md5_crypt as reference_md5_crypt

SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@settings(max_examples=40, deadline=None)
@given(
    password=st.text(st.characters(exclude_characters="\x00"), max_size=40),
    salt=st.text(alphabet=SALT_ALPHABET, min_size=1, max_size=8),
)
def test_md5_crypt_matches_an_independent_implementation(password: str, salt: str) -> None:
    """Our MD5-crypt agrees with passlib's (the library pyasic's client uses)."""
    expected = reference_md5_crypt.using(salt=salt).hash(password).split("$")[3]
    assert md5_crypt_hash(password, salt) == expected


def test_envelope_round_trips_and_rejects_a_wrong_key() -> None:
    """A command encrypted with the miner's key decrypts to itself; with another key it
    does not decrypt to JSON."""
    key = aes_key("admin", "abcd1234")
    command = {"cmd": "adjust_power_limit", "power_limit": "2800", "token": "x"}
    assert decrypt_json(key, encrypt_json(key, command)) == command
    with pytest.raises(WhatsminerCryptoError):
        decrypt_json(aes_key("hunter2", "abcd1234"), encrypt_json(key, command))
    with pytest.raises(WhatsminerCryptoError, match=r"base64|blocks"):
        decrypt_json(key, "not base64!")
