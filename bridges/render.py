"""An alert as the message room members read: plain text and HTML (pure).

``render`` is a function of the alert, who signed it, the languages a route
wants, the message's status, a time zone and ``now``; it reads no clock and
does no I/O, so every wording decision is tested without a homeserver.

One message holds one section per language (in the route's order). A
section's fixed words (status lines, labels, agency names) come from the
gettext catalogue (ids ``matrix.*``, ``agency.*`` and the shared ``kind.*``) of
its language when the node serves it (``es-MX`` reads ``es``), else of the
node's first language (``relay.core.language.negotiate``); the caller passes
the node's catalogues, so this stays a pure function. Emoji marks and the
layout (`` · ``, ``➜``) are not words and stay here. A section says, in this
order, what matters first on a phone's lock screen: certainty and kind, the
headline, the text, the instruction, the area, when it was seen and until when
it holds, the agencies, and the chain of networks that signed it (origin
first, then the networks that endorsed it).

A debunked rumor (``certainty = false``) opens with FALSE / FALSO twice, in
the status line and before the headline, so it cannot be read as an alert.
A withdrawn alert opens with WITHDRAWN / RETIRADA, an expired one with
EXPIRED / VENCIDA, and the old text they replace is struck through.

All alert text is hostile until escaped: every value goes through
``html.escape`` for the HTML body, and bidirectional-override characters
(which can make text display in an order other than the one signed) are
removed from both bodies. A size budget keeps the event well under Matrix's
64 KiB limit even as an edit that carries the body twice, encrypted.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final, Literal, Protocol

from relay.core.language import KIND_NAMES, N_, Words, negotiate
from relay.core.model import Alert, Text

Status = Literal["active", "cancelled", "superseded", "expired", "held"]

# plain + HTML, measured as ASCII-escaped JSON (the worst case on the wire). An
# edit carries both twice; base64 for encryption adds a third: 2 x 20 000 x 4/3
# stays under the 65 536 bytes Synapse allows for an event.
MAX_RENDERED_BYTES = 20_000
_TRUNCATIONS = (None, 1000, 400, 150, 0)
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_RED = "#c00000"


class WordSource(Protocol):
    """The node's catalogues (``relay.storage.catalogues.Catalogues``), as rendering needs them."""

    @property
    def languages(self) -> tuple[str, ...]: ...

    def words(self, language: str | None = None) -> Words: ...


def words_for(catalogues: WordSource, tag: str) -> Words:
    """The words for a section in ``tag`` (``es-MX`` → ``es``); the node's first language
    when it serves none like it (``relay.core.language.negotiate``)."""
    return catalogues.words(negotiate(catalogues.languages, explicit=tag))


#: Agencies named with a word of the reader's language; any other code is a name
#: people say as it is (``ice`` → ICE, ``cbp`` → CBP).
AGENCY_NAMES: Final = {"police": N_("agency.police"), "unknown": N_("agency.unknown")}
_CERTAINTY: Final = {
    "confirmed": ("🔴", N_("matrix.certainty.confirmed")),
    "unconfirmed": ("🟡", N_("matrix.certainty.unconfirmed")),
    "false": ("❌", N_("matrix.certainty.false")),
}


def kind_name(kind: str, words: Words) -> str:
    """The kind's name in ``words``' language (the shared ``kind.*`` ids)."""
    return words.gettext(KIND_NAMES[kind]) if kind in KIND_NAMES else kind


def agency_name(code: str, words: Words) -> str:
    """How an agency code reads (``ice`` → ICE, ``police`` → Policía), as in the texts."""
    return words.gettext(AGENCY_NAMES[code]) if code in AGENCY_NAMES else code.upper()


def _certainty(certainty: str, words: Words) -> str:
    if certainty not in _CERTAINTY:
        return certainty
    mark, message = _CERTAINTY[certainty]
    return f"{mark} {words.gettext(message)}"


@dataclass(frozen=True, slots=True)
class Rendered:
    plain: str
    html: str


@dataclass(frozen=True, slots=True)
class Signers:
    origin: str
    endorsed_by: tuple[str, ...] = ()


