"""An alert as OASIS CAP 1.2, and a list of them as an Atom 1.0 feed (pure).

The mapping is DESIGN §12's, field by field:

====================  ====================================================
CAP                   from the alert
====================  ====================================================
identifier            ``id`` (``network/ULID``)
sender                ``network``
sent                  ``sent_at`` with a numeric offset (``+00:00``, never Z)
status / scope        ``Actual`` / ``Public``
msgType               ``Alert`` / ``Update`` / ``Cancel``
references            ``network,id,sent`` for each id replaced
info (one per lang)   language, category ``Security``, event (the kind's
                      name in that language), urgency, severity, certainty
                      (``Observed`` confirmed, ``Possible`` unconfirmed,
                      ``Unlikely`` false), eventCode ``AVISA`` = kind,
                      effective = sent, onset = observed, expires, headline,
                      description = body, instruction, parameters
                      ``AVISA_DSSE`` (the envelope) and ``AVISA_AGENCIES``
area                  areaDesc = label, circle from the geohash's centre and
                      radius, one geocode per area code (``SAME`` for FIPS,
                      ``ZIP``, ``ISO3166-2``)
====================  ====================================================

A reference's ``sent`` is the referenced message's, looked up by the caller
(``ref_sent``); when the node no longer holds it, the ULID's own timestamp
stands in (Avisa ids are minted at the second they are signed).

The few fixed words (an ``<event>``'s kind name, an entry title's ``FALSE:`` or
``WITHDRAWN:``) come from the node's gettext catalogues (``kind.*``, ``cap.*``),
passed in by the caller. A CAP ``<info>`` speaks its own language (the node's
first when it serves no catalogue for it); the Atom feed speaks one language,
the feed's (``xml:lang``), and its entries show the alert's text in that
language when the alert has it.

XML is written as text, not built as a tree: it is several times faster, and
every value passes one escape (``_x``) that also replaces any character XML
1.0 cannot carry, so no alert text can make a message malformed. The tests
validate every message against ``cap12.xsd``. No clock is read: the feed's
``updated`` is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bridges.render import WordSource, kind_name, pick_languages, prefixed, words_for
from bridges.render import clean as clean_bidi
from relay.core import geohash
from relay.core.language import Words
from relay.core.model import Alert
from relay.core.times import EPOCH

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
DSSE_PARAMETER = "AVISA_DSSE"
AGENCIES_PARAMETER = "AVISA_AGENCIES"
EVENT_CODE = "AVISA"

CERTAINTY = {"confirmed": "Observed", "unconfirmed": "Possible", "false": "Unlikely"}
MSG_TYPE = {"alert": "Alert", "update": "Update", "cancel": "Cancel"}
# How bad it is for the people in the area: an operation or a raid is severe,
# a single sighting moderate, notices and rumor control minor.
SEVERITY = {
    "operation": "Severe",
    "workplace": "Severe",
    "detention": "Severe",
    "checkpoint": "Severe",
    "sighting": "Moderate",
    "court": "Minor",
    "mobilization": "Minor",
    "notice": "Minor",
    "rumor": "Minor",
    "all_clear": "Minor",
}

# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, surrogates,
# U+FFFE/U+FFFF); alert text refuses most of them already.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _x(value: str) -> str:
    """Escape for XML text."""
    if value.isascii() and value.isprintable():  # the common case: no scan for odd chars
        if "&" in value or "<" in value or ">" in value:
            return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return value
    return _NOT_XML.sub("\ufffd", value).translate(_TEXT_ESCAPES)


def clean(text: str) -> str:
    """Without bidirectional overrides (``bridges.render.clean``); ASCII has none."""
    return text if text.isascii() else clean_bidi(text)


def _attr(value: str) -> str:
    """Escape for a double-quoted attribute."""
    if value.isascii() and value.isprintable() and not any(c in value for c in '&<>"'):
        return value
    return _NOT_XML.sub("\ufffd", value).translate(_ATTR_ESCAPES)


def cap_time(moment: datetime) -> str:
    """``2026-11-23T12:00:00+00:00``: CAP's dateTime form (its XSD forbids Z)."""
    if moment.tzinfo is not UTC or moment.microsecond:  # alert times are whole UTC seconds
        moment = moment.astimezone(UTC).replace(microsecond=0)
    return moment.isoformat()


