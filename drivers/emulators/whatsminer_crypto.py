"""The Whatsminer API v2 privileged-command scheme, miner side.

The client asks ``get_token`` and gets ``salt``, ``newsalt`` and ``time``. Both sides then
derive, with MD5-crypt (the ``$1$`` scheme of crypt(3)):

* ``host_passwd_md5 = md5_crypt(password, salt)`` (the hash part only), whose SHA-256 is
  the AES-256 key;
* ``host_sign = md5_crypt(host_passwd_md5 + time, newsalt)``, the token.

A privileged request is ``{"enc": 1, "data": base64(AES-ECB(json(command + token),
zero-padded to 16 bytes))}``; the reply is ``{"enc": base64(AES-ECB(json(reply)))}``.
MD5-crypt is implemented here (it is short) because the ``crypt`` module the usual
library falls back to is deprecated; the tests check it against an independent
implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MD5_CRYPT_ROUNDS = 1000
_BYTE_GROUPS = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
"""Digest bytes packed into each group of four output characters, in crypt(3) order."""


class WhatsminerCryptoError(ValueError):
    """A privileged request could not be decrypted or decoded."""


def md5_crypt_hash(password: str, salt: str) -> str:
    """The hash part of MD5-crypt ``$1$<salt>$<hash>`` of ``password`` (salt: up to 8
    characters)."""
    secret = password.encode("utf-8")
    salt_bytes = salt.encode("utf-8")[:8]
    alternate = hashlib.md5(secret + salt_bytes + secret).digest()
    context = hashlib.md5(secret + b"$1$" + salt_bytes)
    for start in range(0, len(secret), 16):
        context.update(alternate[: min(16, len(secret) - start)])
    length = len(secret)
    while length:
        context.update(b"\x00" if length & 1 else secret[:1])
        length >>= 1
    digest = context.digest()
    for round_index in range(_MD5_CRYPT_ROUNDS):
        step = hashlib.md5(secret if round_index & 1 else digest)
        if round_index % 3:
            step.update(salt_bytes)
        if round_index % 7:
            step.update(secret)
        step.update(digest if round_index & 1 else secret)
        digest = step.digest()
    encoded = []
    for a, b, c in _BYTE_GROUPS:
        encoded.append(_crypt_base64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4))
    encoded.append(_crypt_base64(digest[11], 2))
    return "".join(encoded)


def _crypt_base64(value: int, n_chars: int) -> str:
    chars = []
    for _ in range(n_chars):
        chars.append(_CRYPT_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(chars)


def host_passwd_md5(password: str, salt: str) -> str:
    """The password digest both sides derive from the miner's salt."""
    return md5_crypt_hash(password, salt)


def host_sign(password: str, salt: str, time_text: str, newsalt: str) -> str:
    """The token a client must send with privileged commands for one ``get_token``."""
    return md5_crypt_hash(host_passwd_md5(password, salt) + time_text, newsalt)


def aes_key(password: str, salt: str) -> bytes:
    """The AES-256 key of the privileged channel (32 bytes)."""
    return binascii.unhexlify(hashlib.sha256(host_passwd_md5(password, salt).encode()).hexdigest())


def encrypt_json(key: bytes, payload: dict[str, Any]) -> str:
    """``payload`` as JSON, zero-padded, AES-256-ECB encrypted, base64 encoded."""
    text = json.dumps(payload).encode("utf-8")
    padded = text + b"\x00" * (-len(text) % 16)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt_json(key: bytes, data: str) -> dict[str, Any]:
    """The JSON object in base64 ``data`` encrypted with ``key``.

    Raises:
        WhatsminerCryptoError: not base64, not whole AES blocks, or not a JSON object
            after decryption (e.g. a wrong key).
    """
    try:
        cipher_text = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as error:
        raise WhatsminerCryptoError(f"data: not base64: {error}") from error
    if not cipher_text or len(cipher_text) % 16:
        raise WhatsminerCryptoError("data: not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    plain = (decryptor.update(cipher_text) + decryptor.finalize()).rstrip(b"\x00")
    try:
        payload = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WhatsminerCryptoError("data: does not decrypt to JSON (wrong key?)") from error
    if not isinstance(payload, dict):
        raise WhatsminerCryptoError("data: does not decrypt to a JSON object")
    return payload
