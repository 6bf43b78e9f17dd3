"""The public form's tokens: signed by the node, time-bound, single-use (DESIGN §17).

``GET /report`` puts a token in the form; ``POST /report`` files a tip only
with a token this process issued, less than ``TTL_S`` ago, and not yet spent.
A token is ``issued (8 bytes, milliseconds of the node's monotonic clock) |
nonce (12 random bytes) | tag (16 bytes)``, base64url, where the tag is
HMAC-SHA256 of the rest under a key that lives in this process's memory only.
So a restart voids the forms that were open (the page shows the reporter's
words again with a fresh token; one more tap sends them), and no token can
outlive the key that vouches for it.

Spent nonces are kept until their token would have expired anyway, at most
``MAX_SPENT`` of them; past that the oldest go first, which only matters to
someone who posted ``MAX_SPENT`` reports within ``TTL_S`` (the per-client
limit stands in the way of that long before).

The token says nothing about who posts: reporters are counted by client
(``relay.http.report``), so minting tokens never raises a count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal

TTL_S: Final = 2 * 3600.0
MAX_SPENT: Final = 100_000
_TAG: Final = 16
_SIZE: Final = 8 + 12 + _TAG

Verdict = Literal["ok", "bad", "stale", "spent"]


class FormTokens:
    def __init__(
        self, monotonic: Callable[[], float], ttl_s: float = TTL_S, max_spent: int = MAX_SPENT
    ) -> None:
        """``monotonic``: the node clock's (a fake clock in tests ages the tokens)."""
        self._monotonic = monotonic
        self.ttl_s = ttl_s
        self.max_spent = max_spent
        self._key = os.urandom(32)
        self._spent: OrderedDict[bytes, float] = OrderedDict()

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG]

    def issue(self) -> str:
        body = int(self._monotonic() * 1000).to_bytes(8, "big", signed=True) + os.urandom(12)
        return base64.urlsafe_b64encode(body + self._tag(body)).decode()

    def spend(self, token: str) -> Verdict:
        """Check ``token`` and, if it is good, spend it."""
        raw = _decode(token)
        if raw is None or not hmac.compare_digest(raw[-_TAG:], self._tag(raw[:-_TAG])):
            return "bad"
        now = self._monotonic()
        issued = int.from_bytes(raw[:8], "big", signed=True) / 1000
        if not issued <= now + 1 or now - issued > self.ttl_s:
            return "stale"
        nonce = raw[8:-_TAG]
        self._forget(now)
        if nonce in self._spent:
            return "spent"
        self._spent[nonce] = issued + self.ttl_s
        while len(self._spent) > self.max_spent:
            self._spent.popitem(last=False)
        return "ok"

    def _forget(self, now: float) -> None:
        """Drop expired nonces from the front (spent in about the order they expire)."""
        while self._spent and next(iter(self._spent.values())) < now:
            self._spent.popitem(last=False)

    def __len__(self) -> int:
        return len(self._spent)


def _decode(token: str) -> bytes | None:
    if len(token) != 48 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _SIZE else None
