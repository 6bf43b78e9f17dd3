"""Single-bit flips of signed envelopes, through the node's own parse → verify → policy path.

1,000 valid envelopes are built deterministically: alerts of the trusted peer
``net-a`` inside its speaks_for, signed with its key, each one accepted by
the policy as it stands (the control). A *flip* changes one bit of

- the payload (the exact bytes that were signed; the envelope is re-encoded
  around it, so the change reaches signature verification),
- the signature (the 64 raw bytes, re-encoded as base64), or
- the keyid (the text as it travels, ``ed25519:`` and 32 hex digits),

and the flipped envelope goes through ``relay.runtime.pipeline.prepare`` (size limit,
strict parse, canonical base64, Ed25519 against the keyring, canonical
payload decode) and, if it got that far, ``relay.core.policy.decide``. The bar is
zero accepted.

``plan(stride)`` picks the flips: stride 1 is every bit of every envelope
(4,744,808 flips, ``make bitflips``); a larger stride takes, for envelope i,
the bits b with b ≡ i (mod stride), then adds any (field, bit) position not
yet covered, so every bit position of payload, signature and keyid is
flipped at least once (what ``make test`` runs). Work is spread over a
process pool; each worker rebuilds the envelopes from the same seeds.

Run ``python -m tests.adversarial.bitflip [--stride N]`` for figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from keys.core.keyring import KeyEntry, Keyring
from relay.core.drafts import ulid
from relay.core.envelope import sign
from relay.core.model import Envelope, Signature, encode_alert, encode_envelope
from relay.core.policy import PeerPolicy, Policy, PolicyState, decide
from relay.runtime.pipeline import Prepared, prepare
from relay.storage.trust import TrustSnapshot
from tests.adversarial.kit import PEER, PEER_KEY, TARGET
from tests.helpers import T0, key, make_alert

ENVELOPES = 1000
Field = Literal["payload", "sig", "keyid"]
FIELDS: tuple[Field, ...] = ("payload", "sig", "keyid")
KINDS = ("sighting", "operation", "checkpoint", "workplace", "detention", "court")
CODES = ("fips:06111", "fips:06037", "fips:06059", "fips:06073")


def snapshot() -> TrustSnapshot:
    policy = Policy(own_network=TARGET, peers={PEER: PeerPolicy(PEER, speaks_for=("fips:06",))})
    keyring = Keyring([KeyEntry(TARGET, key(32).public_key), KeyEntry(PEER, PEER_KEY.public_key)])
    return TrustSnapshot(policy=policy, keyring=keyring)


@dataclass(frozen=True, slots=True)
class Original:
    payload: bytes
    envelope: Envelope

    @property
    def sig(self) -> bytes:
        return base64.b64decode(self.envelope.signatures[0].sig)

    @property
    def keyid(self) -> bytes:
        return self.envelope.signatures[0].keyid.encode("ascii")

    def bits(self, field: Field) -> int:
        return 8 * len(getattr(self, field))


def originals(count: int = ENVELOPES) -> list[Original]:
    built = []
    for i in range(count):
        alert = make_alert(
            PEER,
            alert_id=f"{PEER}/{ulid(T0, i.to_bytes(10, 'big'))}",
            seq=i + 1,
            kind=KINDS[i % len(KINDS)],
            codes=(CODES[i % len(CODES)],),
            sent_at=T0 - timedelta(seconds=i),
            headline=f"ICE vehicles near checkpoint {i} " + "x" * (i % 37),
        )
        payload = encode_alert(alert)
        built.append(Original(payload, sign(payload, PEER_KEY)))
    return built


def _flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def flipped(original: Original, field: Field, bit: int) -> bytes:
    """The envelope's wire bytes with one bit of ``field`` flipped."""
    envelope, signature = original.envelope, original.envelope.signatures[0]
    if field == "payload":
        payload = base64.b64encode(_flip(original.payload, bit)).decode()
        return encode_envelope(Envelope(envelope.payloadType, payload, envelope.signatures))
    if field == "sig":
        sig = base64.b64encode(_flip(original.sig, bit)).decode()
        changed = Signature(signature.keyid, sig)
    else:
        keyid = _flip(original.keyid, bit).decode("latin-1")
        changed = Signature(keyid, signature.sig)
    # Built by hand: Signature() does not validate, and a flipped keyid may not.
    return encode_envelope(Envelope(envelope.payloadType, envelope.payload, [changed]))