def atom_time(moment: datetime) -> str:
    return cap_time(moment)[:19] + "Z"


def ulid_time(alert_id: str) -> datetime:
    """When an Avisa id was minted: the first 10 ULID characters are milliseconds."""
    ulid = alert_id.rpartition("/")[2]
    millis = 0
    for char in ulid[:10]:
        millis = millis * 32 + _CROCKFORD.index(char)
    return datetime.fromtimestamp(millis // 1000, UTC) if millis else EPOCH


def geocode(code: str) -> tuple[str, str]:
    """An area code as a CAP geocode: ``fips:06037`` → ``("SAME", "006037")``.

    SAME (the US emergency alert system's location code: subdivision digit,
    state, county) is what US public-alerting tools match on; a whole state is
    county ``000``.
    """
    scheme, _, value = code.partition(":")
    if scheme == "fips":
        state, county = value[:2], value[2:] or "000"
        return "SAME", f"0{state}{county:0>3}"
    if scheme == "zip":
        return "ZIP", value
    return "ISO3166-2", value.upper()


def circle(geohash_text: str, radius_m: int) -> str:
    """CAP's ``lat,lon radius_km`` around the centre of the geohash cell."""
    lat, lon, _, _ = geohash.decode(geohash_text)
    km = f"{radius_m / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{lat:.6f},{lon:.6f} {km}"


def _value_pair(element: str, name: str, value: str) -> str:
    return f"<{element}><valueName>{_x(name)}</valueName><value>{_x(value)}</value></{element}>"


def _info(alert: Alert, lang: str, envelope: str, area: str, words: Words) -> str:
    text = alert.text[lang]
    parts = [
        f"<info><language>{_x(lang)}</language><category>Security</category>",
        f"<event>{_x(kind_name(alert.kind, words))}</event>",
        f"<responseType>{_response(alert)}</responseType>",
        f"<urgency>{_urgency(alert)}</urgency>",
        f"<severity>{SEVERITY.get(alert.kind, 'Unknown')}</severity>",
        f"<certainty>{CERTAINTY[alert.certainty]}</certainty>",
        _value_pair("eventCode", EVENT_CODE, alert.kind),
        f"<effective>{cap_time(alert.sent_at)}</effective>",
        f"<onset>{cap_time(alert.observed_at)}</onset>",
        f"<expires>{cap_time(alert.expires_at)}</expires>",
        f"<senderName>{_x(alert.network)}</senderName>",
        f"<headline>{_x(clean(text.headline))}</headline>",
        f"<description>{_x(clean(text.body))}</description>",
    ]
    if text.instruction:
        parts.append(f"<instruction>{_x(clean(text.instruction))}</instruction>")
    if alert.agencies:
        parts.append(_value_pair("parameter", AGENCIES_PARAMETER, " ".join(alert.agencies)))
    parts.append(_value_pair("parameter", DSSE_PARAMETER, envelope))
    parts.append(area)
    parts.append("</info>")
    return "".join(parts)


def _response(alert: Alert) -> str:
    if alert.msg_type == "cancel" or alert.kind == "all_clear":
        return "AllClear"
    return "None" if alert.certainty == "false" else "Monitor"


def _urgency(alert: Alert) -> str:
    if alert.msg_type == "cancel" or alert.kind == "all_clear":
        return "Past"
    return "Unknown" if alert.certainty == "false" else "Immediate"


def _area(alert: Alert) -> str:
    area = alert.area
    codes = "".join(_value_pair("geocode", *geocode(code)) for code in area.codes)
    return (
        f"<area><areaDesc>{_x(clean(area.label))}</areaDesc>"
        f"<circle>{circle(area.geohash, area.radius_m)}</circle>{codes}</area>"
    )


def references(alert: Alert, ref_sent: Mapping[str, datetime]) -> str:
    """``sender,identifier,sent`` for each replaced id, space-separated."""
    return " ".join(
        f"{ref.partition('/')[0]},{ref},{cap_time(ref_sent.get(ref) or ulid_time(ref))}"
        for ref in alert.references
    )


def render_alert(
    alert: Alert,
    envelope: bytes,
    ref_sent: Mapping[str, datetime] | None = None,
    *,
    catalogues: WordSource,
) -> bytes:
    """One CAP 1.2 ``<alert>`` that validates against cap12.xsd.

    Each ``<info>``'s ``<event>`` is the kind's name in that info's language, or in
    the node's first language when the node serves no catalogue for it."""
    dsse = envelope.decode()
    area = _area(alert)
    head = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{CAP_NS}">',
        f"<identifier>{_x(alert.id)}</identifier><sender>{_x(alert.network)}</sender>",
        f"<sent>{cap_time(alert.sent_at)}</sent><status>Actual</status>",
        f"<msgType>{MSG_TYPE[alert.msg_type]}</msgType><source>Avisa</source>",
        "<scope>Public</scope>",
    ]
    if alert.references:
        head.append(f"<references>{_x(references(alert, ref_sent or {}))}</references>")
    infos = [_info(alert, lang, dsse, area, words_for(catalogues, lang)) for lang in alert.text]
    return "".join([*head, *infos, "</alert>\n"]).encode()


