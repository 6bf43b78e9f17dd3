"""The alert payload and the DSSE envelope as msgspec structs (DESIGN §2, §3).

Every bound of the contract is a ``Meta`` constraint, so it is enforced by the
decoder itself: a value out of bounds never becomes an object. The one
exception is the rule that human text holds no control or invisible format
characters and a headline something visible, which ``decode_alert`` checks
before it returns (and drafts on decode). Cross-field
rules (the id names its network, references match the message type, times
are UTC) live in ``__post_init__``, which msgspec runs on decode as well.

Encoders and decoders are built once at import. ``decode_alert`` applies the
canonical-bytes rule: a payload is accepted only if re-encoding the decoded
struct gives back the very same bytes. That single comparison rejects
duplicate keys, unknown fields, whitespace, escapes and number forms that two
parsers might read differently, so the bytes that were signed have exactly
one meaning. Only for bytes that fail it does ``_refuse_other_spelling`` say
why (docs/protocol.md §3.6): not strict JSON, a ``null`` or a time in another
spelling is bad data, as msgspec's own refusals are; only whitespace, member
order and escapes around valid values are ``NonCanonical``.

No field can hold a reporter, a phone number or an address: alerts describe
enforcement activity, never people.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Final, Literal, NoReturn, get_args

import msgspec
from msgspec import Meta, Struct

from relay.core.errors import BadInput
from relay.core.strictjson import strict_loads

ALERT_PAYLOAD_TYPE: Final = "application/vnd.avisa.alert.v1+json"

MAX_ENVELOPE_BYTES: Final = 64 * 1024
# Hard ceiling on signatures in any envelope, before policy's max_signatures.
MAX_SIGNATURES_HARD: Final = 16

# DNS-like labels joined by single dots; a label starts with a letter and does not
# end with a hyphen. Written so no two ways match one string (no backtracking).
_LABEL: Final = r"[a-z](?:-*[a-z0-9])*"
_NETWORK_BODY: Final = _LABEL + r"(?:\." + _LABEL + r")*"
NETWORK_PATTERN: Final = "^" + _NETWORK_BODY + "$"
NETWORK_MIN, NETWORK_MAX = 2, 63
# 26 Crockford base32 digits of a 128-bit value: the first is at most 7.
ULID_PATTERN: Final = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"
ALERT_ID_PATTERN: Final = "^" + _NETWORK_BODY + "/" + ULID_PATTERN + "$"
ALERT_ID_MAX: Final = NETWORK_MAX + 1 + 26
# Characters that change how text is shown without being seen (docs/protocol.md
# §3.4): Unicode general category Cf as of Unicode 15 except ZWJ (U+200D) and ZWNJ
# (U+200C), which Arabic, Persian and Indic scripts and emoji need, plus the line
# and paragraph separators U+2028/U+2029. The list is fixed here, not read from
# ``unicodedata``, so the rule does not change with the Python release.
INVISIBLE_FORMAT: Final = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# Human text holds none of those and no control characters (C0, DEL, C1); single-line
# text not even newlines or tabs. That rule is not a msgspec pattern on each field (five
# regex calls, about 40% of an alert's decoding): msgspec refuses raw control
# characters in JSON strings and every invisible character is outside ASCII, so a
# pure-ASCII payload without a backslash or a DEL byte cannot hold one, and only
# other payloads are checked field by field (``text_problem``).
_LINE_CONTROLS: Final = re.compile("[\x00-\x1f\x7f]")
_LINES_CONTROLS: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# C1 controls and the invisible characters are all outside ASCII: searched for only
# in text that is not pure ASCII (``str.isascii`` is far cheaper than this class).
_NON_ASCII_BAD: Final = re.compile("[\x80-\x9f" + INVISIBLE_FORMAT + "]")
# What a headline may not consist of alone (docs/protocol.md §3.4): White_Space and
# Default_Ignorable_Code_Point as of Unicode 15.0, fixed here like INVISIBLE_FORMAT.
# Every other character is visible, unassigned and private-use ones included (they
# show as a glyph or a box), so the rule needs no Unicode table and cannot drift.
BLANK: Final = (
    "\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    "\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_NOT_BLANK: Final = re.compile("[^" + BLANK + "]")


def _bad(text: str, controls: re.Pattern[str]) -> bool:
    return controls.search(text) is not None or (
        not text.isascii() and _NON_ASCII_BAD.search(text) is not None
    )


Network = Annotated[
    str, Meta(min_length=NETWORK_MIN, max_length=NETWORK_MAX, pattern=NETWORK_PATTERN)
]
AlertId = Annotated[str, Meta(max_length=ALERT_ID_MAX, pattern=ALERT_ID_PATTERN)]
UtcTime = Annotated[datetime, Meta(tz=True)]
AREA_CODE_PATTERN: Final = r"^(fips:[0-9]{2,5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?)$"
GEOHASH_PATTERN: Final = r"^[0-9b-hjkmnp-z]{4,9}$"
AGENCY_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,31}$"
LANG_PATTERN: Final = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$"
AreaCode = Annotated[str, Meta(pattern=AREA_CODE_PATTERN)]
Geohash = Annotated[str, Meta(pattern=GEOHASH_PATTERN)]
Agency = Annotated[str, Meta(pattern=AGENCY_PATTERN)]
LangTag = Annotated[str, Meta(pattern=LANG_PATTERN)]
KeyId = Annotated[str, Meta(pattern=r"^ed25519:[0-9a-f]{32}$")]
Base64Sig = Annotated[str, Meta(pattern=r"^[A-Za-z0-9+/]{86}==$")]

MsgType = Literal["alert", "update", "cancel"]
Kind = Literal[
    "sighting",
    "operation",
    "checkpoint",
    "workplace",
    "detention",
    "court",
    "mobilization",
    "rumor",
    "all_clear",
    "notice",
]
Certainty = Literal["confirmed", "unconfirmed", "false"]

KINDS: Final[tuple[str, ...]] = get_args(Kind)
CERTAINTIES: Final[tuple[str, ...]] = get_args(Certainty)

Headline = Annotated[str, Meta(min_length=1, max_length=140)]
Body = Annotated[str, Meta(max_length=2000)]
Instruction = Annotated[str, Meta(max_length=1000)]
Label = Annotated[str, Meta(min_length=1, max_length=200)]
Radius = Annotated[int, Meta(ge=0, le=50_000)]
Seq = Annotated[int, Meta(ge=1, le=2**53 - 1)]


class Text(Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    headline: Headline
    body: Body
    instruction: Instruction | None = None


class Area(Struct, forbid_unknown_fields=True, frozen=True):
    label: Label
    geohash: Geohash
    radius_m: Radius
    codes: Annotated[list[AreaCode], Meta(max_length=16)]

    def __post_init__(self) -> None:
        if len(set(self.codes)) != len(self.codes):
            raise ValueError("area.codes lists a code twice")


Texts = Annotated[dict[LangTag, Text], Meta(min_length=1, max_length=8)]
Agencies = Annotated[list[Agency], Meta(max_length=8)]
References = Annotated[list[AlertId], Meta(max_length=32)]


class Alert(Struct, forbid_unknown_fields=True, frozen=True):
    """One signed message; field order is the contract's encoding order."""

    id: AlertId
    network: Network
    seq: Seq
    msg_type: MsgType
    references: References
    kind: Kind
    certainty: Certainty
    observed_at: UtcTime
    sent_at: UtcTime
    expires_at: UtcTime
    area: Area
    agencies: Agencies
    text: Texts

    def __post_init__(self) -> None:
        if self.id.partition("/")[0] != self.network:
            raise ValueError("id must start with the alert's network")
        if (self.msg_type == "alert") != (not self.references):
            raise ValueError("references must be empty for alert, non-empty otherwise")
        if self.id in self.references or len(set(self.references)) != len(self.references):
            raise ValueError("references repeat an id or name the message itself")
        for moment in (self.observed_at, self.sent_at, self.expires_at):
            if moment.utcoffset():
                raise ValueError("times must be UTC with Z")


