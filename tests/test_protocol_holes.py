"""The holes an independent implementation found (issue 22), each closed and kept closed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import yarl
from multidict import CIMultiDict

from keys.store import nodekey
from relay.core.envelope import pae
from relay.core.model import (
    Area,
    Envelope,
    Signature,
    Text,
    decode_alert,
    encode_alert,
    encode_envelope,
    valid_network,
)
from relay.federation.auth import REQUEST_TYPE
from relay.runtime.clock import FakeClock
from relay.storage.files import is_private
from tests.fedkit import Member, members
from tests.helpers import key, make_alert, raw_envelope
from tests.test_cli import avisa
from tests.test_federation_inbound import A_KEY, add_peer, dump, signed, txn


@pytest.fixture
async def b(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Member]:
    """Node net-b, trusting net-a (whose key is A_KEY)."""
    async with members(tmp_path, clock, ["net-b"]) as net:
        await add_peer(net["net-b"], "net-a", A_KEY, rate_limit_per_min=600)
        yield net["net-b"]


# --- payload rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "ok"),
    [
        ("ventura", True),
        ("la-rrn", True),
        ("oc.resilience", True),
        ("a1", True),
        ("a--b", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("a", False),
        ("1a", False),
        ("la-", False),
        ("ventura.", False),
        ("ventura-", False),
        (".ventura", False),
        ("oc..res", False),
        ("oc.1res", False),
        ("oc.res-", False),
        ("Ventura", False),
        ("ven_tura", False),
    ],
)
def test_network_ids_are_dns_like_labels(network: str, ok: bool) -> None:
    assert valid_network(network) is ok
    alert = make_alert("ventura")
    new_id = network + "/" + alert.id.split("/")[1]
    raw = encode_alert(msgspec.structs.replace(alert, id=new_id, network=network))
    if ok:
        assert decode_alert(raw).network == network
    else:
        with pytest.raises(msgspec.ValidationError):
            decode_alert(raw)


def test_network_grammar_at_init(tmp_path: Path) -> None:
    for network in ("1a", "la-", "ventura.", "ventura-"):
        refused = avisa("init", "--data", str(tmp_path / "x"), "--network", network, check=False)
        assert refused.returncode == 1 and "--network" in refused.stderr, network
        assert not (tmp_path / "x" / "node.key").exists()


def test_ulid_above_128_bits_is_refused() -> None:
    alert = make_alert("ventura")
    for ulid, ok in (("7" + "Z" * 25, True), ("8" + "0" * 25, False), ("Z" * 26, False)):
        raw = encode_alert(msgspec.structs.replace(alert, id="ventura/" + ulid))
        if ok:
            decode_alert(raw)
        else:
            with pytest.raises(msgspec.ValidationError):
                decode_alert(raw)


INVISIBLE = [
    "\u202e",  # right-to-left override
    "\u202a",  # left-to-right embedding
    "\u2066",  # left-to-right isolate
    "\u2069",  # pop directional isolate
    "\u200b",  # zero width space
    "\u200e",  # left-to-right mark
    "\ufeff",  # byte order mark
    "\u00ad",  # soft hyphen
    "\u2060",  # word joiner
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\U000e0041",  # tag latin capital letter a
    "\x85",  # next line (a C1 control)
    "\x9b",  # control sequence introducer (C1)
]


def _with_text(field: str, value: str) -> bytes:
    alert = make_alert("ventura")
    text = alert.text["en"]
    if field == "label":
        area = msgspec.structs.replace(alert.area, label=value)
        return encode_alert(msgspec.structs.replace(alert, area=area))
    changed = msgspec.structs.replace(text, **{field: value})
    return encode_alert(msgspec.structs.replace(alert, text={"en": changed}))


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("field", ["headline", "body", "instruction", "label"])
def test_invisible_format_characters_are_refused_in_every_text_field(char: str, field: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="text not allowed"):
        decode_alert(_with_text(field, f"ICE {char}at the park"))


def test_joiners_are_allowed_and_headlines_need_something_visible() -> None:
    # ZWJ in an emoji sequence, ZWNJ in Persian: both are text, not tricks.
    for headline in ("Alerta \U0001f468\u200d\U0001f469\u200d\U0001f467", "می\u200cخواهم"):
        assert decode_alert(_with_text("headline", headline)).text["en"].headline == headline
    for blank in (" ", "   ", "\u3000", "\u00a0\u2003", "\u200d", "\u200c "):
        with pytest.raises(msgspec.ValidationError, match="headline"):
            decode_alert(_with_text("headline", blank))


def test_every_unicode_format_character_but_the_joiners_is_in_the_list() -> None:
    import sys
    import unicodedata

    from relay.core.model import _NON_ASCII_BAD

    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Cf", "Cc") and char not in "\u200c\u200d":
            assert _NON_ASCII_BAD.search(char) or char.isascii(), f"U+{code:04X}"


async def test_api_refuses_spoofing_text_with_a_clear_400(b: Member) -> None:
    from tests.test_api import DRAFT

    spoofed = {**DRAFT, "text": {"en": {"headline": "ICE \u202etsoh", "body": "x"}}}
    status, reply = await b.call("POST", "/api/v1/alerts", json=spoofed)
    assert status == 400 and reply["errcode"].startswith("AVISA_"), reply
    blank = {**DRAFT, "text": {"en": {"headline": "   ", "body": "x"}}}
    status, reply = await b.call("POST", "/api/v1/alerts", json=blank)
    assert status == 400, reply


# --- from a peer ------------------------------------------------------------------


def _results(reply: bytes) -> list[tuple[str, str]]:
    return [(r["status"], r["reason"]) for r in json.loads(reply)["results"]]


async def test_peer_payloads_breaking_the_rules_are_rejected(b: Member) -> None:
    base = make_alert("net-a")
    bad_ulid = msgspec.structs.replace(base, id="net-a/" + "Z" * 26)
    spoofed = msgspec.structs.replace(
        base, text={"en": Text(headline="ICE \u2066here\u2069", body="")}
    )
    blank = msgspec.structs.replace(base, text={"en": Text(headline=" \u3000", body="")})
    area = Area(label="Colonia\u200b", geohash="9q4gch", radius_m=0, codes=[])
    label = msgspec.structs.replace(base, area=area)
    before = dump(b)
    raws = [
        pae_signed(encode_alert(alert))
        for alert in (bad_ulid, spoofed, blank, label)  # encode_alert does not check rules
    ]
    status, reply = await signed(b, "PUT", "/federation/v1/send/rules", txn(*raws))
    assert status == 200
    assert _results(reply) == [("rejected", "malformed_payload")] * 4
    assert [line for line in dump(b) if 'INSERT INTO "alerts"' in line] == [
        line for line in before if 'INSERT INTO "alerts"' in line
    ]


def pae_signed(payload: bytes, signers: int = 1) -> bytes:
    from relay.core.envelope import sign

    envelope = sign(payload, A_KEY)
    extra = [Signature(key(200 + n).keyid, envelope.signatures[0].sig) for n in range(signers - 1)]
    return encode_envelope(
        Envelope(envelope.payloadType, envelope.payload, [*envelope.signatures, *extra])
    )


async def test_too_many_signatures_is_one_reason_whatever_the_count(
    b: Member,
) -> None:
    raws = [pae_signed(encode_alert(make_alert("net-a")), n) for n in (9, 16, 17, 40)]
    status, reply = await signed(b, "PUT", "/federation/v1/send/sigs", txn(*raws))
    assert status == 200
    assert _results(reply) == [("rejected", "too_many_signatures")] * 4


# --- request signing --------------------------------------------------------------


def _header(ts_text: str, body: bytes, path: str) -> str:
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join(("PUT", path, "net-a", "net-b", ts_text, digest))
    sig = base64.b64encode(A_KEY.sign(pae(REQUEST_TYPE, text.encode()))).decode()
    fields = dict(origin="net-a", destination="net-b", keyid=A_KEY.keyid, ts=ts_text, sig=sig)
    return "Avisa " + ",".join(f'{name}="{value}"' for name, value in fields.items())


async def test_ts_has_one_spelling(b: Member, clock: FakeClock) -> None:
    body = txn(raw_envelope(make_alert("net-a"), A_KEY))
    path = "/federation/v1/send/ts-form"
    now = str(int(clock().timestamp()))
    for ts_text in ("0" + now, "+" + now, now + ".0", " " + now):
        header = _header(ts_text, body, path)
        headers = {"Authorization": header, "Content-Type": "application/json"}
        async with b.http.put(b.url + path, data=body, headers=headers) as reply:
            problem = await reply.json()
            assert (reply.status, problem["errcode"]) == (401, "AVISA_UNAUTHORIZED"), ts_text
    headers = {"Authorization": _header(now, body, path), "Content-Type": "application/json"}
    async with b.http.put(b.url + path, data=body, headers=headers) as reply:
        assert reply.status == 200


async def test_dot_txn_ids_are_refused(b: Member) -> None:
    body = txn(raw_envelope(make_alert("net-a"), A_KEY))
    before = dump(b)
    for txn_id in (".", "..", "%2E", "%2E%2E", "%2e", ".%2E"):
        path = "/federation/v1/send/" + txn_id
        now = str(int(b.node.clock().timestamp()))
        headers = {"Authorization": _header(now, body, path), "Content-Type": "application/json"}
        url = yarl.URL(b.url + path, encoded=True)  # sent exactly so, not normalised
        async with b.http.put(url, data=body, headers=headers) as reply:
            problem = await reply.json()
            assert reply.status in (400, 404), (txn_id, reply.status, problem)
            assert problem["errcode"] in ("AVISA_BAD_TXN_ID", "AVISA_NOT_FOUND"), txn_id
    assert dump(b) == before
    for allowed in ("...", ".a", "a."):
        status, _ = await signed(b, "PUT", "/federation/v1/send/" + allowed, body)
        assert status == 200, allowed


async def test_two_authorization_headers_are_refused(b: Member) -> None:
    body = txn(raw_envelope(make_alert("net-a"), A_KEY))
    path = "/federation/v1/send/two-headers"
    good = _header(str(int(b.node.clock().timestamp())), body, path)
    headers = CIMultiDict(
        [("Authorization", good), ("Authorization", good), ("Content-Type", "application/json")]
    )
    async with b.http.put(b.url + path, data=body, headers=headers) as reply:
        assert (reply.status, (await reply.json())["errcode"]) == (401, "AVISA_UNAUTHORIZED")
    bearer = f"Bearer {b.token}"
    twice = CIMultiDict([("Authorization", bearer), ("Authorization", bearer)])
    async with b.http.get(b.url + "/api/v1/alerts", headers=twice) as reply:
        assert (reply.status, (await reply.json())["errcode"]) == (401, "AVISA_UNAUTHORIZED")
    async with b.http.get(b.url + "/api/v1/alerts", headers={"Authorization": bearer}) as reply:
        assert reply.status == 200


async def test_txn_id_reused_with_another_body_is_counted(
    b: Member,
) -> None:
    first_alert, second_alert = make_alert("net-a"), make_alert("net-a", headline="Another")
    path = "/federation/v1/send/reused"
    status, first = await signed(b, "PUT", path, txn(raw_envelope(first_alert, A_KEY)))
    assert status == 200
    status, again = await signed(b, "PUT", path, txn(raw_envelope(first_alert, A_KEY)))
    assert (status, again) == (200, first)
    assert "avisa_federation_txn_reused_total{" not in await b.metrics()
    status, other = await signed(b, "PUT", path, txn(raw_envelope(second_alert, A_KEY)))
    assert (status, other) == (200, first)  # the first reply stands; the body is not read
    assert await b.alert(second_alert.id) is None
    assert 'avisa_federation_txn_reused_total{peer="net-a"} 1' in await b.metrics()


# --- export-card ------------------------------------------------------------------


def test_export_card_never_overwrites_what_it_should_not(tmp_path: Path) -> None:
    data = tmp_path / "ventura"
    avisa("init", "--data", str(data), "--network", "ventura", "--listen", "127.0.0.1:0")
    key_bytes = (data / "node.key").read_bytes()
    token = (data / "operator.token").read_bytes()
    os.symlink(data / "node.key", tmp_path / "link.card")
    for target, force in (
        (data / "node.key", False),
        (data / "node.key", True),
        (data / "operator.token", True),
        (data / "avisa.toml", True),
        (data / "other.key", True),
        (tmp_path / "link.card", True),
    ):
        args = ["keys", "export-card", "--data", str(data), "--out", str(target)]
        refused = avisa(*args, *(["--force"] if force else []), check=False)
        assert refused.returncode == 1, (target, refused.stdout)
        assert "own files" in refused.stderr, refused.stderr
    assert (data / "node.key").read_bytes() == key_bytes and is_private(data / "node.key")
    assert (data / "operator.token").read_bytes() == token
    assert not (data / "other.key").exists()
    assert nodekey.read_public(data / "node.key")

    refused = avisa("keys", "export-card", "--data", str(data), "--out", str(tmp_path), check=False)
    assert refused.returncode == 1 and "is a directory" in refused.stderr

    card = tmp_path / "ventura.card"
    avisa("keys", "export-card", "--data", str(data), "--out", str(card))
    assert json.loads(card.read_text())["payloadType"] == "application/vnd.avisa.keys.v1+json"
    card.write_text("keep me")
    refused = avisa("keys", "export-card", "--data", str(data), "--out", str(card), check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert card.read_text() == "keep me"
    avisa("keys", "export-card", "--data", str(data), "--out", str(card), "--force")
    assert json.loads(card.read_text())["signatures"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- framing errors before authentication -----------------------------------------

PHONE = "+18055550123"
SECRET = "avisa_" + "s3cr3t" * 5


@pytest.mark.slow
async def test_framing_errors_answer_json_and_log_one_redacted_line(tmp_path: Path) -> None:
    """A real ``avisa run``: requests aiohttp cannot parse, with a phone number and a
    token in them, get the JSON error, and the node's log file gets one JSON line
    each, holding neither, and no traceback."""
    import asyncio

    from tests.test_federation_process import Proc, free_port, setup_node

    port = free_port()
    data = setup_node(tmp_path, "ventura", port)
    proc = Proc(data, port, dict(os.environ))
    await proc.start()
    query = f"/api/v1/alerts?phone={PHONE}&token={SECRET}"
    requests = [
        f"GET {query}{'A' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET {query} HTTP/1.1\r\nHost: x\r\nX-Note: {PHONE}{'b' * 9000}\r\n\r\n".encode(),
        (
            f"POST {query} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ).encode(),
    ]
    try:
        for request in requests:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], head
            assert b"application/json" in head
            assert json.loads(body)["errcode"] == "AVISA_BAD_REQUEST"
            assert PHONE.encode() not in answer and SECRET.encode() not in answer
    finally:
        proc.stop()
    lines = proc.log.read_text().splitlines()
    for line in lines:
        json.loads(line)  # every line is one JSON object: no traceback, no echoed text
    assert PHONE not in proc.log.read_text() and SECRET not in proc.log.read_text()
    assert "Traceback" not in proc.log.read_text()
    framing = [json.loads(line) for line in lines if "malformed http request" in line]
    assert [(event["status"], event["errcode"]) for event in framing] == [
        (400, "AVISA_BAD_REQUEST")
    ] * 3
    assert {event["error"] for event in framing} <= {"LineTooLong", "BadHttpMessage"}


# --- seq gaps in status and metrics ---------------------------------------------


async def test_seq_gaps_waiting_to_be_pulled_show_in_peers_and_metrics(b: Member) -> None:
    first, fifth = make_alert("net-a", seq=1), make_alert("net-a", seq=5)
    for n, alert in enumerate((first, fifth)):
        status, _ = await signed(
            b, "PUT", f"/federation/v1/send/gap-{n}", txn(raw_envelope(alert, A_KEY))
        )
        assert status == 200
    peer = await b.peer("net-a")
    assert peer["seq_gaps"]["open"] == 1 and peer["seq_gaps"]["missing"] == 3
    assert peer["seq_gaps"]["newest"][0] | {"pulled": None} == {
        "origin": "net-a",
        "from": 2,
        "to": 4,
        "pulled": None,
    }
    metrics = await b.metrics()
    assert 'avisa_peer_seq_gaps{peer="net-a"} 1' in metrics
    assert 'avisa_peer_seq_gap_messages{peer="net-a"} 3' in metrics
    third = make_alert("net-a", seq=3)
    status, _ = await signed(b, "PUT", "/federation/v1/send/gap-3", txn(raw_envelope(third, A_KEY)))
    peer = await b.peer("net-a")
    assert (peer["seq_gaps"]["open"], peer["seq_gaps"]["missing"]) == (2, 2)
