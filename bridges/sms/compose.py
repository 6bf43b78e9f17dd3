"""The words a text line sends: alerts, updates, cancels and replies (pure).

An alert becomes one short text in one language: a status word first (what
matters on a lock screen), the kind and headline, the body, the instruction,
the area, and how to stop. It must fit ``max_segments``: the body is cut
first, then the instruction, then the headline, each cut ending in ``...``
(GSM-7, unlike ``…``). The text is one line (parts end in a full stop):
phones wrap it anyway, and a newline costs a character. Bidirectional
overrides and control characters never reach a phone.

An alert sent back to review (its key was revoked) becomes one text with
``sms.status.withdrawn`` (``RETIRADA PARA REVISION:``) and its headline only;
if a reviewer accepts it again, its full text goes again, marked
``sms.status.reinstated`` (``VIGENTE DE NUEVO``).

Every fixed word is a message of the node's catalogues (``sms.status.*``,
``sms.reply.*``, the shared ``kind.*``), read through the ``Words`` of the
text's language that the caller passes in (``relay.core.language``): this
module does no I/O and decides no language. The shipped Spanish and English
texts avoid the accents GSM-7 lacks, so a text stays GSM-7 (160 characters a
segment) unless the alert's own words need more (``tests/sms/test_sms_words.py``
keeps it so). The help answer can be replaced per language in the config
(``[bridges.sms.help]``), which beats the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from bridges.render import pick_languages
from bridges.sms.gsm import Encoded, encode
from relay.core.language import KIND_NAMES, N_, Words
from relay.core.model import Alert, Text

Accents = Literal["ucs2", "transliterate"]
Status = Literal["alert", "update", "cancel", "reinstated"]
Reply = Literal["subscribed", "stopped", "started", "help", "help_no_tips", "tip"]

_UNSAFE = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_CUT = "..."

#: The status word that leads an alert's text, by the alert's certainty.
CERTAINTY_WORDS: Final = {
    "confirmed": N_("sms.status.confirmed"),
    "unconfirmed": N_("sms.status.unconfirmed"),
    "false": N_("sms.status.false"),
}
#: The answers to inbound texts; ``%(keyword)s`` is the keyword of the answer's language.
REPLY_IDS: Final[Mapping[Reply, str]] = {
    "subscribed": N_("sms.reply.subscribed"),
    "stopped": N_("sms.reply.stopped"),
    "started": N_("sms.reply.started"),
    "help": N_("sms.reply.help"),
    "help_no_tips": N_("sms.reply.help_no_tips"),
    "tip": N_("sms.reply.tip"),
}


@dataclass(frozen=True, slots=True)
class Layout:
    accents: Accents = "ucs2"
    max_segments: int = 4


def clean(text: str) -> str:
    """One line: no controls, no bidirectional overrides, runs of space as one."""
    return _SPACES.sub(" ", _UNSAFE.sub(" ", text)).strip()


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


def alert_text(alert: Alert, status: Status, lang: str, words: Words, layout: Layout) -> Encoded:
    """The alert in ``lang`` (one of its languages), its fixed ``words`` in the same
    language as far as the node serves it, within ``layout.max_segments``."""
    text: Text = alert.text[lang]
    kind = words.gettext(KIND_NAMES[alert.kind]) if alert.kind in KIND_NAMES else alert.kind
    if status == "cancel":
        lead = words.gettext("sms.status.cancel")
    else:
        lead = words.gettext(CERTAINTY_WORDS[alert.certainty])
        if status == "update":
            lead += " (" + words.gettext("sms.status.update") + ")"
        elif status == "reinstated":
            lead += " (" + words.gettext("sms.status.reinstated") + ")"
        lead = f"{lead}: {kind}."
    area = words.gettext("sms.status.area", area=clean(alert.area.label))
    tail = _sentence(area) + " " + words.gettext("sms.status.stop")
    parts = [clean(text.headline), clean(text.body), clean(text.instruction or "")]
    return fit(lead, parts, tail, layout)


def texts_for(
    alert: Alert,
    status: Status,
    langs: Iterable[str],
    words_for: Callable[[str], Words],
    layout: Layout,
) -> dict[str, Encoded]:
    """One text per subscriber language in ``langs``: the alert's text in it if the
    alert has it (else the alert's first), the fixed words (``words_for``: the node's
    catalogues) in the same language."""
    texts: dict[str, Encoded] = {}
    for lang in langs:
        chosen = language_for(alert, lang)
        texts[lang] = alert_text(alert, status, chosen, words_for(chosen), layout)
    return texts


def withdrawal_text(alert: Alert, lang: str, words: Words, layout: Layout) -> Encoded:
    """The alert went back to review: its headline, struck by the status word, and
    nothing else of what it said (as the Matrix bridge's edit)."""
    note = words.gettext("sms.status.withdrawn_note")
    parts = [clean(alert.text[lang].headline), "", note]
    return fit(
        words.gettext("sms.status.withdrawn"), parts, words.gettext("sms.status.stop"), layout
    )


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
    what: Reply,
    words: Words,
    layout: Layout,
    *,
    keyword: str = "",
    zip_code: str = "",
    help_texts: Mapping[str, str] | None = None,
) -> Encoded:
    """The answer ``what`` in ``words``' language; ``zip_code`` (subscribed only) a ZIP
    the line does not know, said after the welcome; ``help_texts`` the config's own help."""
    if what in ("help", "help_no_tips") and help_texts and words.language in help_texts:
        text = help_texts[words.language]
    else:
        text = words.gettext(REPLY_IDS[what], keyword=keyword)
    if zip_code and what == "subscribed":
        text += " " + words.gettext("sms.reply.unknown_zip", zip=clean(zip_code))
    return encode(clean(text), layout.accents)
