"""Properties that hold for every input hypothesis can build, not just the ones we thought of.

- sign → verify round-trips for any payload bytes and payload type;
- decode ∘ encode is the identity on accepted payloads, and every payload
  the decoder accepts is its own canonical encoding;
- any change to a signed envelope (payload bytes, payload type, signature
  bytes, keyid, or its JSON text) is refused, unless the change leaves the
  very same envelope (JSON whitespace, key order, escapes);
- the policy gives the same decision to the same inputs, every time.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from datetime import UTC, datetime

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.core.keyring import KeyEntry, Keyring
from relay.core.envelope import endorse as add_endorsement
from relay.core.envelope import open_envelope, sign, verify
from relay.core.model import (
    CERTAINTIES,
    KINDS,
    ULID_PATTERN,
    Alert,
    Area,
    Envelope,
    NonCanonical,
    Signature,
    Text,
    decode_alert,
    encode_alert,
    encode_envelope,
    valid_network,
)
from relay.core.policy import PeerPolicy, Policy, PolicyState, decide
from relay.runtime.pipeline import Prepared, prepare
from relay.storage.trust import TrustSnapshot
from tests.helpers import key, make_alert

SIGNER, OTHER = key(51), key(52)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_controls = [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)]
# Display rules (docs/protocol.md): no format characters but ZWJ/ZWNJ, no U+2028/9.
_INVISIBLE = ("Cs", "Cf", "Zl", "Zp")
_JOINERS = "\u200c\u200d"
line = st.characters(
    exclude_categories=_INVISIBLE, exclude_characters=_controls, include_characters=_JOINERS
)
lines = st.characters(
    exclude_categories=_INVISIBLE,
    exclude_characters=[c for c in _controls if c not in "\n\t"],
    include_characters=_JOINERS,
)
headlines = st.text(line, min_size=1, max_size=140).filter(
    lambda h: any(unicodedata.category(c)[0] in "LMNPS" for c in h)
)
_SHORT_NETWORK = r"[a-z](-{0,2}[a-z0-9]){0,5}(\.[a-z](-{0,2}[a-z0-9]){0,5}){0,2}"
networks = st.from_regex(_SHORT_NETWORK, fullmatch=True).filter(valid_network)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
codes = st.from_regex(
    r"(fips:[0-9]{2,5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?)", fullmatch=True
)
areas = st.builds(
    Area,
    label=st.text(line, min_size=1, max_size=200),
    geohash=st.from_regex(r"[0-9b-hjkmnp-z]{4,9}", fullmatch=True),
    radius_m=st.integers(0, 50_000),
    codes=st.lists(codes, max_size=16, unique=True),
)
texts = st.dictionaries(
    st.from_regex(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}", fullmatch=True),
    st.builds(
        Text,
        headline=headlines,
        body=st.text(lines, max_size=2000),
        instruction=st.none() | st.text(lines, max_size=1000),
    ),
    min_size=1,
    max_size=8,
)


@st.composite
def alerts(draw: st.DrawFn, network: str | None = None) -> Alert:
    net = network or draw(networks)
    msg_type = draw(st.sampled_from(["alert", "update", "cancel"]))
    alert_id = f"{net}/{draw(st.from_regex(ULID_PATTERN, fullmatch=True))}"
    references: list[str] = []
    if msg_type != "alert":
        others = st.builds(
            "{}/{}".format, networks, st.from_regex(ULID_PATTERN, fullmatch=True)
        ).filter(lambda r: r != alert_id)
        references = draw(st.lists(others, min_size=1, max_size=4, unique=True))
    return Alert(
        id=alert_id,
        network=net,
        seq=draw(st.integers(1, 2**53 - 1)),
        msg_type=msg_type,  # type: ignore[arg-type]
        references=references,
        kind=draw(st.sampled_from(KINDS)),  # type: ignore[arg-type]
        certainty=draw(st.sampled_from(CERTAINTIES)),  # type: ignore[arg-type]
        observed_at=draw(moments),
        sent_at=draw(moments),
        expires_at=draw(moments),
        area=draw(areas),
        agencies=draw(
            st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,31}", fullmatch=True), max_size=8)
        ),
        text=draw(texts),
    )


# --- signatures ---------------------------------------------------------------------


@SETTINGS
@given(payload=st.binary(max_size=4096), payload_type=st.text(line, max_size=100))
def test_sign_then_verify_round_trips(payload: bytes, payload_type: str) -> None:
    keyring = Keyring([KeyEntry("net-s", SIGNER.public_key)])
    envelope = sign(payload, SIGNER, payload_type)
    opened, opened_payload = open_envelope(encode_envelope(envelope))
    assert opened == envelope and opened_payload == payload
    result = verify(opened, opened_payload, keyring)
    assert result.any_valid and not result.forged and result.valid_networks() == ["net-s"]


# --- canonical payloads -------------------------------------------------------------


@SETTINGS
@given(alert=alerts())
def test_decode_of_encode_is_the_identity(alert: Alert) -> None:
    encoded = encode_alert(alert)
    decoded = decode_alert(encoded)
    assert decoded == alert
    assert encode_alert(decoded) == encoded


@SETTINGS
@given(alert=alerts(), data=st.data())
def test_whatever_the_decoder_accepts_is_its_own_encoding(
    alert: Alert, data: st.DataObject
) -> None:
    encoded = bytearray(encode_alert(alert))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(b' \t\n\r,:{}[]"\\0123456789-.eEu'))
        if action == "insert":
            encoded[at:at] = bytes([byte])
        elif at < len(encoded):
            encoded[at : at + 1] = b"" if action == "delete" else bytes([byte])
    try:
        decoded = decode_alert(bytes(encoded))
    except (msgspec.DecodeError, msgspec.ValidationError, NonCanonical, ValueError):
        return
    assert encode_alert(decoded) == bytes(encoded)


# --- mutations of a signed envelope ---------------------------------------------------

SNAPSHOT = TrustSnapshot(
    policy=Policy(own_network="here", peers={}),
    keyring=Keyring([KeyEntry("here", SIGNER.public_key), KeyEntry("there", OTHER.public_key)]),
)


def _flip_byte(data: bytes, at: int, xor: int) -> bytes:
    changed = bytearray(data)
    changed[at % len(changed)] ^= xor
    return bytes(changed)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[Envelope, bytes, bytes, str]:
    """A signed envelope, its payload, a mutated copy's wire bytes, and what changed."""
    alert = draw(alerts(network="here"))
    payload = encode_alert(alert)
    envelope = sign(payload, SIGNER)
    signature = envelope.signatures[0]
    what = draw(st.sampled_from(["payload", "type", "sig", "keyid", "json"]))
    at, xor = draw(st.integers(0, 1 << 20)), draw(st.integers(1, 255))
    if what == "payload":
        changed = base64.b64encode(_flip_byte(payload, at, xor)).decode()
        mutated = Envelope(envelope.payloadType, changed, envelope.signatures)
    elif what == "type":
        new_type = draw(st.text(line, max_size=100).filter(lambda t: t != envelope.payloadType))
        mutated = Envelope(new_type, envelope.payload, envelope.signatures)
    elif what == "sig":
        sig = base64.b64encode(_flip_byte(base64.b64decode(signature.sig), at, xor)).decode()
        mutated = Envelope(
            envelope.payloadType, envelope.payload, [Signature(signature.keyid, sig)]
        )
    elif what == "keyid":
        other = draw(st.sampled_from([OTHER.keyid, "ed25519:" + "0" * 32, key(53).keyid]))
        mutated = Envelope(
            envelope.payloadType, envelope.payload, [Signature(other, signature.sig)]
        )
    else:
        raw = bytearray(encode_envelope(envelope))
        raw[at % len(raw)] = draw(st.integers(0, 255))
        return envelope, payload, bytes(raw), what
    return envelope, payload, encode_envelope(mutated), what