class Signature(Struct, forbid_unknown_fields=True, frozen=True):
    keyid: KeyId
    sig: Base64Sig


class Envelope(Struct, forbid_unknown_fields=True, frozen=True):
    """A DSSE envelope: the payload travels as base64 of its exact bytes."""

    payloadType: Annotated[str, Meta(max_length=100)]
    payload: Annotated[str, Meta(max_length=MAX_ENVELOPE_BYTES)]
    # No max_length here: more than MAX_SIGNATURES_HARD is refused by
    # ``envelope.open_envelope`` with its own reason, whatever the count.
    signatures: Annotated[list[Signature], Meta(min_length=1)]


_NETWORK_RE: Final = re.compile(_NETWORK_BODY)


def valid_network(text: str) -> bool:
    """The network id grammar of DESIGN §2 (used wherever an id arrives as text)."""
    return NETWORK_MIN <= len(text) <= NETWORK_MAX and _NETWORK_RE.fullmatch(text) is not None


# Where peers reach a node (docs/protocol.md §5): http or https, a DNS name or IPv4
# address or a bracketed IPv6 address, an optional port 0-65535 without leading zeros,
# an optional path of RFC 3986 path characters; no user, query or fragment.
_HOST_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT: Final = (
    r"(?:0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
_NODE_URL: Final = re.compile(
    rf"https?://(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[([0-9A-Fa-f:.]{{2,45}})\])(?::{_PORT})?"
    r"(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?"
)
NODE_URL_MAX: Final = 300

# A ``speaks_for`` entry (``avisa trust add --speaks-for``, trust list members): an area
# code (fips:06037, zip:93101, iso:us-ca) or a geohash prefix; a scope holds at most
# MAX_SCOPE entries, each once.
SCOPE_PATTERN: Final = (
    r"^(fips:[0-9]{2,5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?|[0-9b-hjkmnp-z]{1,9})$"
)
MAX_SCOPE: Final = 64


def valid_node_url(text: str) -> bool:
    """The ``url`` grammar of key documents, cards and ``node.url``."""
    match = _NODE_URL.fullmatch(text) if len(text) <= NODE_URL_MAX else None
    if match is None or match.group(1) is None:
        return match is not None
    try:
        ipaddress.IPv6Address(match.group(1))
    except ValueError:
        return False
    return True


def _visible(text: str) -> bool:
    """Holds a character that is neither white space nor default-ignorable (``BLANK``)."""
    return _NOT_BLANK.search(text) is not None


def text_problem(area: Area, texts: dict[str, Text]) -> str | None:
    """Where human text breaks a display rule (``$.text.es.headline``): a control
    character it may not hold, an invisible format character, or a headline with
    nothing visible in it."""
    if _bad(area.label, _LINE_CONTROLS):
        return "$.area.label"
    for lang, text in texts.items():
        if _bad(text.headline, _LINE_CONTROLS) or not _visible(text.headline):
            return f"$.text.{lang}.headline"
        if _bad(text.body, _LINES_CONTROLS):
            return f"$.text.{lang}.body"
        if text.instruction is not None and _bad(text.instruction, _LINES_CONTROLS):
            return f"$.text.{lang}.instruction"
    return None


def _blank_headline(texts: dict[str, Text]) -> str | None:
    for lang, text in texts.items():
        if not _visible(text.headline):
            return f"$.text.{lang}.headline"
    return None


alert_encoder: Final = msgspec.json.Encoder()
_alert_decoder: Final = msgspec.json.Decoder(Alert)
envelope_decoder: Final = msgspec.json.Decoder(Envelope)


class NonCanonical(ValueError):
    """The payload decodes, but its bytes are not the node's own encoding."""


def encode_alert(alert: Alert) -> bytes:
    return alert_encoder.encode(alert)


def decode_alert(payload: bytes) -> Alert:
    """Decode under every bound, then insist on byte-identical re-encoding.

    Raises ``msgspec.ValidationError``/``msgspec.DecodeError`` for bad data,
    ``NonCanonical`` when the bytes are not canonical.
    """
    try:
        alert = _alert_decoder.decode(payload)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise msgspec.DecodeError(f"invalid JSON text: {type(exc).__name__}") from None
    if b"\\" in payload or b"\x7f" in payload or not payload.isascii():
        where = text_problem(alert.area, alert.text)
    else:
        where = _blank_headline(alert.text)
    if where is not None:
        raise msgspec.ValidationError(f"text not allowed - at `{where}`")
    if alert_encoder.encode(alert) != payload:
        _refuse_other_spelling(payload)
    return alert


# The one spelling of a time (docs/protocol.md §3.5): whole seconds, or six digits
# that are not all zeros, and Z. msgspec reads more (``t``, ``z``, ``+00:00``, any
# number of digits), which would make the reason depend on one parser's leniency.
_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.(?!0{6})[0-9]{6})?Z"
)
_TIMES: Final = ("observed_at", "sent_at", "expires_at")