Flip = tuple[int, Field, int]


def strided(items: Sequence[Original], index: int, stride: int) -> Iterator[Flip]:
    """Envelope ``index``'s flips: the bits b with b ≡ index (mod stride) of each field."""
    for field in FIELDS:
        for bit in range(index % stride, items[index].bits(field), stride):
            yield index, field, bit


def top_up(items: Sequence[Original], stride: int) -> list[Flip]:
    """Flips for the positions the strided pass leaves out (only ever some, for stride > 1)."""
    covered = {
        (field, bit) for i in range(len(items)) for _, field, bit in strided(items, i, stride)
    }
    extra: list[Flip] = []
    for field in FIELDS:
        widest = max(range(len(items)), key=lambda i: items[i].bits(field))
        extra += [
            (widest, field, bit)
            for bit in range(items[widest].bits(field))
            if (field, bit) not in covered
        ]
    return extra


def plan(items: Sequence[Original], stride: int) -> list[Flip]:
    """Every flip of a run: every ``stride``-th bit, then every position at least once."""
    flips = [flip for i in range(len(items)) for flip in strided(items, i, stride)]
    return flips + top_up(items, stride)


def judge(raw: bytes, snap: TrustSnapshot) -> str:
    """``accepted``, ``held`` or the reason it was rejected."""
    prepared = prepare(raw, snap)
    if not isinstance(prepared, Prepared):
        return prepared.reason
    decision = decide(
        prepared.envelope,
        prepared.alert,
        prepared.verification,
        snap.policy,
        PolicyState(from_peer=PEER),
        T0,
    )
    return "accepted" if decision.accepted else decision.action + ":" + decision.reason


# --- worker side ---------------------------------------------------------------------

_items: list[Original] = []
_snaps: list[TrustSnapshot] = []


def _init() -> None:
    _items.extend(originals())
    _snaps.append(snapshot())


def _judge_all(flips: Iterable[Flip]) -> Counter[str]:
    snap = _snaps[0]
    outcomes: Counter[str] = Counter()
    for i, field, bit in flips:
        outcomes[f"{field}:{judge(flipped(_items[i], field, bit), snap)}"] += 1
    return outcomes


def _work(task: tuple[int, int, int] | list[Flip]) -> tuple[Counter[str], Counter[str]]:
    """A range of envelopes (start, stop, stride), or an explicit list of flips."""
    if isinstance(task, tuple):
        start, stop, stride = task
        flips: Iterable[Flip] = (
            flip for i in range(start, stop) for flip in strided(_items, i, stride)
        )
    else:
        flips = task
    counted: Counter[str] = Counter()

    def tallied() -> Iterator[Flip]:
        for flip in flips:
            counted[flip[1]] += 1
            yield flip

    return _judge_all(tallied()), counted


@dataclass(frozen=True)
class Report:
    envelopes: int
    flips: int
    by_field: dict[str, int]
    outcomes: dict[str, int]
    accepted: int
    controls_accepted: int
    seconds: float
    workers: int
    stride: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def run(stride: int, workers: int | None = None) -> Report:
    items = originals()
    snap = snapshot()
    controls = sum(judge(encode_envelope(item.envelope), snap) == "accepted" for item in items)
    tasks: list[tuple[int, int, int] | list[Flip]] = [
        (start, min(start + 10, len(items)), stride) for start in range(0, len(items), 10)
    ]
    tasks.append(top_up(items, stride))
    workers = workers or os.cpu_count() or 2
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    by_field: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")  # no inherited threads or event loops
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init) as pool:
        for judged, counted in pool.map(_work, tasks):
            outcomes.update(judged)
            by_field.update(counted)
    seconds = time.monotonic() - started
    accepted = sum(n for outcome, n in outcomes.items() if outcome.endswith(":accepted"))
    return Report(
        envelopes=len(items),
        flips=sum(by_field.values()),
        by_field=dict(by_field),
        outcomes=dict(sorted(outcomes.items())),
        accepted=accepted,
        controls_accepted=controls,
        seconds=round(seconds, 1),
        workers=workers,
        stride=stride,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=1, help="1 = every bit (the full run)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    report = run(args.stride, args.workers)
    print(json.dumps({"figure": "bitflips", **report.as_dict()}, indent=1))
    if report.accepted or report.controls_accepted != report.envelopes:
        raise SystemExit("FAILED: a flipped envelope was accepted, or a control was not")


if __name__ == "__main__":
    main()