@SETTINGS
@given(case=mutations())
def test_any_change_to_a_signed_envelope_is_refused(
    case: tuple[Envelope, bytes, bytes, str],
) -> None:
    original, payload, raw, what = case
    prepared = prepare(raw, SNAPSHOT)
    if not isinstance(prepared, Prepared):
        return
    # Prepared means the signature held: only a change that left the same envelope may pass.
    assert what == "json", what
    assert prepared.envelope == original
    assert base64.b64decode(prepared.envelope.payload) == payload


def test_a_json_only_change_that_keeps_the_envelope_is_not_a_change() -> None:
    envelope = sign(encode_alert(_sample()), SIGNER)
    spaced = json.dumps(msgspec.to_builtins(envelope), indent=2).encode()
    prepared = prepare(spaced, SNAPSHOT)
    assert isinstance(prepared, Prepared) and prepared.envelope == envelope


def _sample() -> Alert:
    return make_alert("here")


# --- policy determinism -----------------------------------------------------------------


@SETTINGS
@given(
    alert=alerts(network="there"),
    endorse=st.booleans(),
    speaks_for=st.lists(codes | st.from_regex(r"[0-9b-hjkmnp-z]{1,4}", fullmatch=True), max_size=3),
    min_endorsements=st.integers(0, 3),
    on_fail=st.sampled_from(["hold", "reject"]),
    stored=st.sampled_from(["no", "held", "accepted"]),
    tombstone=st.sampled_from([None, "cancelled", "superseded", "rejected"]),
    recent=st.integers(0, 1000),
    now=moments,
)
def test_the_policy_answers_the_same_question_the_same_way(
    alert: Alert,
    endorse: bool,
    speaks_for: list[str],
    min_endorsements: int,
    on_fail: str,
    stored: str,
    tombstone: str | None,
    recent: int,
    now: datetime,
) -> None:
    signers = (OTHER, SIGNER) if endorse else (OTHER,)
    payload = encode_alert(alert)
    envelope = sign(payload, signers[0])
    if endorse:
        envelope = add_endorsement(envelope, payload, SIGNER)
    policy = Policy(
        own_network="here",
        peers={"there": PeerPolicy("there", speaks_for=tuple(speaks_for), rate_limit_per_min=500)},
        min_endorsements=min_endorsements,
        on_fail=on_fail,  # type: ignore[arg-type]
    )
    state = PolicyState(
        stored=stored, tombstone=tombstone, from_peer="there", recent_from_peer=recent
    )  # type: ignore[arg-type]
    verification = verify(envelope, payload, SNAPSHOT.keyring)
    first = decide(envelope, alert, verification, policy, state, now)
    # A fresh decode of the same bytes, a fresh verification: the same answer.
    again_envelope, again_payload = open_envelope(encode_envelope(envelope))
    again = decide(
        again_envelope,
        decode_alert(again_payload),
        verify(again_envelope, again_payload, SNAPSHOT.keyring),
        policy,
        state,
        now,
    )
    assert first == again == decide(envelope, alert, verification, policy, state, now)
    if first.accepted:
        assert alert.expires_at > now and not tombstone and stored != "accepted"
