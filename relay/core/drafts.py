"""Operator drafts → alerts this node signs (pure; the caller passes time and entropy).

A draft is what a publisher sends to ``POST /api/v1/alerts``: the alert's
content without the fields the node fills (``id``, ``network``, ``seq``,
``sent_at``). Bounds are the payload's own, so a draft that decodes builds an
alert that will decode. Updates and cancels name the message they replace and
carry its reference chain forward, so a node that missed an intermediate
update still knows what the newest message replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, NamedTuple

import msgspec
from msgspec import Meta, Struct

from relay.core.errors import BadInput
from relay.core.language import N_, Words
from relay.core.model import (
    Agencies,
    Alert,
    Area,
    Certainty,
    Kind,
    MsgType,
    Text,
    Texts,
    UtcTime,
    text_problem,
)
from relay.core.policy import covers_code
from relay.core.times import (
    DURATION_PATTERN,
    format_duration,
    parse_duration,
    rfc3339,
    whole_seconds,
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_REFERENCES = 32


def ulid(now: datetime, randomness: bytes) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, Crockford base32."""
    if len(randomness) != 10:
        raise ValueError("a ULID needs 10 random bytes")
    value = (int(now.timestamp() * 1000) << 80) | int.from_bytes(randomness, "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


class Draft(Struct, forbid_unknown_fields=True, frozen=True):
    kind: Kind
    certainty: Certainty
    area: Area
    text: Texts
    agencies: Agencies = []
    expires_at: UtcTime | None = None
    expires_in: Annotated[str, Meta(pattern=DURATION_PATTERN)] | None = None
    observed_at: UtcTime | None = None

    def __post_init__(self) -> None:
        _refuse_controls(self.area, self.text)


class CancelDraft(Struct, forbid_unknown_fields=True, frozen=True):
    text: Texts

    def __post_init__(self) -> None:
        _refuse_controls(_NO_AREA, self.text)


_NO_AREA = Area(label="-", geohash="0000", radius_m=0, codes=[])


def _refuse_controls(area: Area, texts: dict[str, Text]) -> None:
    where = text_problem(area, texts)
    if where is not None:  # msgspec reports a ValueError here as a 400 at the body
        raise ValueError(f"control character in text at `{where}`")


def tidy(raw: Any) -> Any:
    """What a person may type either way: a geohash or code in upper case is lower-cased."""
    area = raw.get("area") if isinstance(raw, dict) else None
    if isinstance(area, dict):
        if isinstance(area.get("geohash"), str):
            area["geohash"] = area["geohash"].lower()
        if isinstance(area.get("codes"), list):
            area["codes"] = [c.lower() if isinstance(c, str) else c for c in area["codes"]]
    return raw


def carried(previous: Alert, raw: Any) -> Any:
    """An update's draft: the fields it gives, the rest from the version it replaces.

    ``area`` is merged key by key (a new geohash keeps the label); ``text``
    and ``agencies`` are replaced whole when given. Without an expiry the
    update keeps the one it replaces.
    """
    if not isinstance(raw, dict):
        return raw
    merged: dict[str, Any] = {
        "kind": previous.kind,
        "certainty": previous.certainty,
        "agencies": list(previous.agencies),
        "text": msgspec.to_builtins(previous.text),
        **raw,
    }
    area = msgspec.to_builtins(previous.area)
    merged["area"] = {**area, **raw["area"]} if isinstance(raw.get("area"), dict) else area
    if "expires_at" not in raw and "expires_in" not in raw:
        merged["expires_at"] = rfc3339(previous.expires_at)
    return merged


class DraftWarning(NamedTuple):
    """Something allowed but probably not meant: a message id and its named values,
    for the caller to say in the reader's words (``Words.gettext(*warning)``)."""

    message: str
    values: dict[str, str]

    def said(self, words: Words) -> str:
        return words.gettext(self.message, **self.values)


#: Without ``[node] home_codes``: a geohash alone, which peers trusting codes would hold.
NO_AREA_CODE: Final = N_("draft.no_area_code")
#: ``[node] home_codes`` (what peers trust this network for) does not cover the alert:
#: it has no code, or codes outside them.
OUTSIDE_HOME_NO_CODE: Final = N_("draft.outside_home.none")
OUTSIDE_HOME: Final = N_("draft.outside_home.outside")


def problems(draft: Draft, speaks_for: Sequence[str] = ()) -> list[DraftWarning]:
    """What is allowed but probably not meant, to say back to the publisher (before
    signing, where the caller can): no area code, or codes outside ``speaks_for``
    (this node's ``[node] home_codes``), which peers trusting it there would hold."""
    home = [code for code in speaks_for if ":" in code]
    codes = draft.area.codes
    if not home:
        return [] if codes else [DraftWarning(NO_AREA_CODE, {})]
    outside = [code for code in codes if not any(covers_code(h, code) for h in home)]
    if codes and not outside:
        return []
    if not codes:
        return [DraftWarning(OUTSIDE_HOME_NO_CODE, {"home": ", ".join(home), "example": home[0]})]
    return [DraftWarning(OUTSIDE_HOME, {"home": ", ".join(home), "codes": ", ".join(outside)})]


def warnings(draft: Draft, speaks_for: Sequence[str], words: Words) -> list[str]:
    """``problems`` said in ``words``."""
    return [warning.said(words) for warning in problems(draft, speaks_for)]


def expiry(draft: Draft, now: datetime, max_lifetime: timedelta) -> datetime:
    if (draft.expires_at is None) == (draft.expires_in is None):
        raise BadInput("AVISA_BAD_DRAFT", "give exactly one of expires_at or expires_in")
    expires = (
        draft.expires_at
        if draft.expires_at is not None
        else now + parse_duration(draft.expires_in or "")
    )
    expires = whole_seconds(expires)
    if expires <= now:
        raise BadInput("AVISA_BAD_DRAFT", "the alert would already be expired")
    if expires - now > max_lifetime:
        raise BadInput(
            "AVISA_BAD_DRAFT",
            f"the alert would expire in {format_duration(expires - now)}, beyond this node's"
            f" policy.max_lifetime ({format_duration(max_lifetime)}); give a shorter expiry",
        )
    return expires


def build(
    draft: Draft,
    *,
    network: str,
    seq: int,
    alert_id: str,
    now: datetime,
    max_lifetime: timedelta,
    msg_type: MsgType = "alert",
    references: tuple[str, ...] = (),
) -> Alert:
    now = whole_seconds(now)
    observed = whole_seconds(draft.observed_at) if draft.observed_at else now
    if observed > now:
        raise BadInput("AVISA_BAD_DRAFT", "observed_at is in the future")
    return Alert(
        id=alert_id,
        network=network,
        seq=seq,
        msg_type=msg_type,
        references=list(references),
        kind=draft.kind,
        certainty=draft.certainty,
        observed_at=observed,
        sent_at=now,
        expires_at=expiry(draft, now, max_lifetime),
        area=draft.area,
        agencies=list(draft.agencies),
        text=dict(draft.text),
    )


def chain(previous: Alert) -> tuple[str, ...]:
    """References for a message replacing ``previous``: it, then what it replaced."""
    return (previous.id, *previous.references)[:MAX_REFERENCES]


def cancel_of(
    previous: Alert, cancel: CancelDraft, *, seq: int, alert_id: str, now: datetime
) -> Alert:
    """A cancel keeps the original's kind, area and expiry so it travels where it went."""
    now = whole_seconds(now)
    return Alert(
        id=alert_id,
        network=previous.network,
        seq=seq,
        msg_type="cancel",
        references=list(chain(previous)),
        kind=previous.kind,
        certainty=previous.certainty,
        observed_at=now,
        sent_at=now,
        expires_at=max(previous.expires_at, now + timedelta(minutes=1)),
        area=previous.area,
        agencies=list(previous.agencies),
        text=dict(cancel.text),
    )
