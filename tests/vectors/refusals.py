"""``refused.json``: envelopes a receiver must refuse, each with the reason it must give.

Each case is an envelope signed by ``ventura``'s key (trusted by the receiver,
``la-rrn``), made from the one alert of ``tests.vectors.base`` by a small
edit. The generator runs the node's own pipeline on every case (``prepare``,
then ``decide`` at ``T`` for the rules of meaning of docs/protocol.md §3.8) and
refuses to write a file where the node disagrees with the protocol.

``id`` is what the node's ``{"results": [...]}`` holds for the envelope: null
for every refusal of §3.7 steps 1–7, the alert's id once its payload was read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import msgspec

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import sign
from relay.core.model import Envelope, Signature, Text, encode_alert, encode_envelope
from relay.core.policy import Policy, PolicyState, decide
from relay.runtime.pipeline import Prepared, prepare
from relay.storage.trust import TrustSnapshot
from tests.vectors.base import SEEDS, T, b64, node_key, the_alert

Case = tuple[str, str, str, Callable[[], bytes]]
SENT_AT = '"sent_at":"2026-11-23T12:00:00Z"'


def _alert_with(**changes: Any) -> str:
    return encode_alert(msgspec.structs.replace(the_alert(), **changes)).decode("utf-8")


def _text(headline: str) -> dict[str, Text]:
    return {"en": Text(headline=headline, body="x")}


def _sent_at(spelling: str) -> str:
    return _good().replace(SENT_AT, f'"sent_at":"{spelling}"')


def _good() -> str:
    return encode_alert(the_alert()).decode("utf-8")


def _signed(payload: str | bytes) -> Callable[[], bytes]:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return lambda: encode_envelope(sign(data, node_key("ventura")))


def _flipped(sig: str) -> str:
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    return b64(bytes(raw))


def _with_signatures(*edit: Callable[[list[Signature]], list[Signature]]) -> Callable[[], bytes]:
    def make() -> bytes:
        envelope = sign(_good().encode("utf-8"), node_key("ventura"))
        signatures = list(envelope.signatures)
        for change in edit:
            signatures = change(signatures)
        return encode_envelope(Envelope(envelope.payloadType, envelope.payload, signatures))

    return make


def _others(count: int) -> Callable[[list[Signature]], list[Signature]]:
    return lambda sigs: [
        *sigs,
        *(Signature(NodeKey.from_seed(bytes([n]) * 32).keyid, sigs[0].sig) for n in range(count)),
    ]


def _bad_copy(first: bool) -> Callable[[list[Signature]], list[Signature]]:
    def change(sigs: list[Signature]) -> list[Signature]:
        forged = Signature(sigs[0].keyid, _flipped(sigs[0].sig))
        return [forged, sigs[0]] if first else [sigs[0], forged]

    return change


def _padded(size: int) -> Callable[[], bytes]:
    def make() -> bytes:
        raw = encode_envelope(sign(_good().encode("utf-8"), node_key("ventura")))
        return b"{" + b" " * (size - len(raw)) + raw[1:]

    return make


def _protocol_cases() -> list[Case]:
    """The refusals of the first edition of refused.json, in their order."""
    good = _good()
    ulid_id = the_alert().id.split("/")[1]
    null = _alert_with(text=_text("Vehicles")).replace(
        '"body":"x"}', '"body":"x","instruction":null}'
    )
    nine = {lang: Text("x", "x") for lang in ("en", "es", "fr", "de", "it", "pt", "zh", "vi", "ko")}
    refs = '"references":["ventura/' + ulid_id + '"]'
    return [
        ("whitespace", "a space after a colon", "non_canonical",
         _signed(good.replace('"seq":42', '"seq": 42'))),
        ("u_escape", "\\u00e9 instead of the raw UTF-8 é", "non_canonical",
         _signed(good.replace("Retén", "Ret\\u00e9n"))),
        ("escaped_slash", "\\/ instead of /", "non_canonical",
         _signed(good.replace("Oxnard", "Oxnard\\/CA"))),
        ("null_optional", "instruction: null instead of absent", "malformed_payload",
         _signed(null)),
        ("fraction", "time with one fractional digit", "malformed_payload",
         _signed(_sent_at("2026-11-23T12:00:00.5Z"))),
        ("offset", "time with +00:00 instead of Z", "malformed_payload",
         _signed(_sent_at("2026-11-23T12:00:00+00:00"))),
        ("duplicate_key", "seq given twice", "malformed_payload",
         _signed(good.replace('"seq":42', '"seq":41,"seq":42'))),
        ("float", "seq written as 42.0", "malformed_payload",
         _signed(good.replace('"seq":42', '"seq":42.0'))),
        ("unknown_field", "a field the schema lacks", "malformed_payload",
         _signed(good.replace('"seq":42', '"seq":42,"hops":1'))),
        ("ulid_overflow", "a ULID above 2^128 (first digit 8)", "malformed_payload",
         _signed(good.replace(ulid_id, "8" + ulid_id[1:]))),
        ("network", "network id starting with a digit", "malformed_payload",
         _signed(good.replace('"ventura', '"1ventura'))),
        ("seq_zero", "seq 0 (seq runs from 1 to 2^53-1)", "malformed_payload",
         _signed(_alert_with(seq=0))),
        ("seq_2_53", "seq 2^53", "malformed_payload", _signed(_alert_with(seq=2**53))),
        ("bidi_override", "U+202E RIGHT-TO-LEFT OVERRIDE in a headline", "malformed_payload",
         _signed(_alert_with(text=_text("CBP \u202eEREH ON")))),
        ("zero_width_space", "U+200B ZERO WIDTH SPACE in a headline", "malformed_payload",
         _signed(_alert_with(text=_text("CBP\u200b checkpoint")))),
        ("line_separator", "U+2028 LINE SEPARATOR in a headline", "malformed_payload",
         _signed(_alert_with(text=_text("CBP\u2028checkpoint")))),
        ("blank_headline", "a headline of spaces only", "malformed_payload",
         _signed(_alert_with(text=_text(" \u3000 ")))),
        ("nine_languages", "nine languages (at most 8)", "malformed_payload",
         _signed(_alert_with(text=nine))),
        ("duplicate_code", "an area code listed twice", "malformed_payload",
         _signed(good.replace('"zip:93033"', '"fips:06111"'))),
        ("references_on_alert", "an alert that references another", "malformed_payload",
         _signed(good.replace('"references":[]', refs))),
        ("seventeen_signatures", "17 signatures", "too_many_signatures",
         _with_signatures(_others(16))),
        ("bad_signature", "one bit of the signature flipped", "bad_signature",
         _with_signatures(lambda sigs: [Signature(sigs[0].keyid, _flipped(sigs[0].sig))])),
    ]  # fmt: skip


TIMES = [  # (name, spelling): every one malformed_payload, docs/protocol.md §3.5
    ("time_lowercase_t", "2026-11-23t12:00:00Z"),
    ("time_space", "2026-11-23 12:00:00Z"),
    ("time_lowercase_z", "2026-11-23T12:00:00z"),
    ("time_minus_zero", "2026-11-23T12:00:00-00:00"),
    ("time_plus_one", "2026-11-23T13:00:00+01:00"),
    ("time_no_colon_offset", "2026-11-23T12:00:00+0000"),
    ("time_zero_fraction", "2026-11-23T12:00:00.000000Z"),
    ("time_3_digits", "2026-11-23T12:00:00.500Z"),
    ("time_7_digits", "2026-11-23T12:00:00.5000001Z"),
    ("time_9_digits", "2026-11-23T12:00:00.500000001Z"),
    ("time_leap_second", "2026-11-23T11:59:60Z"),
    ("time_no_seconds", "2026-11-23T12:00Z"),
]


def _added_cases() -> list[Case]:
    """The rules issue 27 asked to state, each one refused payload or envelope."""
    good = _good()
    the_id = the_alert().id
    keyid = node_key("ventura").keyid
    update = _alert_with(msg_type="update", references=["la-rrn/" + the_id.split("/")[1]])
    late = _alert_with(observed_at=T.replace(minute=1))
    utf8 = good.encode("utf-8")
    return [
        *((name, f"time written {spelling}", "malformed_payload", _signed(_sent_at(spelling)))
          for name, spelling in TIMES),
        ("null_required", "seq: null", "malformed_payload",
         _signed(good.replace('"seq":42', '"seq":null'))),
        ("duplicate_key_invalid_first", "seq given twice, the first out of range",
         "malformed_payload", _signed(good.replace('"seq":42', '"seq":0,"seq":42'))),
        ("duplicate_key_same_value", "seq given twice with the same value", "malformed_payload",
         _signed(good.replace('"seq":42', '"seq":42,"seq":42'))),
        ("trailing_garbage", "a byte after the JSON value", "malformed_payload",
         _signed(good + "x")),
        ("byte_order_mark", "a UTF-8 byte order mark before the value", "malformed_payload",
         _signed(b"\xef\xbb\xbf" + utf8)),
        ("invalid_utf8", "the byte E9 (Latin-1 é) where UTF-8 is due", "malformed_payload",
         _signed(utf8.replace("Retén".encode(), b"Ret\xe9n"))),
        ("lone_surrogate", "\\ud800 escaped alone in a string", "malformed_payload",
         _signed(good.replace("Retén", "Ret\\ud800n"))),
        ("trailing_whitespace", "a line feed after the value", "non_canonical",
         _signed(good + "\n")),
        ("escaped_surrogate_pair", "\\ud83d\\ude00 instead of the raw UTF-8 emoji",
         "non_canonical", _signed(good.replace("Retén", "Ret\\ud83d\\ude00n"))),
        ("hangul_filler_headline", "a headline of U+3164 HANGUL FILLER only",
         "malformed_payload", _signed(_alert_with(text=_text("\u3164")))),
        ("variation_selector_headline", "a headline of U+FE0F VARIATION SELECTOR-16 only",
         "malformed_payload", _signed(_alert_with(text=_text("\ufe0f")))),
        ("keyid_upper_case", "a keyid in upper-case hex", "malformed",
         _with_signatures(lambda s: [Signature("ed25519:" + keyid[8:].upper(), s[0].sig)])),
        ("keyid_short", "a keyid of 31 hex digits", "malformed",
         _with_signatures(lambda s: [Signature(keyid[:-1], s[0].sig)])),
        ("keyid_twice_good_first", "the signer's keyid again with a bad signature", "malformed",
         _with_signatures(_bad_copy(first=False))),
        ("keyid_twice_bad_first", "a bad signature, then the signer's good one", "malformed",
         _with_signatures(_bad_copy(first=True))),
        ("too_large_as_sent", "65,537 bytes, spaces inside the envelope counted", "too_large",
         _padded(65_537)),
        ("bad_times", "observed_at after sent_at", "bad_times", _signed(late)),
        ("foreign_reference", "an update that references another network's alert",
         "foreign_reference", _signed(update)),
    ]  # fmt: skip


def _receiver() -> TrustSnapshot:
    key = node_key("ventura")
    return TrustSnapshot(Policy("la-rrn"), Keyring([KeyEntry("ventura", key.public_key)]))


def _node_says(raw: bytes, snapshot: TrustSnapshot) -> tuple[str | None, str]:
    """The id and reason the node gives: the pipeline's refusal, or the decision at ``T``."""
    outcome = prepare(raw, snapshot)
    if not isinstance(outcome, Prepared):
        return None, outcome.reason
    alert = outcome.incoming.alert
    decision = decide(
        outcome.envelope, alert, outcome.verification, snapshot.policy, PolicyState(), T
    )
    return alert.id, decision.reason


def refused() -> dict[str, Any]:
    snapshot = _receiver()
    vectors = []
    for name, why, reason, make in [*_protocol_cases(), *_added_cases()]:
        raw = make()
        alert_id, got = _node_says(raw, snapshot)
        if got != reason:
            raise AssertionError(f"{name}: the node says {got}, the protocol says {reason}")
        payload = base64.b64decode(json.loads(raw)["payload"])
        try:
            text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        vectors.append(
            {
                "name": name,
                "why": why,
                "reason": reason,
                "id": alert_id,
                "payload": text,
                "payload_b64": b64(payload),
                "envelope": raw.decode("utf-8"),
            }
        )
    return {
        "trusted_key": {"network": "ventura", "seed": SEEDS["ventura"]},
        "receiver": {"network": "la-rrn", "now": "2026-11-23T12:00:00Z"},
        "refused": vectors,
    }
