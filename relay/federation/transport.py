"""The signed HTTP client this node uses to talk to one peer.

Every request carries the ``Authorization: Avisa …`` header of DESIGN §5,
signed with the node key for the peer's network and the exact path sent.
Replies are read under a byte limit and parsed as strictly as anything a
peer sends. Redirects are not followed: the node talks to configured peer
URLs only.

Failures are sorted by what the sender should do about them:

- ``PeerUnavailable`` (a ``TransportError``): could not connect, timed out,
  5xx, 401/403/404/405/408, 429, or a reply that makes no sense. Retry the
  same transaction later, with backoff.
- ``PeerRefused``: any other 4xx. The peer looked at this request and will
  refuse it again, so something in it is at fault (a poison item).

Error texts are short and fixed (``HTTP 500``, ``connection failed``); they
never carry the peer's URL, address or reply text, so they are safe to log
and to show in ``/api/v1/peers``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Final, Literal, TypeVar

import aiohttp
import msgspec
from msgspec import Meta, Struct
from yarl import URL

from keys.core.signing import NodeKey
from relay.core.checkpoints import MAX_CHECKPOINT_BYTES
from relay.core.errors import AvisaError, BadInput, TransportError
from relay.core.model import MAX_ENVELOPE_BYTES
from relay.core.times import Clock
from relay.federation.auth import authorization
from relay.runtime.httpio import strict_loads

MAX_SEND_REPLY = 256 * 1024
PAGE_REPLY_SLACK = 64 * 1024
MAX_CHECKPOINT_REPLY = 4096
_RETRY_STATUSES: Final = frozenset({401, 403, 404, 405, 408, 429})
_ERRCODE = re.compile(r"AVISA_[A-Z0-9_]{1,40}")


class PeerUnavailable(TransportError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        connection_failed: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.connection_failed = connection_failed


class PeerRefused(AvisaError):
    """A 4xx that is about this request's content; it will fail the same way again."""

    def __init__(self, status: int, errcode: str) -> None:
        super().__init__(f"HTTP {status} {errcode}")
        self.status = status
        self.errcode = errcode


Reason = Annotated[str, Meta(pattern=r"^[a-z0-9_]{0,64}$")]


class Result(Struct, frozen=True):
    id: str | None
    status: Literal["accepted", "duplicate", "held", "rejected"]
    reason: Reason


class SendReply(Struct, frozen=True):
    results: list[Result]


class Page(Struct, frozen=True):
    envelopes: list[msgspec.Raw]
    next: Annotated[str, Meta(pattern=r"^[0-9]{1,18}$")]


def _errcode(body: bytes) -> str:
    try:
        value = strict_loads(body)
    except BadInput:
        return "?"
    code = value.get("errcode") if isinstance(value, dict) else None
    return code if isinstance(code, str) and _ERRCODE.fullmatch(code) else "?"


def _retry_after(header: str | None) -> float | None:
    if header and len(header) < 7 and header.isascii() and header.isdigit():
        return float(header)
    return None


R = TypeVar("R", bound=Struct)


def _decode(body: bytes, type_: type[R]) -> R:
    try:
        strict_loads(body)
        return msgspec.json.decode(body, type=type_)
    except (BadInput, msgspec.ValidationError, msgspec.DecodeError):
        raise PeerUnavailable("bad reply") from None


class PeerClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        key: Callable[[], NodeKey],
        network: str,
        clock: Clock,
        timeout_s: float,
    ) -> None:
        self._session = session
        self._key = key
        self._network = network
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))

    async def send(
        self, peer: str, base_url: str, txn_id: str, envelopes: Sequence[bytes]
    ) -> list[Result]:
        """PUT one transaction; the reply's results, one per envelope, in order."""
        body = b'{"envelopes":[' + b",".join(envelopes) + b"]}"
        raw = await self._request(
            "PUT", peer, base_url, f"/federation/v1/send/{txn_id}", body, MAX_SEND_REPLY
        )
        return _decode(raw, SendReply).results

    async def key_document(self, peer: str, base_url: str) -> bytes:
        """GET the peer's signed key document (verified by the caller)."""
        return await self._request(
            "GET", peer, base_url, "/federation/v1/keys", b"", MAX_ENVELOPE_BYTES
        )

    async def alerts(self, peer: str, base_url: str, since: int, limit: int) -> Page:
        """GET one page of catch-up."""
        path = f"/federation/v1/alerts?since={since}&limit={limit}"
        cap = limit * MAX_ENVELOPE_BYTES + PAGE_REPLY_SLACK
        page = _decode(await self._request("GET", peer, base_url, path, b"", cap), Page)
        if len(page.envelopes) > limit:
            raise PeerUnavailable("bad reply")
        return page

    async def put_checkpoint(self, peer: str, base_url: str, network: str, raw: bytes) -> None:
        """PUT a checkpoint envelope (of ``network``) to the peer; its verdict is its own."""
        path = f"/federation/v1/checkpoints/{network}"
        await self._request("PUT", peer, base_url, path, raw, MAX_CHECKPOINT_REPLY)

    async def checkpoint(self, peer: str, base_url: str, network: str) -> bytes:
        """GET the newest checkpoint the peer holds of ``network`` (verified by the caller)."""
        path = f"/federation/v1/checkpoints/{network}"
        return await self._request("GET", peer, base_url, path, b"", MAX_CHECKPOINT_BYTES)

    async def message(self, peer: str, base_url: str, origin: str, seq: int) -> bytes:
        """GET message ``seq`` of ``origin`` as the peer stored it (verified by the caller)."""
        path = f"/federation/v1/messages/{origin}/{seq}"
        return await self._request("GET", peer, base_url, path, b"", MAX_ENVELOPE_BYTES)

    async def _request(
        self, method: str, peer: str, base_url: str, path: str, body: bytes, max_reply: int
    ) -> bytes:
        url = URL(base_url.rstrip("/") + path, encoded=True)
        header = authorization(
            self._key(), method, url.raw_path_qs, self._network, peer, self._clock(), body
        )
        headers = {"Authorization": header}
        if method == "PUT":
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method,
                url,
                data=body if method == "PUT" else None,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                reply = await _read_bounded(response, max_reply)
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise PeerUnavailable("timeout", connection_failed=True) from None
        except (aiohttp.ClientError, OSError):
            raise PeerUnavailable("connection failed", connection_failed=True) from None
        if status == 200:
            return reply
        if 400 <= status < 500 and status not in _RETRY_STATUSES:
            raise PeerRefused(status, _errcode(reply))
        detail = f" {_errcode(reply)}" if 400 <= status < 500 else ""
        raise PeerUnavailable(f"HTTP {status}{detail}", status=status, retry_after=retry_after)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise PeerUnavailable("reply too large")
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PeerUnavailable("reply too large")
        chunks.append(chunk)
    return b"".join(chunks)