def _null_at(value: object, where: str = "$") -> str | None:
    if value is None:
        return where
    if isinstance(value, dict):
        items: Iterable[tuple[object, object]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    return next((at for key, item in items if (at := _null_at(item, f"{where}.{key}"))), None)


def _refuse_other_spelling(payload: bytes) -> NoReturn:
    """Why a payload that decoded is not its canonical bytes: ``malformed_payload``
    (a ``msgspec`` error) when it is not strict JSON, holds a ``null`` or writes a time
    in another form; otherwise ``NonCanonical`` (whitespace, escapes, member order).
    Only refused payloads come here, so the second, slower reading costs nothing on
    the way of an accepted one."""
    try:
        tree = strict_loads(payload)
    except BadInput as exc:
        raise msgspec.DecodeError(f"not strict JSON: {exc.message}") from None
    where = _null_at(tree)
    if where is not None:
        raise msgspec.ValidationError(f"null is not a value here - at `{where}`")
    for name in _TIMES:
        if not _TIME.fullmatch(tree[name]):
            raise msgspec.ValidationError(
                f"time must be YYYY-MM-DDTHH:MM:SSZ or with 6 fraction digits - at `$.{name}`"
            )
    raise NonCanonical("payload bytes are not in canonical form")


def encode_envelope(envelope: Envelope) -> bytes:
    return alert_encoder.encode(envelope)
