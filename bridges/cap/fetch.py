"""The CAP importer's HTTP side: one bounded, conditional GET (DESIGN §12).

``fetch`` makes a GET that never follows a redirect, sends the validators of
the last answer (``If-None-Match`` / ``If-Modified-Since``), and reads at
most ``limit`` bytes, counted after decompression so a gzip bomb stops at
the limit. Every way a fetch can fail becomes one of three answers:
``Refused("too_large")`` (a ``bridges.cap.parse`` refusal, counted as such),
``Gone`` (404/410: a linked message that is not coming back) or
``TransportError`` (anything else: retried after backoff).

``new_session`` is the importer's one shared ``aiohttp`` session (a total
timeout per fetch, header lines bounded as the node's own server bounds
them); ``same_origin`` is the rule that keeps an index from making the node
contact another host.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from bridges.cap.parse import Refused
from relay.core.errors import TransportError

FETCH_TIMEOUT_S = 30.0
ACCEPT = (
    "application/cap+xml, application/atom+xml, application/rss+xml,"
    " application/xml;q=0.9, text/xml;q=0.9"
)


class Gone(TransportError):
    """404 or 410: a linked message that is not coming back (a source URL still backs off)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def same_origin(a: str, b: str) -> bool:
    first, second = urlsplit(a), urlsplit(b)
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S),
        headers={"User-Agent": "Avisa CAP importer"},
        max_line_size=8190,
        max_field_size=8190,
    )


async def fetch(
    http: aiohttp.ClientSession,
    url: str,
    limit: int,
    etag: str | None = None,
    modified: str | None = None,
) -> Fetched:
    """GET ``url`` once; ``Fetched(304)`` when the validators still hold."""
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        async with http.get(url, headers=headers, allow_redirects=False) as response:
            if response.status == 304:
                return Fetched(304)
            if response.status in (404, 410):
                raise Gone(f"HTTP {response.status}")
            if response.status != 200:
                raise TransportError(f"HTTP {response.status}")
            if (response.content_length or 0) > limit:
                raise Refused("too_large")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:  # counted after decompression: no gzip bomb
                    raise Refused("too_large")
            return Fetched(
                200,
                bytes(body),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
    except (aiohttp.ClientError, TimeoutError, UnicodeError, ValueError) as exc:
        raise TransportError(f"cannot fetch ({type(exc).__name__})") from None
