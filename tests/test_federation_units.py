"""The pure parts of federation: request signing, backoff, forwarding rules. No event loop."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import nacl.signing
import pytest

from keys.core.keyring import KeyEntry, Keyring
from relay.core.backoff import backoff_delay
from relay.core.envelope import pae
from relay.core.errors import BadInput, Unauthorized
from relay.core.forwarding import outgoing, should_forward, signer_networks
from relay.core.model import encode_envelope
from relay.federation import auth
from relay.federation.inbound import parse_transaction
from relay.runtime.httpio import status_for
from tests.helpers import T0, envelope_for, key, make_alert

A, B = key(1), key(2)
KEYRING = Keyring([KeyEntry("net-a", A.public_key), KeyEntry("net-b", B.public_key)])
PEERS = frozenset({"net-a"})


def header(**changes: object) -> str:
    args: dict[str, object] = {
        "key": A,
        "method": "PUT",
        "path_and_query": "/federation/v1/send/t1",
        "origin": "net-a",
        "destination": "net-b",
        "now": T0,
        "body": b"{}",
    }
    args.update(changes)
    return auth.authorization(**args)  # type: ignore[arg-type]


def test_signed_bytes_follow_the_contract_exactly() -> None:
    value = header()
    fields = dict(part.split("=", 1) for part in value.removeprefix("Avisa ").split(","))
    assert list(fields) == ["origin", "destination", "keyid", "ts", "sig"]
    assert fields["ts"] == f'"{int(T0.timestamp())}"'
    text = "\n".join(
        [
            "PUT",
            "/federation/v1/send/t1",
            "net-a",
            "net-b",
            str(int(T0.timestamp())),
            hashlib.sha256(b"{}").hexdigest(),
        ]
    )
    message = pae("application/vnd.avisa.request.v1", text.encode())
    assert message.startswith(b"DSSEv1 32 application/vnd.avisa.request.v1 ")
    sig = base64.b64decode(fields["sig"].strip('"'))
    nacl.signing.VerifyKey(A.public_key).verify(message, sig)


def check(value: str, now_offset: int = 0, body: bytes = b"{}") -> str:
    request, entry = auth.precheck(
        value, "net-b", PEERS, KEYRING, T0 + timedelta(seconds=now_offset)
    )
    auth.check_signature(request, entry, "PUT", "/federation/v1/send/t1", body)
    return request.origin


def test_a_good_request_passes_within_the_window() -> None:
    assert check(header()) == "net-a"
    assert check(header(), now_offset=300) == "net-a"
    assert check(header(), now_offset=-300) == "net-a"


@pytest.mark.parametrize(
    ("value", "errcode"),
    [
        (None, "AVISA_UNAUTHORIZED"),
        ("Bearer abc", "AVISA_UNAUTHORIZED"),
        (header().replace(",sig=", ',ts="1",sig='), "AVISA_UNAUTHORIZED"),
        (header().replace('ts="', 'tz="'), "AVISA_UNAUTHORIZED"),
        (header().replace('ts="', 'ts="-'), "AVISA_UNAUTHORIZED"),
        (header().replace("==", "=A"), "AVISA_UNAUTHORIZED"),
        (header() + ',extra="1"', "AVISA_UNAUTHORIZED"),
        (header(destination="net-c"), "AVISA_WRONG_DESTINATION"),
        (header(now=T0 - timedelta(seconds=301)), "AVISA_STALE_REQUEST"),
        (header(key=key(9)), "AVISA_UNKNOWN_KEY"),
        (header(key=B, origin="net-b"), "AVISA_UNKNOWN_KEY"),  # a key we hold, not a peer's
        (header(origin="net-b"), "AVISA_UNKNOWN_KEY"),  # A's key speaking for B
        (header(body=b"{ }"), "AVISA_BAD_SIGNATURE"),
        (header(method="GET"), "AVISA_BAD_SIGNATURE"),
        (header(path_and_query="/federation/v1/send/t2"), "AVISA_BAD_SIGNATURE"),
    ],
)
def test_refusals_have_their_own_errcodes(value: str | None, errcode: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        check(value)  # type: ignore[arg-type]
    assert refused.value.errcode == errcode and status_for(refused.value) == 401


def test_key_validity_is_judged_on_the_receivers_clock() -> None:
    revoked = Keyring([KeyEntry("net-a", A.public_key, revoked_at=T0)])
    expired = Keyring([KeyEntry("net-a", A.public_key, valid_until=T0)])
    early = Keyring([KeyEntry("net-a", A.public_key, valid_from=T0 + timedelta(hours=1))])
    for ring, errcode in (
        (revoked, "AVISA_KEY_REVOKED"),
        (expired, "AVISA_KEY_NOT_VALID"),
        (early, "AVISA_KEY_NOT_VALID"),
    ):
        with pytest.raises(Unauthorized) as refused:
            auth.precheck(header(), "net-b", PEERS, ring, T0)
        assert refused.value.errcode == errcode


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    low = [backoff_delay(n, 0.0, 1.0, 300.0) for n in range(1, 12)]
    high = [backoff_delay(n, 1.0, 1.0, 300.0) for n in range(1, 12)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert low[-1] == 150.0 and high[-1] == 300.0
    assert backoff_delay(10_000, 0.5, 1.0, 300.0) == 225.0


def test_forwarding_never_returns_to_a_signer_origin_or_sender() -> None:
    envelope = envelope_for(make_alert("net-a"), A, B)
    signers = signer_networks(envelope, KEYRING)
    assert signers == {"net-a", "net-b"}
    assert not should_forward("net-a", "net-a", None, signers)
    assert not should_forward("net-b", "net-a", None, signers)
    assert not should_forward("net-c", "net-a", "net-c", set())
    assert should_forward("net-c", "net-a", "net-b", signers)
    # relay = "own": only what this node originated (no sending peer) goes to that peer.
    assert not should_forward("net-c", "net-a", "net-b", signers, "own", origin_trusted=True)
    assert should_forward("net-c", "net-me", None, set(), "own")
    # relay = "peers": ours, and what a network we trust directly originated.
    assert should_forward("net-c", "net-a", "net-b", signers, "peers", origin_trusted=True)
    assert not should_forward("net-c", "net-a", "net-b", signers, "peers", origin_trusted=False)
    assert should_forward("net-c", "net-me", None, set(), "peers")


def test_endorsement_respects_max_signatures() -> None:
    me = key(5)
    envelope = envelope_for(make_alert("net-a"), A, B)
    stored = encode_envelope(envelope)
    assert outgoing(stored, envelope, me, False, 8) == stored
    endorsed = outgoing(stored, envelope, me, True, 8)
    assert endorsed is not None and endorsed.startswith(stored[: stored.index(b"}]")])
    assert endorsed.count(b'"keyid"') == 3
    assert outgoing(stored, envelope, me, True, 2) == stored  # at the cap: as it came
    assert outgoing(stored, envelope, me, True, 1) is None  # over the cap: not at all
    # Our own alert is never endorsed twice by us.
    own = envelope_for(make_alert("net-m"), me)
    assert outgoing(encode_envelope(own), own, me, True, 8) == encode_envelope(own)


def test_transactions_as_senders_build_them_skip_the_whole_body_walk() -> None:
    one, two = b'{"a":1}', b'{"payloadType":"x","payloadType":"y"}'
    assert parse_transaction(b'{"envelopes":[' + one + b"," + two + b"]}") == [one, two]
    # Anything else is walked: its own structure strictly, each element as sent, to be
    # judged on its own (docs/protocol.md §6.3), so spacing changes nothing.
    assert parse_transaction(b'{"envelopes": [' + one + b"]}") == [one]
    assert parse_transaction(b'{"envelopes": [ ' + two + b" ] }") == [two]
    with pytest.raises(BadInput):
        parse_transaction(b'{"envelopes":[],"envelopes":[]}')