def pick_languages(texts: Mapping[str, Text], wanted: Sequence[str]) -> list[str]:
    """The alert's language tags a route wants, in the route's order.

    ``es`` wants ``es`` and ``es-MX``; no wishes means every language the
    alert has, in its own order. Empty when nothing matches.
    """
    if not wanted:
        return list(texts)
    chosen: list[str] = []
    for want in wanted:
        for tag in texts:
            if (tag == want or tag.startswith(want + "-")) and tag not in chosen:
                chosen.append(tag)
    return chosen


def format_time(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    name = local.tzname() or "UTC"
    return local.strftime("%Y-%m-%d %H:%M ") + name


def clean(text: str) -> str:
    return _BIDI.sub("", text)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a section, kept as parts so each body escapes its own way."""

    text: str
    style: Literal["plain", "strong", "em", "del", "alarm", "small"] = "plain"


def prefixed(prefix: str, headline: str) -> str:
    """``FALSO: headline``, ``RETIRADA: headline``; a headline that already opens with
    the word (``Retirada: …``, ``falso - …``, any case or accents) is not given it twice."""
    word = prefix.rstrip(":").strip()
    head = headline.lstrip()
    if (
        _folded(head[: len(word)]) == _folded(word)
        and not head[len(word) : len(word) + 1].isalnum()
    ):
        rest = head[len(word) :].lstrip(" :-–—.,").strip()
        return f"{word}: {rest}" if rest else word
    return f"{word}: {headline}"


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()


def _header(alert: Alert, status: Status, words: Words) -> list[Line]:
    kind = kind_name(alert.kind, words)
    certainty = _certainty(alert.certainty, words)
    if status == "active":
        update = " (" + words.gettext("matrix.update") + ")" if alert.msg_type == "update" else ""
        style: Literal["alarm", "strong"] = "alarm" if alert.certainty == "false" else "strong"
        return [Line(f"{certainty} · {kind}{update}", style)]
    if alert.certainty == "false":
        # A debunk stays marked FALSE whatever happens to it later.
        kind = f"{certainty} · {kind}"
    if status == "cancelled":
        withdrawn = words.gettext("matrix.withdrawn")
        return [Line(f"⚪ {withdrawn} · {kind}", "alarm")]
    if status == "expired":
        expired = words.gettext("matrix.expired")
        return [
            Line(f"⌛ {expired} · {kind}", "strong"),
            Line(words.gettext("matrix.expired.note"), "em"),
        ]
    if status == "held":
        held = words.gettext("matrix.held")
        return [
            Line(f"⏸ {held} · {kind}", "alarm"),
            Line(words.gettext("matrix.held.note"), "em"),
        ]
    superseded = words.gettext("matrix.superseded")
    return [
        Line(f"🔄 {superseded} · {kind}", "strong"),
        Line(words.gettext("matrix.superseded.note"), "em"),
    ]


def _content(text: Text, alert: Alert, status: Status, words: Words, cut: int | None) -> list[Line]:
    headline = clean(text.headline)
    if alert.certainty == "false":
        headline = prefixed(words.gettext("matrix.false_prefix"), headline)
    if status == "held":
        # Its signer is in doubt: keep only the struck headline, so the room can tell
        # which message this was, and repeat none of its instructions.
        return [Line(headline, "del")]
    if status in ("expired", "superseded"):
        lines = [Line(headline, "del")]
    elif alert.certainty == "false":
        lines = [Line(headline, "alarm")]
    else:
        lines = [Line(headline, "strong")]
    body = _cut(clean(text.body), cut)
    if body:
        lines.append(Line(body))
    if text.instruction and status == "active":
        instruction = _cut(clean(text.instruction), cut)
        if instruction:
            lines.append(Line("➜ " + instruction, "em"))
    return lines


def _withdrawn_lines(
    replaced: Alert | None, lang: str, signers: Signers, words: Words
) -> list[Line]:
    lines = [Line(words.gettext("matrix.withdrawn_by", network=signers.origin), "small")]
    if replaced is not None:
        old = replaced.text.get(lang) or next(iter(replaced.text.values()))
        lines.append(Line(clean(old.headline), "del"))
    return lines


def _facts(alert: Alert, signers: Signers, zone: tzinfo, words: Words) -> list[Line]:
    observed = words.gettext("matrix.observed", time=format_time(alert.observed_at, zone))
    expires = words.gettext("matrix.expires", time=format_time(alert.expires_at, zone))
    lines = [
        Line("📍 " + words.gettext("matrix.area", area=clean(alert.area.label)), "small"),
        Line(f"🕒 {observed} · {expires}", "small"),
    ]
    if alert.agencies:
        names = ", ".join(agency_name(code, words) for code in alert.agencies)
        lines.append(Line(words.gettext("matrix.agencies", agencies=names), "small"))
    chain = words.gettext("matrix.signed_by", network=signers.origin)
    if signers.endorsed_by:
        endorsed = words.gettext("matrix.endorsed_by", networks=", ".join(signers.endorsed_by))
        chain += f" · {endorsed}"
    lines.append(Line("🔏 " + chain, "small"))
    return lines


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit].rstrip() + "…" if limit else ""


def _section(
    alert: Alert,
    lang: str,
    words: Words,
    signers: Signers,
    status: Status,
    zone: tzinfo,
    replaced: Alert | None,
    cut: int | None,
) -> list[Line]:
    text = alert.text[lang]
    lines = _header(alert, status, words)
    lines += _content(text, alert, status, words, cut)
    if status == "cancelled":
        lines += _withdrawn_lines(replaced, lang, signers, words)
    return lines + _facts(alert, signers, zone, words)


_TAGS = {
    "plain": ("", ""),
    "strong": ("<strong>", "</strong>"),
    "em": ("<em>", "</em>"),
    "del": ("<del>", "</del>"),
    "alarm": (f'<font color="{_RED}" data-mx-color="{_RED}"><strong>', "</strong></font>"),
    "small": ("", ""),
}


def _html_line(line: Line) -> str:
    opening, closing = _TAGS[line.style]
    escaped = html.escape(line.text, quote=True).replace("\n", "<br>")
    return f"{opening}{escaped}{closing}"


def _join(sections: list[list[Line]]) -> Rendered:
    plain = "\n\n———\n\n".join("\n".join(line.text for line in lines) for lines in sections)
    html_parts = []
    for lines in sections:
        main = [line for line in lines if line.style != "small"]
        small = [line for line in lines if line.style == "small"]
        part = "".join(f"<p>{_html_line(line)}</p>" for line in main)
        part += "<p>" + "<br>".join(_html_line(line) for line in small) + "</p>"
        html_parts.append(part)
    return Rendered(plain=plain, html="<hr>".join(html_parts))


def rendered_size(rendered: Rendered) -> int:
    return len(json.dumps(rendered.plain)) + len(json.dumps(rendered.html))


def render(
    alert: Alert,
    *,
    signers: Signers,
    languages: Sequence[str],
    now: datetime,
    catalogues: WordSource,
    status: Status = "active",
    zone: tzinfo = UTC,
    replaced: Alert | None = None,
    budget: int = MAX_RENDERED_BYTES,
) -> Rendered:
    """The message for ``alert`` in ``languages`` (tags the alert has).

    ``status`` is what the room should see: ``active`` (shown as expired
    once ``now`` passes its expiry), ``cancelled`` (``alert`` is the cancel,
    ``replaced`` the alert it withdraws), ``superseded`` (``alert`` is the old
    version, replaced by one outside the route), ``expired`` or ``held`` (taken
    back for review after it was shown, e.g. its key was revoked). A section's
    fixed words come from ``catalogues`` in its language, or the node's first.
    """
    if status == "active" and alert.expires_at <= now:
        status = "expired"
    tags = [tag for tag in languages if tag in alert.text] or list(alert.text)[:1]
    words = {tag: words_for(catalogues, tag) for tag in tags}
    result = Rendered("", "")
    for cut in _TRUNCATIONS:
        result = _join(
            [_section(alert, tag, words[tag], signers, status, zone, replaced, cut) for tag in tags]
        )
        if rendered_size(result) <= budget:
            return result
    # Even headlines alone are too long in every language: keep the route's first ones.
    for count in range(len(tags) - 1, 0, -1):
        result = _join(
            [
                _section(alert, tag, words[tag], signers, status, zone, replaced, 0)
                for tag in tags[:count]
            ]
        )
        if rendered_size(result) <= budget:
            break
    return result
