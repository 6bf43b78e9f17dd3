"""An alert as the message room members read: plain text and HTML (pure).

``render`` is a function of the alert, who signed it, the languages a route
wants, the message's status, a time zone and ``now``; it reads no clock and
does no I/O, so every wording decision is tested without a homeserver.

One message holds one section per language (in the route's order), each with
that language's template: Spanish and English here, English labels for any
other language the alert carries. A section says, in this order, what matters
first on a phone's lock screen: certainty and kind, the headline, the text,
the instruction, the area, when it was seen and until when it holds, the
agencies, and the chain of networks that signed it (origin first, then the
networks that endorsed it).

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
from typing import Literal

from relay.core.model import Alert, Text

Status = Literal["active", "cancelled", "superseded", "expired", "held"]

# plain + HTML, measured as ASCII-escaped JSON (the worst case on the wire). An
# edit carries both twice; base64 for encryption adds a third: 2 x 20 000 x 4/3
# stays under the 65 536 bytes Synapse allows for an event.
MAX_RENDERED_BYTES = 20_000
_TRUNCATIONS = (None, 1000, 400, 150, 0)
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_RED = "#c00000"


@dataclass(frozen=True, slots=True)
class Template:
    kinds: Mapping[str, str]
    certainty: Mapping[str, str]
    false_prefix: str
    update: str
    withdrawn: str
    withdrawn_by: str
    expired: str
    expired_note: str
    held: str
    held_note: str
    superseded: str
    replaced_text: str
    area: str
    observed: str
    expires: str
    agencies: str
    agency_names: Mapping[str, str]
    signed_by: str
    origin: str
    endorsed_by: str


SPANISH = Template(
    kinds={
        "sighting": "Avistamiento",
        "operation": "Operativo",
        "checkpoint": "Retén",
        "workplace": "Redada en lugar de trabajo",
        "detention": "Detención",
        "court": "Tribunal",
        "mobilization": "Movilización",
        "rumor": "Rumor",
        "all_clear": "Todo despejado",
        "notice": "Aviso",
    },
    certainty={
        "confirmed": "🔴 CONFIRMADO",
        "unconfirmed": "🟡 SIN CONFIRMAR",
        "false": "❌ FALSO — RUMOR DESMENTIDO",
    },
    false_prefix="FALSO:",
    update="actualización",
    withdrawn="⚪ RETIRADA",
    withdrawn_by="retirada por",
    expired="⌛ VENCIDA",
    expired_note="Esta alerta ya no está vigente.",
    held="⏸ RETIRADA PARA REVISIÓN",
    held_note="Se está revisando quién la firmó: no actúe según esta alerta por ahora.",
    superseded="🔄 ACTUALIZADA",
    replaced_text="La nueva versión ya no corresponde a esta sala.",
    area="Zona",
    observed="Visto",
    expires="Vence",
    agencies="Agencias",
    agency_names={"police": "Policía", "unknown": "desconocida"},
    signed_by="Firmado por",
    origin="origen",
    endorsed_by="avalado por",
)

ENGLISH = Template(
    kinds={
        "sighting": "Sighting",
        "operation": "Operation",
        "checkpoint": "Checkpoint",
        "workplace": "Workplace raid",
        "detention": "Detention",
        "court": "Court",
        "mobilization": "Mobilization",
        "rumor": "Rumor",
        "all_clear": "All clear",
        "notice": "Notice",
    },
    certainty={
        "confirmed": "🔴 CONFIRMED",
        "unconfirmed": "🟡 UNCONFIRMED",
        "false": "❌ FALSE — DEBUNKED RUMOR",
    },
    false_prefix="FALSE:",
    update="update",
    withdrawn="⚪ WITHDRAWN",
    withdrawn_by="withdrawn by",
    expired="⌛ EXPIRED",
    expired_note="This alert no longer holds.",
    held="⏸ WITHDRAWN FOR REVIEW",
    held_note="Who signed it is being checked: do not act on this alert for now.",
    superseded="🔄 UPDATED",
    replaced_text="The new version no longer concerns this room.",
    area="Area",
    observed="Seen",
    expires="Expires",
    agencies="Agencies",
    agency_names={"police": "Police", "unknown": "unknown"},
    signed_by="Signed by",
    origin="origin",
    endorsed_by="endorsed by",
)

TEMPLATES: Mapping[str, Template] = {"es": SPANISH, "en": ENGLISH}


def template_for(lang: str) -> Template:
    return TEMPLATES.get(lang.split("-", 1)[0].lower(), ENGLISH)


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


def _agency(code: str, words: Template) -> str:
    return words.agency_names.get(code, code.upper())


def agency_name(code: str, lang: str) -> str:
    """How an agency code reads (``ice`` → ICE, ``police`` → Policía), as in the texts."""
    return _agency(code, template_for(lang))


def _header(alert: Alert, status: Status, words: Template) -> list[Line]:
    kind = words.kinds.get(alert.kind, alert.kind)
    certainty = words.certainty.get(alert.certainty, alert.certainty)
    if status == "active":
        update = f" ({words.update})" if alert.msg_type == "update" else ""
        style: Literal["alarm", "strong"] = "alarm" if alert.certainty == "false" else "strong"
        return [Line(f"{certainty} · {kind}{update}", style)]
    if alert.certainty == "false":
        # A debunk stays marked FALSE whatever happens to it later.
        kind = f"{certainty} · {kind}"
    if status == "cancelled":
        return [Line(f"{words.withdrawn} · {kind}", "alarm")]
    if status == "expired":
        return [Line(f"{words.expired} · {kind}", "strong"), Line(words.expired_note, "em")]
    if status == "held":
        return [Line(f"{words.held} · {kind}", "alarm"), Line(words.held_note, "em")]
    return [Line(f"{words.superseded} · {kind}", "strong"), Line(words.replaced_text, "em")]


def _content(
    text: Text, alert: Alert, status: Status, words: Template, cut: int | None
) -> list[Line]:
    headline = clean(text.headline)
    if alert.certainty == "false":
        headline = prefixed(words.false_prefix, headline)
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
    replaced: Alert | None, lang: str, signers: Signers, words: Template
) -> list[Line]:
    lines = [Line(f"{words.withdrawn_by} {signers.origin}", "small")]
    if replaced is not None:
        old = replaced.text.get(lang) or next(iter(replaced.text.values()))
        lines.append(Line(clean(old.headline), "del"))
    return lines


def _facts(alert: Alert, signers: Signers, zone: tzinfo, words: Template) -> list[Line]:
    lines = [
        Line(f"📍 {words.area}: {clean(alert.area.label)}", "small"),
        Line(
            f"🕒 {words.observed}: {format_time(alert.observed_at, zone)} · "
            f"{words.expires}: {format_time(alert.expires_at, zone)}",
            "small",
        ),
    ]
    if alert.agencies:
        names = ", ".join(_agency(code, words) for code in alert.agencies)
        lines.append(Line(f"{words.agencies}: {names}", "small"))
    chain = f"{words.signed_by}: {signers.origin} ({words.origin})"
    if signers.endorsed_by:
        chain += f" · {words.endorsed_by}: {', '.join(signers.endorsed_by)}"
    lines.append(Line("🔏 " + chain, "small"))
    return lines


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit].rstrip() + "…" if limit else ""


def _section(
    alert: Alert,
    lang: str,
    signers: Signers,
    status: Status,
    zone: tzinfo,
    replaced: Alert | None,
    cut: int | None,
) -> list[Line]:
    words = template_for(lang)
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
    back for review after it was shown, e.g. its key was revoked).
    """
    if status == "active" and alert.expires_at <= now:
        status = "expired"
    tags = [tag for tag in languages if tag in alert.text] or list(alert.text)[:1]
    result = Rendered("", "")
    for cut in _TRUNCATIONS:
        result = _join([_section(alert, tag, signers, status, zone, replaced, cut) for tag in tags])
        if rendered_size(result) <= budget:
            return result
    # Even headlines alone are too long in every language: keep the route's first ones.
    for count in range(len(tags) - 1, 0, -1):
        result = _join(
            [_section(alert, tag, signers, status, zone, replaced, 0) for tag in tags[:count]]
        )
        if rendered_size(result) <= budget:
            break
    return result
