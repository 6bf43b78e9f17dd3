"""Builders shared by the tests: fixed keys, alerts, envelopes, waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.drafts import ulid
from relay.core.envelope import endorse, sign
from relay.core.model import Alert, Area, Envelope, Text, encode_alert, encode_envelope

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_counter = iter(range(1, 1 << 30))


def key(n: int) -> NodeKey:
    """A deterministic key: seed is the byte ``n`` repeated."""
    return NodeKey.from_seed(bytes([n]) * 32)


def entry(network: str, node_key: NodeKey, **validity: Any) -> KeyEntry:
    return KeyEntry(network, node_key.public_key, **validity)


def new_id(network: str, at: datetime = T0) -> str:
    return f"{network}/{ulid(at, next(_counter).to_bytes(10, 'big'))}"


def make_alert(
    network: str = "ventura",
    *,
    alert_id: str | None = None,
    seq: int = 1,
    msg_type: str = "alert",
    references: Iterable[str] = (),
    kind: str = "sighting",
    certainty: str = "confirmed",
    sent_at: datetime = T0,
    observed_at: datetime | None = None,
    expires_in: timedelta = timedelta(hours=4),
    codes: Iterable[str] = ("fips:06111",),
    geohash: str = "9q4gch",
    headline: str = "ICE vehicles at Colonia park",
) -> Alert:
    return Alert(
        id=alert_id or new_id(network, sent_at),
        network=network,
        seq=seq,
        msg_type=msg_type,  # type: ignore[arg-type]
        references=list(references),
        kind=kind,  # type: ignore[arg-type]
        certainty=certainty,  # type: ignore[arg-type]
        observed_at=observed_at or sent_at,
        sent_at=sent_at,
        expires_at=sent_at + expires_in,
        area=Area(label="Colonia, Oxnard", geohash=geohash, radius_m=500, codes=list(codes)),
        agencies=["ice"],
        text={"en": Text(headline=headline, body="Verified on site by two volunteers.")},
    )


def envelope_for(alert: Alert, *signers: NodeKey) -> Envelope:
    payload = encode_alert(alert)
    envelope = sign(payload, signers[0])
    for signer in signers[1:]:
        envelope = endorse(envelope, payload, signer)
    return envelope


def raw_envelope(alert: Alert, *signers: NodeKey) -> bytes:
    return encode_envelope(envelope_for(alert, *signers))


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def report_token(http: Any, url: str) -> str:
    """A fresh signed token of the public form (``GET /report``), for a test's POST."""
    async with http.get(url + "/report") as reply:
        page = await reply.text()
    start = page.index('name="t" value="') + len('name="t" value="')
    return page[start : page.index('"', start)]
