"""Fetching a trust list and the versions between the one held and the newest.

A subscription names the URL of a list's newest version
(``…/trustlists/v1/{list}``); version N is at that URL + ``/N``. ``fetch_forward``
gets the newest, and when it is more than one ahead of the version held,
the versions in between, oldest first, at most ``MAX_VERSIONS`` per check
(a subscriber far behind catches up over several checks). Every reply is
read under the list's byte bound (``MAX_LIST_BYTES``) and one deadline per
request; redirects are never followed (a list is fetched from the URL the
operator gave, nowhere else) and are refused like any status but 200.
Failures raise ``FetchFailed`` with a short fixed text that never carries
the reply, safe to log and to show. Nothing is judged here: the caller walks
what was fetched (``keys.cards.trustwalk``).
"""

from __future__ import annotations

from typing import Final

import aiohttp
from yarl import URL

from keys.cards.trustlist import MAX_LIST_BYTES, read_list
from relay.core.errors import TransportError
from relay.federation.transport import PeerUnavailable, _read_bounded

MAX_VERSIONS: Final = 32
TIMEOUT_S: Final = 20.0


class FetchFailed(TransportError):
    """The list could not be fetched; the text is short and fixed."""


async def fetch_one(
    session: aiohttp.ClientSession, url: str, timeout_s: float = TIMEOUT_S
) -> bytes:
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
    try:
        async with session.get(
            URL(url, encoded=True), timeout=timeout, allow_redirects=False
        ) as response:
            if 300 <= response.status < 400:
                raise FetchFailed("redirected elsewhere: not followed")
            if response.status != 200:
                raise FetchFailed(f"HTTP {response.status}")
            return await _read_bounded(response, MAX_LIST_BYTES)
    except PeerUnavailable as exc:
        raise FetchFailed(str(exc)) from None
    except TimeoutError:
        raise FetchFailed("timeout") from None
    except (aiohttp.ClientError, OSError, ValueError):
        raise FetchFailed("connection failed") from None


async def fetch_forward(
    session: aiohttp.ClientSession,
    url: str,
    held_version: int | None,
    timeout_s: float = TIMEOUT_S,
) -> list[bytes]:
    """The newest version, preceded by those between ``held_version`` and it (oldest first).

    A newest version that is not newer than the one held is returned alone:
    the walk says whether it is the same (no news), a rollback or equivocation.
    """
    newest_raw = await fetch_one(session, url, timeout_s)
    newest = read_list(newest_raw).version
    start = (held_version or 0) + 1
    if newest <= start:
        return [newest_raw]
    last = min(newest - 1, start + MAX_VERSIONS - 2)
    base = url.rstrip("/")
    between = [
        await fetch_one(session, f"{base}/{version}", timeout_s)
        for version in range(start, last + 1)
    ]
    return [*between, newest_raw] if last == newest - 1 else between
