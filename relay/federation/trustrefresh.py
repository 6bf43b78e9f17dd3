"""The running node's check of the trust lists it subscribes to, every ``[trustlists] refresh``.

For each subscription (``avisa trustlist subscribe``): fetch the newest
version and those between (``relay.federation.trustfetch``, with the
federation's HTTP session), then judge and record the outcome in one write
transaction (``keys.store.trustsub_ops.refresh_on``): what chains is held,
the first refusal is recorded and logged (``trustlist refused``, with the
list and the reason code, never the reply), an equivocating copy is kept.
One list's failure never stops the others. A version taken reloads the
node's trust at once (its members are peers: ``relay.storage.trust``); a held
version that expires within ``EXPIRY_WARNING`` (a week) logs ``trustlist
expires soon`` at every check, so maintainers hear of it before the freeze.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from keys.cards.trustlist import TrustListRefused
from keys.store.trustsub_ops import Refreshed, Unfetched, expiring_soon, refresh_on
from relay.core.errors import BadInput
from relay.core.times import rfc3339
from relay.federation.trustfetch import FetchFailed, fetch_forward
from relay.storage import trustlists

if TYPE_CHECKING:
    import aiohttp

    from relay.federation.host import FederationHost

_log = structlog.get_logger("avisa.trustlists")


async def refresh_all(host: FederationHost, session: aiohttp.ClientSession) -> list[Refreshed]:
    """Check every subscribed list once; the outcomes, in list order."""
    subscriptions = await host.db.read(trustlists.subscriptions)
    done = []
    for sub in subscriptions:
        result = await refresh_one(host, session, sub.list, sub.url, sub.held.version)
        if result is not None:
            done.append(result)
    return done


async def refresh_one(
    host: FederationHost, session: aiohttp.ClientSession, list_id: str, url: str, held: int
) -> Refreshed | None:
    fetched: Sequence[bytes] | Unfetched
    try:
        fetched = await fetch_forward(session, url, held)
    except FetchFailed as exc:
        fetched = Unfetched("unreachable", str(exc))
    except TrustListRefused as exc:
        fetched = Unfetched(exc.reason, exc.message)
    now = host.clock()
    try:
        result = await host.db.write(lambda conn: refresh_on(conn, list_id, fetched, now))
    except BadInput:  # unsubscribed while it was being fetched
        return None
    if result.accepted:
        _log.info("trustlist updated", list=list_id, version=result.version)
        await host.reload_trust()  # its members are this node's peers from now on
    if result.expires_at is not None and expiring_soon(result.expires_at, now):
        _log.warning(
            "trustlist expires soon",
            list=list_id,
            version=result.version,
            expires_at=rfc3339(result.expires_at),
        )
    if result.refusal is not None:
        reason, message = result.refusal
        _log.warning("trustlist refused", list=list_id, reason=reason, detail=message)
    return result
