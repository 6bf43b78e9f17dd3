"""atheris harness: untrusted bytes → parse → verify → policy, and the strict JSON reader.

Each input's first byte picks a target; the rest is the data:

0. an envelope as a peer sends it → ``relay.runtime.pipeline.prepare`` (size limit,
   strict parse, canonical base64, Ed25519 against the keyring, canonical
   payload decode) → ``relay.core.policy.decide``;
1. payload bytes, signed here with the trusted peer's key so they get past
   the signature → the same path; the first three bytes also vary the
   clock and what the store knows, so the fuzzer reaches every branch of
   the policy. Checks: ``decide`` gives the same answer twice, and an
   accepted payload is its own canonical encoding;
2. a federation transaction body → ``parse_transaction`` → each envelope as 0;
3. a local API body → ``strict_loads`` → ``convert`` to a draft.

The only exception a target may raise is ``BadInput`` (the refusal every
edge turns into a 4xx). Anything else propagates and libFuzzer records a
crash: there is deliberately no ``except Exception`` here.

    python -m fuzz.fuzz_pipeline -max_total_time=300 .cache/fuzz/corpus

(``make fuzz`` does that, seeding the corpus with valid inputs first.)
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import timedelta
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from relay.core import drafts
    from relay.core.envelope import sign
    from relay.core.errors import BadInput
    from relay.core.model import encode_alert, encode_envelope
    from relay.core.policy import PolicyState, decide
    from relay.federation.inbound import parse_transaction
    from relay.runtime import httpio
    from relay.runtime.pipeline import Prepared, prepare
    from tests.adversarial import bitflip
    from tests.adversarial.kit import PEER, PEER_KEY
    from tests.helpers import T0

SNAPSHOT = bitflip.snapshot()
TOMBSTONES = (None, "cancelled", "superseded", "rejected")
STORED = ("no", "held", "accepted")


def judge(raw: bytes, state: PolicyState, offset: timedelta) -> None:
    prepared = prepare(raw, SNAPSHOT)
    if not isinstance(prepared, Prepared):
        return
    now = T0 + offset
    args = (prepared.envelope, prepared.alert, prepared.verification, SNAPSHOT.policy, state, now)
    first, second = decide(*args), decide(*args)
    assert first == second, "policy gave two answers to one question"
    if first.accepted:
        assert encode_alert(prepared.alert) == base64.b64decode(prepared.envelope.payload)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, rest = data[0] % 4, data[1:]
    if target == 0:
        judge(rest, PolicyState(from_peer=PEER), timedelta(0))
    elif target == 1:
        knobs, payload = rest[:3].ljust(3, b"\0"), rest[3:]
        state = PolicyState(
            stored=STORED[knobs[1] % 3],  # type: ignore[arg-type]
            tombstone=TOMBSTONES[knobs[2] % 4],  # type: ignore[arg-type]
            references_cancelled=bool(knobs[2] & 4),
            from_peer=PEER,
            recent_from_peer=knobs[1] * 4,
        )
        offset = timedelta(minutes=int.from_bytes(knobs[:1], "big", signed=True) * 8)
        judge(encode_envelope(sign(payload, PEER_KEY)), state, offset)
    elif target == 2:
        try:
            raws = parse_transaction(rest)
        except BadInput:
            return
        for raw in raws:
            judge(raw, PolicyState(from_peer=PEER), timedelta(0))
    else:
        try:
            httpio.convert(httpio.strict_loads(rest), drafts.Draft)
        except BadInput:
            return


def seed(corpus: Path) -> None:
    """Valid inputs of every target, so mutation starts from the accepted shape."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    from tests.test_api import DRAFT

    for i, item in enumerate(bitflip.originals(8)):
        raw = encode_envelope(item.envelope)
        (corpus / f"envelope-{i}").write_bytes(b"\x00" + raw)
        (corpus / f"payload-{i}").write_bytes(b"\x01" + bytes([0, i, 0]) + item.payload)
        (corpus / f"txn-{i}").write_bytes(b"\x02" + b'{"envelopes":[' + raw + b"]}")
    (corpus / "draft").write_bytes(b"\x03" + json.dumps(DRAFT).encode())


def main() -> None:
    argv = list(sys.argv)
    if all(arg.startswith("-") for arg in argv[1:]):  # no corpus directory given
        argv.append(".cache/fuzz/corpus")
    for directory in (arg for arg in argv[1:] if not arg.startswith("-")):
        seed(Path(directory))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
