"""A per-client limit that keeps no client address: the public form's and the desk login's.

The client is its bucket (``relay.core.clients``: the IPv4 address or IPv6
/64, read from ``X-Forwarded-For`` only behind a proxy in
``[node] trusted_proxies``; ``client_address``). The bucket is turned into a
BLAKE2b hash keyed with a random key that lives in this
process's memory only, and that hash indexes a token bucket in a bounded,
least-recently-used table. A restart forgets every bucket and the key.

``allow`` spends a token: ``/report`` spends one per post, ``/desk/login``
one per failed sign-in (a correct token is never refused, see its handler).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from aiohttp import web

from relay.core import clients

MAX_CLIENTS: Final = 10_000
# The parsed ``[node] trusted_proxies``, kept on the node's app (sub-apps see it too).
PROXIES: web.AppKey[tuple[clients.Net, ...]] = web.AppKey("trusted_proxies", tuple)


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

    def __len__(self) -> int:
        return len(self._buckets)


def _proxies(request: web.Request) -> tuple[clients.Net, ...]:
    return request.config_dict.get(PROXIES) or ()


def client_address(request: web.Request) -> str:
    """The client's bucket: its own address, or the hop a trusted proxy vouches for."""
    forwarded = clients.hops(request.headers.getall("X-Forwarded-For", []))
    return clients.client(request.remote, forwarded, _proxies(request))


def from_trusted_proxy(request: web.Request) -> bool:
    """Whether the connection itself comes from a proxy in ``[node] trusted_proxies``."""
    peer = clients.address(request.remote)
    return peer is not None and clients.trusted(peer, _proxies(request))
