"""A per-client limit that keeps no client address: the public form's and the desk login's.

The address (or, behind a proxy, the header ``[desk] client_header`` names)
is turned into a BLAKE2b hash keyed with a random key that lives in this
process's memory only, and that hash indexes a token bucket in a bounded,
least-recently-used table. A restart forgets every bucket and the key.

``allow`` spends a token (``/report`` spends one per post); ``has_room``
only looks, so ``/desk/login`` can refuse before checking a token and spend
only on a failed sign-in.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from aiohttp import web

MAX_CLIENTS: Final = 10_000


class ClientLimiter:
    """Token buckets per client, keyed by an in-memory keyed hash of its address."""

    def __init__(
        self, per_hour: int, *, monotonic: Callable[[], float], max_clients: int = MAX_CLIENTS
    ) -> None:
        """``monotonic``: the node clock's (a fake clock in tests refills the buckets)."""
        self.capacity = float(per_hour)
        self.refill_per_s = per_hour / 3600.0
        self.max_clients = max_clients
        self._monotonic = monotonic
        self._key = os.urandom(32)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def _client(self, address: str) -> bytes:
        return hashlib.blake2b(address.encode(), key=self._key, digest_size=16).digest()

    def _tokens(self, client: bytes, now: float) -> float:
        tokens, since = self._buckets.pop(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - since) * self.refill_per_s)

    def _keep(self, client: bytes, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def allow(self, address: str) -> bool:
        """Spend a token if there is one; False (and counted as refused) if not."""
        client, now = self._client(address), self._monotonic()
        tokens = self._tokens(client, now)
        allowed = tokens >= 1.0
        self._keep(client, tokens - 1.0 if allowed else tokens, now)
        if not allowed:
            self.refused += 1
        return allowed

    def has_room(self, address: str) -> bool:
        """Whether ``allow`` would pass now, spending nothing (False counts as refused)."""
        client, now = self._client(address), self._monotonic()
        tokens = self._tokens(client, now)
        if tokens >= self.capacity:
            return True  # a full bucket need not take a place in the table
        self._keep(client, tokens, now)
        if tokens < 1.0:
            self.refused += 1
        return tokens >= 1.0

    def __len__(self) -> int:
        return len(self._buckets)


def client_address(request: web.Request, header: str) -> str:
    """The client as the configured proxy header names it (its last hop), else the peer."""
    if header:
        forwarded = request.headers.get(header, "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:100]
    return request.remote or "?"
