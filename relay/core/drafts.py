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
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from relay.core.errors import BadInput
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


NO_AREA_CODE = (
    "the area has a geohash but no area code: a peer that trusts this node for area codes"
    " (speaks_for fips:..., zip:..., iso:...) will hold this alert for review"
    " (outside_speaks_for); give one, e.g. --code fips:06111 (API: area.codes)"
)


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


NO_AREA_CODE_ES = (
    "el área tiene geohash pero ningún código de área: un nodo vecino que confía en esta red"
    " para códigos de área (speaks_for fips:..., zip:..., iso:...) retendrá la alerta para"
    " revisión (outside_speaks_for); indique uno, p. ej. --code fips:06111"
)
#: Said before signing when ``[node] home_codes`` (what peers trust this network for)
#: does not cover the alert: with no code, or with codes outside it. es and en.
OUTSIDE_HOME = {
    "en": "peers that trust this network for {home} will hold it (outside_speaks_for): {why}",
    "es": "los nodos vecinos que confían en esta red para {home} la retendrán"
    " (outside_speaks_for): {why}",
}
_WHY = {
    "en": {
        "none": "the alert has no area code; give one, e.g. --code {example}",
        "outside": "{codes} lies outside this network's home area ([node] home_codes)",
    },
    "es": {
        "none": "la alerta no tiene código de área; indique uno, p. ej. --code {example}",
        "outside": "{codes} queda fuera del área de esta red ([node] home_codes)",
    },
}


def warnings(draft: Draft, speaks_for: Sequence[str] = (), lang: str = "en") -> list[str]:
    """What is allowed but probably not meant, said back to the publisher (before
    signing, where the caller can): no area code, or codes outside ``speaks_for``
    (this node's ``[node] home_codes``), which peers trusting it there would hold."""
    home = [code for code in speaks_for if ":" in code]
    codes = draft.area.codes
    if not home:
        return [] if codes else [NO_AREA_CODE_ES if lang == "es" else NO_AREA_CODE]
    outside = [code for code in codes if not any(covers_code(h, code) for h in home)]
    if codes and not outside:
        return []
    lang = lang if lang in OUTSIDE_HOME else "en"
    why = _WHY[lang]["outside" if codes else "none"].format(
        codes=", ".join(outside), example=home[0]
    )
    return [OUTSIDE_HOME[lang].format(home=", ".join(home), why=why)]


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
