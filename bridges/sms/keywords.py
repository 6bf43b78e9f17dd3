"""What an inbound text asks for (pure): subscribe, stop, start, help, or a tip.

Only the first word decides, compared upper case and without accents
(``Álto``, ``alto!`` and ``ALTO`` are the same word). Configured keywords
subscribe in their language to their areas; a second word that is a ZIP code
listed in ``[bridges.sms.zips]`` narrows the areas to that ZIP's. The
carrier words (``STOP`` …, ``START`` …, ``HELP`` …) are fixed (DESIGN §11)
and answered even when no keyword is configured in their language.

Anything else is ``Other``: a tip when the line takes tips, else answered
with the help text. The language a reply should use, when the sender is not
a subscriber, is a hint taken from the word itself (``ALTO`` is Spanish).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.core.bridgeconfig import SmsKeyword, fold_word

STOP_WORDS = {
    "STOP": "en",
    "STOPALL": "en",
    "END": "en",
    "CANCEL": "en",
    "UNSUBSCRIBE": "en",
    "QUIT": "en",
    "ALTO": "es",
    "BAJA": "es",
}
START_WORDS = {"START": "en", "UNSTOP": "en", "YES": "en"}
HELP_WORDS = {"HELP": "en", "AYUDA": "es", "INFO": None}

_FIRST_WORD = re.compile(r"^[\W_]*([^\W_]+)[^\w\s]*(?:\s+(\S+))?", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Subscribe:
    keyword: str
    lang: str
    areas: tuple[str, ...]
    zip_code: str | None = None
    unknown_zip: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    lang: str | None


@dataclass(frozen=True, slots=True)
class Start:
    lang: str | None


@dataclass(frozen=True, slots=True)
class Help:
    lang: str | None


@dataclass(frozen=True, slots=True)
class Other:
    text: str


@dataclass(frozen=True, slots=True)
class Empty:
    pass


Command = Subscribe | Stop | Start | Help | Other | Empty


def parse(text: str, keywords: Sequence[SmsKeyword], zips: Mapping[str, Sequence[str]]) -> Command:
    stripped = text.strip()
    match = _FIRST_WORD.match(stripped)
    if match is None:
        return Other(stripped) if stripped else Empty()
    word = fold_word(match.group(1))
    if word in STOP_WORDS:
        return Stop(STOP_WORDS[word])
    if word in START_WORDS:
        return Start(START_WORDS[word])
    if word in HELP_WORDS:
        return Help(HELP_WORDS[word])
    for keyword in keywords:
        if fold_word(keyword.word) == word:
            return _subscribe(keyword, match.group(2), zips)
    return Other(stripped)


def _subscribe(
    keyword: SmsKeyword, second: str | None, zips: Mapping[str, Sequence[str]]
) -> Subscribe:
    areas = tuple(sorted(keyword.areas))
    word = fold_word(keyword.word)
    if second is None or not any(c.isdigit() for c in second):
        return Subscribe(word, keyword.lang, areas)
    zip_code = re.sub(r"[^0-9]", "", second)[:5]
    if len(zip_code) == 5 and zip_code in zips:
        return Subscribe(word, keyword.lang, tuple(sorted(zips[zip_code])), zip_code=zip_code)
    return Subscribe(word, keyword.lang, areas, unknown_zip=second[:10])
