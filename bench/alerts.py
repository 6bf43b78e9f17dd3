"""Alerts for the load generators, signed ahead of time on every core.

A typical alert: one area with one FIPS code, two languages of text, about
1.2 KiB as an envelope, signed by its origin and endorsed by the relaying
peer (two signatures, as the issue asks). Signing happens before a phase is
timed, in worker processes, so the load generator's own CPU during the
measurement is only HTTP and one request signature per transaction.

``bad_envelopes`` are what a flooding peer sends: well-formed envelopes
whose signature names a key the node knows but does not verify, so the node
has to spend one Ed25519 verification on each to find out.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from keys.core.signing import NodeKey
from relay.core.drafts import ulid
from relay.core.envelope import endorse, sign
from relay.core.model import Alert, Area, Envelope, Signature, Text, encode_alert, encode_envelope

TEXT = {
    "es": Text(
        headline="ICE confirmado cerca de la escuela Ramona",
        body="Verificado en el lugar por dos voluntarios del equipo de respuesta a las 7:40.",
    ),
    "en": Text(
        headline="ICE confirmed near Ramona school",
        body="Verified on site by two volunteers of the rapid-response team at 7:40.",
    ),
}
AREA = Area(
    label="Oxnard, Colonia neighborhood", geohash="9q4gch", radius_m=800, codes=["fips:06111"]
)


def alert(network: str, seq: int, now: datetime) -> Alert:
    """An origin's ``seq``-th alert, signed at ``now``.

    Its ULID's time is ``now`` plus ``seq`` milliseconds: an origin's ids
    are time-ordered, as real ones are (ULIDs made in one millisecond would
    sort at random, which no origin produces at this scale).
    """
    return Alert(
        id=f"{network}/{ulid(now + timedelta(milliseconds=seq), os.urandom(10))}",
        network=network,
        seq=seq,
        msg_type="alert",
        references=[],
        kind="sighting",
        certainty="confirmed",
        observed_at=now,
        sent_at=now,
        expires_at=now + timedelta(hours=4),
        area=AREA,
        agencies=["ice"],
        text=TEXT,
    )


def _signed_range(
    origin_seed: bytes, network: str, endorser_seed: bytes, first_seq: int, count: int
) -> list[bytes]:
    origin, endorser = NodeKey.from_seed(origin_seed), NodeKey.from_seed(endorser_seed)
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for seq in range(first_seq, first_seq + count):
        payload = encode_alert(alert(network, seq, now))
        out.append(encode_envelope(endorse(sign(payload, origin), payload, endorser)))
    return out


def signed_envelopes(origin: NodeKey, network: str, endorser: NodeKey, count: int) -> list[bytes]:
    """``count`` alerts of ``network``, seq 1…count, signed by origin then endorser."""
    workers = os.cpu_count() or 1
    step = max(1, -(-count // (workers * 4)))
    seeds = bytes(origin.signing_key), bytes(endorser.signing_key)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(
            _signed_range,
            *zip(
                *(
                    (seeds[0], network, seeds[1], first, min(step, count - first + 1))
                    for first in range(1, count + 1, step)
                ),
                strict=True,
            ),
        )
        return [envelope for part in parts for envelope in part]


def bad_envelopes(claimed: NodeKey, network: str, count: int) -> list[bytes]:
    """Envelopes whose one signature names ``claimed``'s keyid but is random bytes."""
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for seq in range(1, count + 1):
        good = sign(encode_alert(alert(network, seq, now)), claimed)
        forged = Signature(keyid=claimed.keyid, sig=_b64(os.urandom(64)))
        out.append(encode_envelope(Envelope(good.payloadType, good.payload, [forged])))
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def transactions(envelopes: list[bytes], batch: int) -> Iterator[bytes]:
    """Bodies of ``PUT /federation/v1/send``, ``batch`` envelopes each."""
    for start in range(0, len(envelopes), batch):
        yield b'{"envelopes":[' + b",".join(envelopes[start : start + batch]) + b"]}"