# --- Atom -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """The feed's own identity: its URL (also its id), title and author."""

    self_url: str
    network: str
    title: str
    language: str


def feed_language(alert: Alert, words: Words) -> str:
    """The alert's text in the feed's language if it has one, else its first."""
    chosen = pick_languages(alert.text, [words.language])
    return chosen[0] if chosen else next(iter(alert.text))


def entry_title(alert: Alert, words: Words) -> str:
    """The headline in the feed's language, prefixed the way a lock screen needs it
    (``cap.withdrawn``, ``cap.false_prefix`` in the feed's language)."""
    headline = clean(alert.text[feed_language(alert, words)].headline)
    if alert.msg_type == "cancel":
        return prefixed(words.gettext("cap.withdrawn"), headline)
    if alert.certainty == "false":
        return prefixed(words.gettext("cap.false_prefix"), headline)
    return headline


def render_entry(alert: Alert, link: str, words: Words) -> str:
    """One ``<entry>`` in the feed's language (``words``): links to the CAP message
    and carries its key fields."""
    lang = feed_language(alert, words)
    summary = clean(alert.text[lang].body) or clean(alert.text[lang].headline)
    sent = cap_time(alert.sent_at)
    atom_sent = sent[:19] + "Z"
    href = _attr(link)
    # One f-string: a feed renders a thousand of these. Network, id and kind match
    # strict patterns (relay.core.model) and need no escaping.
    return (
        f"<entry><id>{href}</id><title>{_x(entry_title(alert, words))}</title>"
        f"<updated>{atom_sent}</updated><published>{atom_sent}</published>"
        f"<author><name>{alert.network}</name></author>"
        f'<link rel="alternate" type="{CAP_MEDIA_TYPE}" href="{href}"/>'
        f'<category term="{alert.kind}"/><summary>{_x(summary)}</summary>'
        f"<cap:identifier>{alert.id}</cap:identifier><cap:sent>{sent}</cap:sent>"
        f"<cap:msgType>{MSG_TYPE[alert.msg_type]}</cap:msgType><cap:status>Actual</cap:status>"
        f"<cap:certainty>{CERTAINTY[alert.certainty]}</cap:certainty>"
        f"<cap:expires>{cap_time(alert.expires_at)}</cap:expires>"
        f"<cap:areaDesc>{_x(clean(alert.area.label))}</cap:areaDesc></entry>"
    )


def render_feed(feed: FeedInfo, entries: Sequence[str], updated: datetime) -> bytes:
    """The Atom document around already rendered entries (newest first)."""
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="{ATOM_NS}" xmlns:cap="{CAP_NS}"'
        f' xml:lang="{_attr(feed.language)}">'
        f"<id>{_x(feed.self_url)}</id><title>{_x(feed.title)}</title>"
        f"<updated>{atom_time(updated)}</updated>"
        f"<author><name>{_x(feed.network)}</name></author>"
        f'<link rel="self" type="application/atom+xml" href="{_attr(feed.self_url)}"/>'
        "<generator>Avisa</generator>"
    )
    return "".join([head, *entries, "</feed>\n"]).encode()
