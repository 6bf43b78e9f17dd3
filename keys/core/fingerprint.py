"""Fingerprints that two operators can read to each other over a phone.

Modelled on Signal's safety numbers: an iterated SHA-512 over a versioned
prefix and the raw public key, the first 30 bytes cut into six 5-byte chunks,
each printed as five decimal digits. Thirty digits in six groups are easy to
read aloud and compare, and the iteration makes a look-alike key costly to
grind. The version prefix is part of the contract: the same key gives the same
fingerprint in every release.
"""

from __future__ import annotations

import hashlib
import re

_VERSION = b"avisa-fingerprint-v1\x00"
_ITERATIONS = 5200
_GROUPS = 6


def fingerprint(public_key: bytes) -> str:
    """``"12345 67890 …"``: six groups of five digits."""
    digest = hashlib.sha512(_VERSION + public_key).digest()
    for _ in range(_ITERATIONS):
        digest = hashlib.sha512(digest + public_key).digest()
    groups = (int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100_000 for i in range(_GROUPS))
    return " ".join(f"{group:05d}" for group in groups)


def normalize(text: str) -> str:
    """Digits only, so operators may type spaces, dashes or nothing between groups."""
    return re.sub(r"[\s-]", "", text)


def matches(public_key: bytes, typed: str) -> bool:
    return normalize(typed) == normalize(fingerprint(public_key))
