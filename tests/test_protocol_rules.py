"""The rules an independent implementation asked docs/protocol.md to state (issue 27), each
checked on the node: in the core where the rule is pure, on a real server where it is HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from keys.cards.card import KeyDocumentError, verify_key_document
from keys.core.keyring import KeyEntry, Keyring
from relay.core.envelope import open_and_check, sign
from relay.core.errors import BadInput, Unauthorized
from relay.core.model import (
    BLANK,
    Envelope,
    Signature,
    Text,
    decode_alert,
    encode_alert,
    encode_envelope,
    valid_node_url,
)
from relay.core.policy import Policy
from relay.federation import auth
from relay.federation.inbound import parse_transaction
from relay.runtime.clock import FakeClock
from relay.runtime.pipeline import Prepared, prepare
from relay.storage.trust import TrustSnapshot
from tests.fedkit import Member, members
from tests.helpers import envelope_for, make_alert, raw_envelope
from tests.test_federation_inbound import A_KEY, add_peer, dump, signed, txn
from tests.test_protocol_holes import pae_signed
from tests.vectors import base, refusals

SNAPSHOT = TrustSnapshot(Policy("net-b"), Keyring([KeyEntry("net-a", A_KEY.public_key)]))


@pytest.fixture
async def b(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Member]:
    """Node net-b, trusting net-a (whose key is A_KEY) and endorsing what it relays."""
    async with members(tmp_path, clock, ["net-b"]) as net:
        await add_peer(net["net-b"], "net-a", A_KEY, rate_limit_per_min=600, endorse=True)
        yield net["net-b"]


def _results(reply: bytes) -> list[tuple[str | None, str, str]]:
    return [(r["id"], r["status"], r["reason"]) for r in json.loads(reply)["results"]]


def _reason(payload: bytes) -> str:
    """What the node says of ``payload`` signed by a trusted key, before its policy."""
    outcome = prepare(_signed_by_a(payload), SNAPSHOT)
    return "ok" if isinstance(outcome, Prepared) else outcome.reason


def _signed_by_a(payload: bytes) -> bytes:
    return encode_envelope(sign(payload, A_KEY))


# --- a keyid signs once ---------------------------------------------------------------


def _twice(good_first: bool) -> bytes:
    envelope = envelope_for(make_alert("net-a"), A_KEY)
    good = envelope.signatures[0]
    forged = Signature(good.keyid, ("B" if good.sig[0] == "A" else "A") + good.sig[1:])
    signatures = [good, forged] if good_first else [forged, good]
    return encode_envelope(Envelope(envelope.payloadType, envelope.payload, signatures))


def test_a_keyid_signing_twice_is_malformed_whichever_copy_is_good() -> None:
    for good_first in (True, False):
        assert open_and_check(_twice(good_first), SNAPSHOT.keyring.public_key) == "malformed"
        assert prepare(_twice(good_first), SNAPSHOT).reason == "malformed"  # type: ignore[union-attr]


def _kept(b: Member) -> list[str]:
    """What an accepted alert would leave: its row, its feed entry, its outbox rows."""
    tables = ('INSERT INTO "alerts"', 'INSERT INTO "feed"', 'INSERT INTO "outbox"')
    return [line for line in dump(b) if line.startswith(tables)]


async def test_a_repeated_keyid_is_refused_from_a_peer_and_never_relayed(b: Member) -> None:
    before = _kept(b)
    status, reply = await signed(
        b, "PUT", "/federation/v1/send/twice", txn(_twice(True), _twice(False))
    )
    assert status == 200
    assert _results(reply) == [(None, "rejected", "malformed")] * 2
    assert _kept(b) == before == []  # no alert, no outbox row: nothing to relay
    alone = raw_envelope(make_alert("net-a"), A_KEY)
    status, reply = await signed(b, "PUT", "/federation/v1/send/once", txn(alone))
    assert [status for _, status, _ in _results(reply)] == ["accepted"]
    assert _kept(b) != []  # the same alert with one signature is kept (and relayed)


# --- payloads: one reading, one reason ------------------------------------------------

GOOD = encode_alert(make_alert("net-a")).decode()
SENT = '"sent_at":"2026-11-23T12:00:00Z"'


@pytest.mark.parametrize(("name", "spelling"), refusals.TIMES)
def test_every_other_time_spelling_is_malformed_payload(name: str, spelling: str) -> None:
    assert SENT in GOOD
    assert _reason(GOOD.replace(SENT, f'"sent_at":"{spelling}"').encode()) == "malformed_payload"


def test_whole_seconds_and_six_digits_are_the_spellings_of_a_time() -> None:
    for spelling in ("2026-11-23T12:00:00Z", "2026-11-23T12:00:00.000001Z"):
        assert _reason(GOOD.replace(SENT, f'"sent_at":"{spelling}"').encode()) == "ok"


@pytest.mark.parametrize(
    ("edited", "reason"),
    [
        (GOOD.replace('"agencies":["ice"]', '"agencies":null'), "malformed_payload"),
        (
            GOOD.replace('two volunteers."}', 'two volunteers.","instruction":null}'),
            "malformed_payload",
        ),
        (GOOD.replace('"seq":1', '"seq":1,"seq":1'), "malformed_payload"),
        (GOOD.replace('"seq":1', '"seq":0,"seq":1'), "malformed_payload"),
        (GOOD.replace('"seq":1', '"seq":1,"seq":0'), "malformed_payload"),
        (GOOD + "]", "malformed_payload"),
        ("\ufeff" + GOOD, "malformed_payload"),
        (GOOD.replace("Colonia park", "Colonia \\udc00park"), "malformed_payload"),
        (GOOD + " \r\n\t", "non_canonical"),
        (GOOD.replace('"seq":1', '"seq" :1'), "non_canonical"),
        (GOOD.replace("Colonia park", "Colonia \\ud83d\\ude00park"), "non_canonical"),
        (GOOD.replace("Colonia park", "Colonia p\\u0061rk"), "non_canonical"),
    ],
)
def test_bad_json_is_malformed_payload_and_only_spelling_is_non_canonical(
    edited: str, reason: str
) -> None:
    assert edited != GOOD
    assert _reason(edited.encode()) == reason


def test_invalid_utf8_is_malformed_payload() -> None:
    assert (
        _reason(GOOD.encode().replace(b"Colonia park", b"Colonia \xe9park")) == "malformed_payload"
    )


async def test_the_payload_rules_hold_on_the_wire(b: Member) -> None:
    """One transaction: a time, a null, a duplicate member, trailing garbage, whitespace."""
    bad = [
        GOOD.replace(SENT, '"sent_at":"2026-11-23T12:00:00+00:00"'),
        GOOD.replace('two volunteers."}', 'two volunteers.","instruction":null}'),
        GOOD.replace('"seq":1', '"seq":1,"seq":1'),
        GOOD + "x",
        GOOD + "\n",
    ]
    raws = [_signed_by_a(payload.encode()) for payload in bad]
    status, reply = await signed(b, "PUT", "/federation/v1/send/payload-rules", txn(*raws))
    assert status == 200
    assert [reason for _, _, reason in _results(reply)] == [
        *["malformed_payload"] * 4,
        "non_canonical",
    ]


# --- visible characters ---------------------------------------------------------------


def _headline(headline: str) -> str:
    try:
        decode_alert(
            encode_alert(msgspec.structs.replace(make_alert(), text={"en": Text(headline, "")}))
        )
    except msgspec.ValidationError:
        return "refused"
    return "ok"


def test_a_headline_needs_a_character_that_is_neither_white_space_nor_ignorable() -> None:
    for blank in ("\u3164", "\ufe0f", "\u115f\u1160", "\u034f ", "\U000e0100", "\u2000\u205f"):
        assert _headline(blank) == "refused", ascii(blank)
    # Private use and unassigned code points show as a glyph or a box: visible, so the
    # rule needs no Unicode table and means the same on every release.
    for shown in ("\ue000", "\U000f0000", "\u0378", "\U0001fae8", "\u2800", "\u0301", "x"):
        assert _headline(shown) == "ok", ascii(shown)


def test_every_white_space_character_is_blank() -> None:
    blank = re.compile("[" + BLANK + "]")
    for code in range(0x110000):
        char = chr(code)
        if char.isspace() and unicodedata.category(char) != "Cc":
            assert blank.match(char), f"U+{code:04X}"


# --- envelopes in a transaction: their bytes as sent --------------------------------


def _padded(headline: str, size: int) -> bytes:
    raw = raw_envelope(make_alert("net-a", headline=headline), A_KEY)
    return b"{" + b" " * (size - len(raw)) + raw[1:]


async def test_an_envelope_is_measured_as_sent_inside_the_transaction(b: Member) -> None:
    exact, over = _padded("Exactly the limit", 65_536), _padded("One byte over", 65_537)
    assert (len(exact), len(over)) == (65_536, 65_537)
    body = b'{"envelopes":[' + b" " * 1000 + exact + b" ,\n" + over + b"]}"
    status, reply = await signed(b, "PUT", "/federation/v1/send/sizes", body)
    assert status == 200
    assert [(s, r) for _, s, r in _results(reply)] == [
        ("accepted", "authoritative"),
        ("rejected", "too_large"),
    ]


async def test_id_is_null_until_the_payload_was_read(b: Member) -> None:
    alert = make_alert("net-a")
    good = raw_envelope(alert, A_KEY)
    spaced = _signed_by_a(GOOD.replace('"seq":1', '"seq": 1').encode())
    late = make_alert("net-a", observed_at=alert.sent_at.replace(minute=5), headline="Late")
    foreign = make_alert("net-a", msg_type="update", references=["net-c/" + alert.id[6:]])
    crowded = make_alert("net-a", headline="Crowded")
    upper = good.replace(A_KEY.keyid.encode(), b"ed25519:" + A_KEY.keyid[8:].upper().encode())
    raws = [
        good,
        good,
        spaced,
        b"[]",
        upper,
        raw_envelope(late, A_KEY),
        raw_envelope(foreign, A_KEY),
        *(pae_signed(encode_alert(crowded), n) for n in (9, 17)),
    ]
    status, reply = await signed(b, "PUT", "/federation/v1/send/ids", txn(*raws))
    assert _results(reply) == [
        (alert.id, "accepted", "authoritative"),
        (alert.id, "duplicate", "duplicate"),
        (None, "rejected", "non_canonical"),
        (None, "rejected", "malformed"),
        (None, "rejected", "malformed"),  # an off-grammar keyid is not an unknown key
        (late.id, "rejected", "bad_times"),
        (foreign.id, "rejected", "foreign_reference"),
        (crowded.id, "rejected", "too_many_signatures"),  # over the policy's cap of 8
        (None, "rejected", "too_many_signatures"),  # over the protocol's 16
    ]


async def test_each_element_is_judged_alone_however_the_body_is_spaced(b: Member) -> None:
    good = raw_envelope(make_alert("net-a"), A_KEY)
    doubled = good[:-1] + b',"payload":"e30="}'
    odd = [doubled, b"1.5", b'"\xff"', b'"\\ud800"', b"[[[]]]"]
    for n, body in enumerate(
        (txn(*odd, good), b' { "envelopes" : [\n' + b" ,".join([*odd, good]) + b" ] }\n")
    ):
        status, reply = await signed(b, "PUT", f"/federation/v1/send/alone-{n}", body)
        assert status == 200, reply
        reasons = [reason for _, _, reason in _results(reply)]
        assert reasons == ["malformed"] * 5 + (["authoritative"] if n == 0 else ["duplicate"])


ELEMENTS = [
    b"1",
    b"1.5",
    b"-0",
    b'"\\ud800"',
    b'"\xff"',
    b'{"a":1,"a":2}',
    b"[]",
    b"null",
    b"1e400",
]


def test_spacing_never_changes_how_a_transaction_is_read() -> None:
    """The compact body senders build and any spacing of it give the same elements (or
    the same errcode), element by element as sent."""

    def read(body: bytes) -> list[bytes] | str:
        try:
            return parse_transaction(body)
        except BadInput as exc:
            return exc.errcode

    picks = [list(ELEMENTS[i : i + n]) for i in range(len(ELEMENTS)) for n in (0, 1, 3)]
    for elements in [*picks, ELEMENTS * 5, ELEMENTS * 6]:
        compact = b'{"envelopes":[' + b",".join(elements) + b"]}"
        spaced = b'\n{ "envelopes" :\t[ ' + b" ,\r\n".join(elements) + b" ] }  "
        assert read(compact) == read(spaced), compact
    assert read(b'{"envelopes":[' + b",".join(ELEMENTS) + b"]}") == ELEMENTS
    assert read(b'{"envelopes":[' + b",".join([b"1"] * 51) + b"]}") == "AVISA_TOO_MANY_ENVELOPES"
    # Over 50, the body is read as a whole: not strict anywhere is AVISA_BAD_JSON.
    assert read(b'{"envelopes":[' + b",".join(ELEMENTS * 6) + b"]}") == "AVISA_BAD_JSON"


# --- errcodes of the federation endpoints ---------------------------------------------


async def test_the_errcode_table(b: Member) -> None:
    status, reply = await signed(b, "PUT", "/federation/v1/send/empty", b'{"envelopes":[]}')
    assert (status, json.loads(reply)) == (200, {"results": []})
    status, reply = await signed(b, "PUT", "/federation/v1/send/", txn())
    assert (status, json.loads(reply)["errcode"]) == (404, "AVISA_NOT_FOUND")
    for query in ("since=0&since=5", "limit=5&limit=6", "since=%2B1", "limit=0"):
        status, reply = await signed(b, "GET", "/federation/v1/alerts?" + query)
        assert (status, json.loads(reply)["errcode"]) == (400, "AVISA_BAD_QUERY"), query
    status, reply = await signed(b, "GET", "/federation/v1/alerts?since=0&other=1")
    assert status == 200
    for method, path in (("GET", "/federation/v1/send/x"), ("PUT", "/federation/v1/alerts")):
        status, reply = await signed(b, method, path, txn())
        assert (status, json.loads(reply)["errcode"]) == (405, "AVISA_METHOD_NOT_ALLOWED")
    for body, errcode in (
        (b"\xef\xbb\xbf" + txn(), "AVISA_BAD_JSON"),
        (b'{"envelopes":[]} x', "AVISA_BAD_JSON"),
        (b'{"envelopes":[], "envelopes":[]}', "AVISA_BAD_JSON"),
        (b'{"envelopes":[1,]}', "AVISA_BAD_JSON"),
        (b'{"envelopes":{}}', "AVISA_BAD_REQUEST"),
        (b"[]", "AVISA_BAD_REQUEST"),
    ):
        status, reply = await signed(b, "PUT", "/federation/v1/send/bad-body", body)
        assert (status, json.loads(reply)["errcode"]) == (400, errcode), body
    path = "/federation/v1/send/plain"
    header = auth.authorization(A_KEY, "PUT", path, "net-a", "net-b", b.node.clock(), txn())
    headers = {"Authorization": header, "Content-Type": "text/plain"}
    async with b.http.put(b.url + path, data=txn(), headers=headers) as answer:
        problem = await answer.json()
        assert (answer.status, problem["errcode"]) == (415, "AVISA_UNSUPPORTED_MEDIA_TYPE")


# --- the Authorization header -------------------------------------------------------


def _spaced(header: str, space: str) -> str:
    scheme, _, params = header.partition(" ")
    return scheme + " " + ",".join(space + part + space for part in params.split(","))


async def test_optional_white_space_in_authorization_is_sp_and_htab(b: Member) -> None:
    path = "/federation/v1/send/ows"
    body = txn(raw_envelope(make_alert("net-a"), A_KEY))
    header = auth.authorization(A_KEY, "PUT", path, "net-a", "net-b", b.node.clock(), body)
    headers = {"Authorization": _spaced(header, " \t "), "Content-Type": "application/json"}
    async with b.http.put(b.url + path, data=body, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
    assert auth.parse(_spaced(header, "\t")).origin == "net-a"
    for space in ("\u00a0", "\u3000", "\n", "\x0b", "\x0c", "\r"):
        with pytest.raises(Unauthorized):
            auth.parse(_spaced(header, space))


# --- HTTP framing -------------------------------------------------------------------


async def _exchange(b: Member, request: bytes) -> tuple[int, bytes]:
    port = int(b.url.rpartition(":")[2])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_request_and_header_lines_are_limited_at_exactly_8190_bytes(b: Member) -> None:
    for size, status in ((8190, 200), (8191, 400)):
        target = "/healthz?pad=" + "x" * (size - len("GET  HTTP/1.1") - len("/healthz?pad="))
        line = f"GET {target} HTTP/1.1"
        assert len(line) == size
        got, body = await _exchange(b, f"{line}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert got == status, size
        if status == 400:
            assert json.loads(body) == {
                "errcode": "AVISA_BAD_REQUEST",
                "error": "malformed HTTP request",
            }
    for size, status in ((8190, 200), (8191, 400)):
        header = "X-Pad: " + "y" * (size - len("X-Pad: "))
        assert len(header) == size
        request = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{header}\r\nConnection: close\r\n\r\n"
        got, body = await _exchange(b, request.encode())
        assert got == status, size
        if status == 400:
            assert json.loads(body)["errcode"] == "AVISA_BAD_REQUEST"


# --- cards and the url --------------------------------------------------------------


def _card_text(envelope: dict[str, object]) -> str:
    """The card bytes of docs/protocol.md §5, written out by hand."""
    signatures = envelope["signatures"]
    assert isinstance(signatures, list)
    items = ",\n".join(
        f'    {{\n      "keyid": "{s["keyid"]}",\n      "sig": "{s["sig"]}"\n    }}'
        for s in signatures
    )
    head = f'{{\n  "payloadType": "{envelope["payloadType"]}",\n'
    return head + f'  "payload": "{envelope["payload"]}",\n  "signatures": [\n{items}\n  ]\n}}\n'


def test_card_bytes_are_two_space_indented_json_with_a_final_line_feed() -> None:
    vector = json.loads((Path(refusals.__file__).parent / "card.json").read_text())
    envelope = json.loads(vector["envelope"])
    assert vector["card_file"] == _card_text(envelope)
    card = vector["card_file"].encode()
    for variant in (
        card,
        vector["envelope"].encode(),
        card.replace(b"\n", b"\r\n"),
        card.replace(b"  ", b"\t"),
    ):
        assert verify_key_document(variant).document.network == "ventura"
    with pytest.raises(KeyDocumentError):
        verify_key_document(b"\xef\xbb\xbf" + card)


@pytest.mark.parametrize(
    ("url", "ok"),
    [(url, True) for url in base.URLS_VALID] + [(url, False) for url in base.URLS_INVALID],
)
def test_the_url_grammar(url: str, ok: bool) -> None:
    assert valid_node_url(url) is ok
