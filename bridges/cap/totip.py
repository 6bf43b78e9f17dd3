"""A CAP message from an outside source as a tip for the desk (pure).

An official notice is not a verified alert: it goes to the verification desk
as a tip (``channel = "cap"``, DESIGN §10), where people decide what, if
anything, to publish. The mapping keeps what a verifier needs and what the
desk can cluster on:

- text: headline, description and instruction of the first ``<info>`` (the
  sender's main language), or the event name when there is no headline; cut
  to the tip's 2,000 characters; control characters become spaces;
- where: the areas' ``areaDesc`` joined (≤ 200); a geohash from the first
  ``circle``'s centre (precision from its radius) or else the first polygon's
  centroid, 4–7 characters as tips allow; area codes from the geocodes that
  name one (``SAME``/``FIPS6``/``FIPS`` → ``fips:``, ``ZIP`` → ``zip:``,
  ``ISO3166-2`` → ``iso:``);
- observed_at: the info's ``onset``, else ``effective``, else ``sent``;
- language: the info's, when it is a tag the desk accepts.

The result is validated against ``TipIn``'s own bounds (``msgspec.convert``),
so a message that cannot become a tip is refused here, not at the desk.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

from bridges.cap.parse import CapArea, CapInfo, CapMessage
from relay.core import geohash
from relay.core.tips import TipIn

MAX_TEXT = 2000
MAX_LABEL = 200
MAX_CODES = 16
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")
_CIRCLE = re.compile(r"^\s*([-+]?[0-9.]+)\s*,\s*([-+]?[0-9.]+)\s+([0-9.]+)\s*$")
_POINT = re.compile(r"^([-+]?[0-9.]+),([-+]?[0-9.]+)$")
_FIPS_NAMES = frozenset({"SAME", "FIPS6", "FIPS"})


class Unmappable(ValueError):
    """The message is valid CAP but cannot be a tip (nothing to read in it)."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def tip_text(info: CapInfo) -> str:
    parts = [info.headline or info.event, info.description, info.instruction]
    text = "\n\n".join(part for part in parts if part)
    return _cut(_TEXT_CONTROLS.sub(" ", text).strip(), MAX_TEXT)


def area_code(name: str, value: str) -> str | None:
    """The Avisa area code a CAP geocode names, if it names one."""
    name, value = name.strip().upper(), value.strip()
    if name in _FIPS_NAMES and value.isascii() and value.isdigit():
        if len(value) == 6:
            state, county = value[1:3], value[3:]
        elif len(value) == 5:
            state, county = value[:2], value[2:]
        else:
            return None
        return f"fips:{state}" if county == "000" else f"fips:{state}{county}"
    if name == "ZIP" and re.fullmatch(r"[0-9]{5}", value):
        return f"zip:{value}"
    if name in ("ISO3166-2", "ISO 3166-2") and re.fullmatch(
        r"[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?", value
    ):
        return f"iso:{value.lower()}"
    return None


def _precision(radius_km: float) -> int:
    for limit, precision in ((0.1, 7), (0.6, 6), (2.5, 5)):
        if radius_km <= limit:
            return precision
    return 4


def _point_hash(lat: float, lon: float, precision: int) -> str | None:
    try:
        return geohash.encode(lat, lon, precision)
    except ValueError:
        return None


def area_geohash(areas: tuple[CapArea, ...]) -> str | None:
    """A geohash for the first circle, else the first polygon's centroid."""
    for area in areas:
        for text in area.circles:
            match = _CIRCLE.match(text)
            if match:
                lat, lon, radius = (float(group) for group in match.groups())
                return _point_hash(lat, lon, _precision(radius))
    for area in areas:
        for text in area.polygons:
            points = [_POINT.match(pair) for pair in text.split()]
            if points and all(points):
                lats = [float(m.group(1)) for m in points if m]
                lons = [float(m.group(2)) for m in points if m]
                return _point_hash(sum(lats) / len(lats), sum(lons) / len(lons), 5)
    return None


def where(message: CapMessage, info: CapInfo) -> dict[str, object]:
    label = "; ".join(area.desc for area in info.areas if area.desc)
    label = _LINE_CONTROLS.sub(" ", label).strip() or message.sender
    codes: list[str] = []
    for area in info.areas:
        for name, value in area.geocodes:
            code = area_code(name, value)
            if code and code not in codes and len(codes) < MAX_CODES:
                codes.append(code)
    return {
        "label": _cut(_LINE_CONTROLS.sub(" ", label).strip(), MAX_LABEL),
        "geohash": area_geohash(info.areas),
        "codes": codes,
    }


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def to_tip(message: CapMessage) -> TipIn:
    """The tip a CAP message files at the desk; ``Unmappable`` if there is none."""
    if not message.infos:
        raise Unmappable("no <info>: nothing for a verifier to read")
    info = message.infos[0]
    text = tip_text(info)
    if not text:
        raise Unmappable("no text")
    observed = _utc(info.onset or info.effective or message.sent)
    primary, _, rest = info.language.partition("-")
    language = primary.lower() + ("-" + rest if rest else "")
    fields = {
        "text": text,
        "where": where(message, info),
        "channel": "cap",
        "observed_at": observed,
        "language": language if _LANG.match(language) else None,
    }
    try:
        return msgspec.convert(fields, TipIn)
    except (msgspec.ValidationError, ValueError) as exc:
        raise Unmappable(f"not a valid tip: {exc}") from None
