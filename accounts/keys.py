"""API token keys: made here, kept only as a digest. No Django.

A key is 240 random bits, so one fast, unsalted hash (sha256) cannot be reversed or guessed
from a stolen table, and it lets a request find its token in one indexed lookup by digest
(a salted or slow hash would need the rows first). The first characters are kept in clear so
people can tell their tokens apart; they carry 42 of the 240 bits.
"""

import hashlib
import secrets

KEY_PREFIX = "sp_"  # marks our keys (secret scanners, logs)
PREFIX_CHARS = len(KEY_PREFIX) + 7


def key_new() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_CHARS]
