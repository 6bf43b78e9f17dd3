"""The payload contract: bounds on decode and the canonical-bytes rule."""

from __future__ import annotations

import json

import msgspec
import pytest

from relay.core.model import NonCanonical, decode_alert, encode_alert
from tests.helpers import make_alert


def canonical() -> bytes:
    return encode_alert(make_alert())


def mutate(change) -> bytes:  # type: ignore[no-untyped-def]
    document = json.loads(canonical())
    change(document)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def test_round_trip_is_identity() -> None:
    payload = canonical()
    assert encode_alert(decode_alert(payload)) == payload


def test_field_order_is_the_contract() -> None:
    assert list(json.loads(canonical())) == [
        "id",
        "network",
        "seq",
        "msg_type",
        "references",
        "kind",
        "certainty",
        "observed_at",
        "sent_at",
        "expires_at",
        "area",
        "agencies",
        "text",
    ]
    assert b'"sent_at":"2026-11-23T12:00:00Z"' in canonical()


@pytest.mark.parametrize(
    "raw",
    [
        canonical().replace(b'{"id"', b'{ "id"'),  # whitespace
        canonical()[:-1] + b',"seq":2}',  # duplicate key (last wins in most parsers)
        canonical().replace(b'"seq":1', b'"seq":1.0'),
        canonical().replace(b"12:00:00Z", b"12:00:00+00:00"),
        canonical().replace(b"ICE", b"\\u0049CE"),  # escaped form of the same text
    ],
    ids=["whitespace", "duplicate", "float", "offset", "escape"],
)
def test_non_canonical_or_invalid_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises((NonCanonical, msgspec.ValidationError, msgspec.DecodeError)):
        decode_alert(raw)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(seq=2**53),
        lambda d: d.update(seq=0),
        lambda d: d.update(kind="raid"),
        lambda d: d.update(certainty="likely"),
        lambda d: d.update(network="Ventura"),
        lambda d: d.update(id="la/" + d["id"].split("/")[1]),
        lambda d: d.update(msg_type="cancel"),  # cancel without references
        lambda d: d.update(references=[d["id"]]),  # alert with references
        lambda d: d["area"].update(radius_m=50_001),
        lambda d: d["area"].update(geohash="9q4"),
        lambda d: d["area"].update(codes=["fips:06111", "fips:06111"]),
        lambda d: d["area"].update(codes=["phone:5551234"]),
        lambda d: d["area"].update(label="a\u0007b"),
        lambda d: d["text"]["en"].update(headline="x" * 141),
        lambda d: d["text"]["en"].update(body="x" * 2001),
        lambda d: d.update(text={}),
        lambda d: d.update(reporter="someone"),
        lambda d: d.update(sent_at="2026-11-23T14:00:00+02:00"),
    ],
)
def test_bounds_are_enforced_on_decode(change) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((msgspec.ValidationError, NonCanonical)):
        decode_alert(mutate(change))


def test_invalid_utf8_and_deep_nesting_are_decode_errors() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_alert(b'{"id":"\xff"}')
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_alert(b"[" * 5000 + b"]" * 5000)


SINGLE_LINE = [("area", "label"), ("text.en", "headline")]
MULTI_LINE = [("text.en", "body"), ("text.en", "instruction")]
FORBIDDEN_ANYWHERE = ["\x00", "\x07", "\x0b", "\x1b", "\x1f", "\x7f", "\r"]


def _with_text(where: str, field: str, value: str) -> bytes:
    def change(document: dict) -> None:  # type: ignore[type-arg]
        target = document
        for part in where.split("."):
            target = target[part]
        target[field] = value

    return mutate(change)


@pytest.mark.parametrize(("where", "field"), SINGLE_LINE + MULTI_LINE)
@pytest.mark.parametrize("control", FORBIDDEN_ANYWHERE)
def test_control_characters_in_human_text_are_refused(where: str, field: str, control: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"{where}.{field}"):
        decode_alert(_with_text(where, field, f"ICE{control}here"))


@pytest.mark.parametrize(("where", "field"), SINGLE_LINE)
@pytest.mark.parametrize("control", ["\n", "\t"])
def test_single_line_text_refuses_newline_and_tab(where: str, field: str, control: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"{where}.{field}"):
        decode_alert(_with_text(where, field, f"ICE{control}here"))


@pytest.mark.parametrize(("where", "field"), MULTI_LINE)
def test_multi_line_text_keeps_newlines_tabs_quotes_and_backslashes(where: str, field: str) -> None:
    raw = _with_text(where, field, 'Line one\n\tLine "two" \\ é ✓')
    assert b"\\" in raw  # the escaped forms: this takes the field-by-field path
    assert encode_alert(decode_alert(raw)) == raw


def test_quotes_and_backslashes_are_fine_in_single_line_text() -> None:
    raw = _with_text("text.en", "headline", 'ICE "at" the park \\ now')
    assert decode_alert(raw).text["en"].headline == 'ICE "at" the park \\ now'
