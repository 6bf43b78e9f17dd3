"""Trust lists as pure rules: reading under every bound, signatures, the walk forward.

Table tests without an event loop: each case builds real signed versions
(``tests.trustlist_helpers``) and asserts the reason code the protocol
requires (docs/protocol.md §8).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import msgspec
import pytest

from keys.cards.trustdraft import DraftRequest, changes, draft, read_members
from keys.cards.trustlist import (
    MAX_LIST_BYTES,
    MAX_MEMBERS,
    TRUSTLIST_PAYLOAD_TYPE,
    Maintainers,
    OpenedList,
    TrustListRefused,
    encode_list,
    make_list,
    read_list,
    set_fingerprint,
    set_text,
)
from keys.cards.trustwalk import signers, walk
from relay.core.envelope import sign
from relay.core.model import encode_envelope
from tests.trustlist_helpers import (
    MAINTAINERS,
    T,
    chain,
    document,
    key_of,
    member,
    signed,
)

NOW = T + timedelta(days=5)


def fp(opened: OpenedList) -> str:
    return set_fingerprint(opened.document)


def envelope_bytes(payload: bytes, payload_type: str = TRUSTLIST_PAYLOAD_TYPE) -> bytes:
    return encode_envelope(sign(payload, key_of("ventura"), payload_type))


def refused_reading(raw: bytes) -> str:
    with pytest.raises(TrustListRefused) as caught:
        read_list(raw)
    return caught.value.reason


# --- reading ---------------------------------------------------------------------


def test_a_list_reads_back_to_the_same_document() -> None:
    v1 = chain(1)[0]
    assert read_list(v1.raw).document == v1.document
    assert v1.document.previous is None and v1.document.maintainers.threshold == 2


def test_ten_megabytes_are_refused_before_reading() -> None:
    raw = b'{"payloadType":"x","payload":"' + b"A" * (10 * 1024 * 1024) + b'"}'
    assert refused_reading(raw) == "too_large"


def test_ten_thousand_members_are_refused() -> None:
    base = msgspec.to_builtins(document())
    one = base["members"][0]
    base["members"] = [dict(one, network=f"m{i:05d}") for i in range(10_000)]
    payload = json.dumps(base, separators=(",", ":")).encode()
    assert refused_reading(envelope_bytes(payload)) == "too_large"
    base["members"] = base["members"][: MAX_MEMBERS + 1]
    payload = json.dumps(base, separators=(",", ":")).encode()
    assert len(payload) < MAX_LIST_BYTES // 2
    assert refused_reading(envelope_bytes(payload)) == "malformed"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"payloadType":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}',
        b"not json",
    ],
)
def test_deep_or_loose_json_in_the_envelope_is_malformed(raw: bytes) -> None:
    assert refused_reading(raw) == "malformed"


def test_deep_json_in_the_payload_is_malformed() -> None:
    payload = b'{"list":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert refused_reading(envelope_bytes(payload)) == "malformed"


def test_the_wrong_payload_type_is_refused() -> None:
    payload = encode_list(document())
    raw = envelope_bytes(payload, "application/vnd.avisa.keys.v1+json")
    assert refused_reading(raw) == "wrong_payload_type"


def test_a_payload_in_another_spelling_is_malformed() -> None:
    payload = json.dumps(msgspec.to_builtins(document()), indent=1).encode()
    assert refused_reading(envelope_bytes(payload)) == "malformed"


def _payload_with(**changes: object) -> bytes:
    tree = msgspec.to_builtins(document())
    tree.update(changes)
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"expires_at": "2027-02-22T12:00:01Z"}, "90 days"),
        ({"expires_at": "2026-11-23T12:00:00Z"}, "90 days"),
        ({"previous": "ab" * 32}, "previous is null"),
        ({"version": 0}, ">= 1"),
        ({"maintainers": {"networks": ["la-rrn", "nobody"], "threshold": 1}}, "not a member"),
        ({"maintainers": {"networks": ["ventura", "la-rrn"], "threshold": 1}}, "sorted"),
        ({"maintainers": {"networks": ["la-rrn"], "threshold": 2}}, "threshold is more"),
        ({"issued_at": "2026-11-23T12:00:00.5Z"}, "whole seconds"),
        ({"issued_at": "2026-11-23T12:00:00+00:00"}, "canonical form"),
        ({"list": "Socal"}, "matching regex"),
    ],
)
def test_payload_rules(changes: dict[str, object], why: str) -> None:
    with pytest.raises(TrustListRefused, match=why) as caught:
        read_list(envelope_bytes(_payload_with(**changes)))
    assert caught.value.reason == "malformed"


def test_members_are_sorted_unique_and_never_share_a_key() -> None:
    tree = msgspec.to_builtins(document())
    members = tree["members"]
    for bad, why in [
        (list(reversed(members)), "sorted"),
        ([*members, members[-1]], "sorted"),
        ([members[0], dict(members[1], keys=members[0]["keys"])], "listed twice"),
        ([dict(members[0], speaks_for=["fips:06111", "fips:06111"]), *members[1:]], "twice"),
        ([dict(members[0], speaks_for=["fips:6"]), *members[1:]], "speaks_for"),
        ([dict(members[0], url="https://x/?q"), *members[1:]], "url"),
    ]:
        payload = _payload_with(members=bad)
        with pytest.raises(TrustListRefused, match=why):
            read_list(envelope_bytes(payload))


def test_make_list_sorts_and_refuses_what_a_reader_would() -> None:
    made = document(maintainers=("ventura", "la-rrn"), extra=("z-net", "a-net"))
    assert [m.network for m in made.members] == sorted(m.network for m in made.members)
    with pytest.raises(TrustListRefused, match="90 days"):
        document(days=91)
    with pytest.raises(TrustListRefused, match="not a member"):
        make_list("socal", 1, T, T + timedelta(days=1), Maintainers(["ventura"], 1), [], None)


# --- the maintainer set's fingerprint ---------------------------------------------


def test_the_set_fingerprint_names_list_threshold_and_maintainer_keys() -> None:
    v1 = chain(1)[0]
    text = set_text(v1.document).decode()
    lines = text.splitlines()
    assert lines[:3] == ["avisa-trustlist-maintainers-v1", "list socal", "threshold 2"]
    assert lines[3:] == sorted(f"{n} {key_of(n).public_key.hex()}" for n in MAINTAINERS)
    assert text.endswith("\n") and len(fp(v1).split()) == 6
    assert fp(signed(document(extra=("other",)), ["ventura", "la-rrn"])) == fp(v1)
    assert set_fingerprint(document(threshold=3)) != fp(v1)
    assert set_fingerprint(document(maintainers=MAINTAINERS[:2])) != fp(v1)


# --- signatures and the walk -------------------------------------------------------


def test_a_valid_chain_walks_forward_from_nothing() -> None:
    versions = chain(3)
    result = walk(None, list(reversed(versions)), NOW, fp(versions[0]))
    assert result.refusal is None
    assert [v.version for v in result.accepted] == [1, 2, 3]
    again = walk(versions[2], [versions[2]], NOW)
    assert again.accepted == () and again.refusal is None


def _reason(held: OpenedList | None, *candidates: OpenedList, typed: str = "") -> str | None:
    result = walk(held, list(candidates), NOW, typed)
    return None if result.refusal is None else result.refusal.reason


def test_rollback_skipped_and_broken_chain() -> None:
    v1, v2, v3 = chain(3)
    assert _reason(v2, v1) == "rollback"
    assert _reason(v1, v3) == "skipped_version"
    assert _reason(None, v2, typed=fp(v1)) == "skipped_version"
    assert _reason(v1, v2, v3) is None
    stranger = signed(document(2, previous=v3), MAINTAINERS[:2])
    assert _reason(v1, stranger) == "broken_chain"
    other = signed(document(2, extra=("x-net",), previous=v1), MAINTAINERS[1:])
    assert _reason(v1, other) is None


def test_below_threshold_and_signers_report() -> None:
    v1 = signed(document(), ["ventura"])
    assert _reason(None, v1, typed=fp(v1)) == "below_threshold"
    who = signers(v1, None)
    assert who.signed == {"ventura"} and who.missing == ("la-rrn", "oc.resilience")


def test_unknown_and_bad_signatures_are_refused() -> None:
    v1 = signed(document(), ["ventura", "la-rrn", "santa-ana"])
    assert _reason(None, v1, typed=fp(v1)) == "unknown_signer"
    good = signed(document(), ["ventura", "la-rrn"])
    sig = good.envelope.signatures[1]
    forged = bytearray(base64.b64decode(sig.sig))
    forged[0] ^= 1
    raw = good.raw.replace(sig.sig.encode(), base64.b64encode(bytes(forged)))
    assert _reason(None, read_list(raw), typed=fp(good)) == "bad_signature"


def test_the_fingerprint_must_match_version_one() -> None:
    v1 = chain(1)[0]
    assert _reason(None, v1, typed="00000 00000 00000 00000 00000 00000") == "fingerprint_mismatch"
    assert _reason(None, v1, typed=fp(v1).replace(" ", "-")) is None


def test_a_new_maintainer_set_needs_the_old_sets_threshold() -> None:
    v1 = chain(1)[0]
    new_set = ("east-la", "long-beach", "pomona")
    doc = document(2, maintainers=new_set, extra=("santa-ana",), previous=v1)
    assert _reason(v1, signed(doc, new_set)) == "old_threshold_missing"
    assert _reason(v1, signed(doc, [*new_set[:2], "ventura"])) == "old_threshold_missing"
    both = signed(doc, [*new_set[:2], "ventura", "la-rrn"])
    assert _reason(v1, both) is None
    assert walk(v1, [both], NOW).accepted == (both,)


def test_equivocation_is_kept_as_evidence() -> None:
    v1, v2 = chain(2)
    twin = signed(document(2, extra=("santa-ana", "x-net"), previous=v1), MAINTAINERS[1:])
    result = walk(v2, [twin], NOW)
    assert result.refusal is not None and result.refusal.reason == "equivocation"
    assert result.evidence == (twin,)
    unsigned = signed(document(2, extra=("x-net",), previous=v1), ["ventura"])
    assert _reason(v2, unsigned) == "below_threshold"
    more_signatures = signed(v2.document, MAINTAINERS)
    assert _reason(v2, more_signatures) is None


def test_an_expired_version_is_refused_unless_a_newer_one_replaces_it() -> None:
    v1, v2 = chain(2)
    late = T + timedelta(days=31)
    assert walk(None, [v1], late, fp(v1)).refusal.reason == "expired"  # type: ignore[union-attr]
    fresh = signed(document(2, previous=v1, issued_at=late - timedelta(days=1)), MAINTAINERS[:2])
    result = walk(None, [v1, fresh], late, fp(v1))
    assert result.refusal is None and [v.version for v in result.accepted] == [1, 2]
    result = walk(None, [v1, v2], late + timedelta(days=1), fp(v1))
    assert result.accepted == () and result.refusal is not None
    assert result.refusal.reason == "expired"


def test_a_version_from_the_future_is_refused() -> None:
    v1 = signed(document(issued_at=NOW + timedelta(hours=1)), MAINTAINERS[:2])
    assert _reason(None, v1, typed=fp(v1)) == "from_future"


def test_a_maintainer_key_counts_only_while_the_list_says_it_is_valid() -> None:
    doc = document()
    rotated = [
        msgspec.structs.replace(
            m, keys=[msgspec.structs.replace(m.keys[0], valid_until=T - timedelta(days=1))]
        )
        if m.network == "la-rrn"
        else m
        for m in doc.members
    ]
    doc = msgspec.structs.replace(doc, members=rotated)
    v1 = signed(doc, ["ventura", "la-rrn"])
    assert _reason(None, v1, typed=fp(v1)) == "below_threshold"


def test_another_list_is_not_a_next_version() -> None:
    v1 = chain(1)[0]
    other = make_list(
        "norcal",
        2,
        T,
        T + timedelta(days=3),
        Maintainers(["ventura"], 1),
        [member("ventura")],
        v1.digest,
    )
    assert _reason(v1, signed(other, ["ventura"])) == "wrong_list"


# --- drafting --------------------------------------------------------------------


def test_a_draft_carries_the_previous_version_over_and_says_what_changed() -> None:
    v1 = chain(1)[0]
    request = DraftRequest(remove=["santa-ana"], add=[member("pomona", ["fips:06037"])])
    v2 = draft(v1, request, NOW)
    assert v2.version == 2 and v2.previous == v1.digest and v2.list == "socal"
    assert v2.expires_at - v2.issued_at == timedelta(days=30)
    assert changes(v1.document, v2) == [
        "member added: pomona (speaks for fips:06037)",
        "member removed: santa-ana",
    ]
    again = draft(None, DraftRequest(threshold=3, days=7), NOW, editing=v2)
    assert (again.version, again.previous) == (2, v1.digest)
    assert changes(v2, again) == ["threshold: 2 -> 3"]
    with pytest.raises(TrustListRefused, match="--days"):
        draft(v1, DraftRequest(days=91), NOW)
    with pytest.raises(TrustListRefused, match="--list"):
        draft(None, DraftRequest(), NOW)
    with pytest.raises(TrustListRefused, match="members file"):
        read_members(b'[{"network": "x"}]')
