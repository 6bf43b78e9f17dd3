"""The words a text line sends: alerts, updates, cancels and replies (pure).

An alert becomes one short text in one language: a status word first (what
matters on a lock screen), the kind and headline, the body, the instruction,
the area, and how to stop. It must fit ``max_segments``: the body is cut
first, then the instruction, then the headline, each cut ending in ``...``
(GSM-7, unlike ``…``). The text is one line (parts end in a full stop):
phones wrap it anyway, and a newline costs a character. Bidirectional
overrides and control characters never reach a phone.

An alert sent back to review (its key was revoked) becomes one text with
``RETIRADA PARA REVISION:`` / ``WITHDRAWN FOR REVIEW:`` and its headline only;
if a reviewer accepts it again, its full text goes again, marked ``VIGENTE DE
NUEVO`` / ``IN FORCE AGAIN``. Fixed words avoid accents, so a text stays GSM-7
(160 characters a segment) unless the alert's own words need more.

Replies (subscribed, stopped, help, tip received) exist in Spanish and
English; the help text can be replaced per language in the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bridges.render import pick_languages
from bridges.sms.gsm import Encoded, encode
from relay.core.model import Alert, Text

Accents = Literal["ucs2", "transliterate"]
Status = Literal["alert", "update", "cancel", "reinstated"]

_UNSAFE = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_CUT = "..."

STATUS_WORDS = {
    "es": {
        "confirmed": "ALERTA CONFIRMADA",
        "unconfirmed": "SIN CONFIRMAR",
        "false": "FALSO, RUMOR DESMENTIDO",
        "update": "ACTUALIZACION",
        "cancel": "CANCELADO:",
        "withdrawn": "RETIRADA PARA REVISION:",
        "withdrawn_note": "No actue segun esta alerta hasta nuevo aviso",
        "reinstated": "VIGENTE DE NUEVO",
        "area": "Zona",
        "stop": "ALTO para salir",
    },
    "en": {
        "confirmed": "CONFIRMED ALERT",
        "unconfirmed": "UNCONFIRMED",
        "false": "FALSE, RUMOR DEBUNKED",
        "update": "UPDATE",
        "cancel": "CANCELLED:",
        "withdrawn": "WITHDRAWN FOR REVIEW:",
        "withdrawn_note": "Do not act on this alert until further notice",
        "reinstated": "IN FORCE AGAIN",
        "area": "Area",
        "stop": "STOP to quit",
    },
}

REPLIES = {
    "es": {
        "subscribed": "Avisa: suscrito a las alertas verificadas de su zona. ALTO para salir, "
        "AYUDA para ayuda.",
        "unknown_zip": " No conocemos el codigo {zip}: recibira toda la zona.",
        "stopped": "Avisa: ya no recibira mensajes. Envie {keyword} para volver.",
        "started": "Avisa: suscrito de nuevo. ALTO para salir.",
        "not_subscribed": "Avisa: no estaba suscrito. Envie {keyword} para recibir alertas.",
        "help": "Avisa: alertas verificadas de respuesta rapida. Envie {keyword} para "
        "suscribirse, ALTO para salir. Un mensaje cualquiera es un reporte.",
        "help_no_tips": "Avisa: alertas verificadas de respuesta rapida. Envie {keyword} "
        "para suscribirse, ALTO para salir.",
        "tip": "Avisa: recibimos su reporte. Alguien lo verificara. No responda con datos "
        "personales.",
    },
    "en": {
        "subscribed": "Avisa: subscribed to verified alerts for your area. STOP to quit, "
        "HELP for help.",
        "unknown_zip": " We do not know ZIP {zip}: you get the whole area.",
        "stopped": "Avisa: you will get no more messages. Text {keyword} to come back.",
        "started": "Avisa: subscribed again. STOP to quit.",
        "not_subscribed": "Avisa: you were not subscribed. Text {keyword} for alerts.",
        "help": "Avisa: verified rapid-response alerts. Text {keyword} to subscribe, STOP to "
        "quit. Any other message is a report.",
        "help_no_tips": "Avisa: verified rapid-response alerts. Text {keyword} to subscribe, "
        "STOP to quit.",
        "tip": "Avisa: we got your report. Someone will verify it. Do not send personal data.",
    },
}


@dataclass(frozen=True, slots=True)
class Layout:
    accents: Accents = "ucs2"
    max_segments: int = 4


def clean(text: str) -> str:
    """One line: no controls, no bidirectional overrides, runs of space as one."""
    return _SPACES.sub(" ", _UNSAFE.sub(" ", text)).strip()


# Until the texts read the catalogues (issue 31, the SMS part replaces this with the
# shared kind.* ids): the kind names bridges.render used to hold.
_KINDS = {
    "es": {
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
    "en": {
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
}


def _words(lang: str) -> Mapping[str, str]:
    return STATUS_WORDS["es" if lang.startswith("es") else "en"]


def language_for(alert: Alert, wanted: str) -> str:
    """The subscriber's language when the alert has it, else the alert's first."""
    chosen = pick_languages(alert.text, [wanted])
    return chosen[0] if chosen else next(iter(alert.text))


def _cut(text: str, length: int) -> str:
    if len(text) <= length:
        return text
    return text[: max(0, length - len(_CUT))].rstrip() + _CUT if length > 0 else ""


def _assemble(status: str, headline: str, body: str, instruction: str, tail: str) -> str:
    lines = [f"{status} {headline}".strip(), body, instruction, tail]
    return " ".join(_sentence(line) for line in lines if line)


def _sentence(text: str) -> str:
    """One line of the text, ended so the next can follow on the same line."""
    return text if text[-1] in ".!?:" else text + "."


def alert_text(alert: Alert, status: Status, lang: str, layout: Layout) -> Encoded:
    """The alert in ``lang`` (one of its languages), within ``layout.max_segments``."""
    words = _words(lang)
    text: Text = alert.text[lang]
    kind = _KINDS["es" if lang.startswith("es") else "en"].get(alert.kind, alert.kind)
    if status == "cancel":
        lead = words["cancel"]
    else:
        marked = {"alert": "", "update": f" ({words['update']})"}
        lead = words[alert.certainty] + marked.get(status, f" ({words['reinstated']})")
        lead = f"{lead}: {kind}."
    tail = f"{words['area']}: {clean(alert.area.label)}. {words['stop']}"
    parts = [clean(text.headline), clean(text.body), clean(text.instruction or "")]
    return fit(lead, parts, tail, layout)


def withdrawal_text(alert: Alert, lang: str, layout: Layout) -> Encoded:
    """The alert went back to review: its headline, struck by the status word, and
    nothing else of what it said (as the Matrix bridge's edit)."""
    words = _words(lang)
    tail = words["stop"]
    parts = [clean(alert.text[lang].headline), "", words["withdrawn_note"]]
    return fit(words["withdrawn"], parts, tail, layout)


def fit(lead: str, parts: list[str], tail: str, layout: Layout) -> Encoded:
    """Shorten body, then instruction, then headline until the text fits."""
    headline, body, instruction = parts
    encoded = encode(_assemble(lead, headline, body, instruction, tail), layout.accents)
    for index in (1, 2, 0):
        if encoded.segments <= layout.max_segments:
            return encoded
        parts = [headline, body, instruction]
        low, high = 0, len(parts[index])
        while low < high:  # the longest cut of this part that fits
            middle = (low + high + 1) // 2
            trial = list(parts)
            trial[index] = _cut(parts[index], middle)
            text = _assemble(lead, trial[0], trial[1], trial[2], tail)
            if encode(text, layout.accents).segments <= layout.max_segments:
                low = middle
            else:
                high = middle - 1
        parts[index] = _cut(parts[index], low)
        headline, body, instruction = parts
        encoded = encode(_assemble(lead, headline, body, instruction, tail), layout.accents)
    if encoded.segments > layout.max_segments:  # only the fixed words are left: cut them too
        encoded = encode(_cut(encoded.text, layout.max_segments * 60), layout.accents)
    return encoded


def reply_text(
    what: str,
    lang: str,
    layout: Layout,
    *,
    keyword: str = "",
    zip_code: str = "",
    help_texts: Mapping[str, str] | None = None,
) -> Encoded:
    lang = "es" if lang.startswith("es") else "en"
    if what in ("help", "help_no_tips") and help_texts and lang in help_texts:
        text = help_texts[lang]
    else:
        text = REPLIES[lang][what].format(keyword=keyword, zip=zip_code)
    if zip_code and what == "subscribed":
        text += REPLIES[lang]["unknown_zip"].format(zip=clean(zip_code))
    return encode(clean(text), layout.accents)
