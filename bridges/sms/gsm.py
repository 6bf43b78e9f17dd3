"""GSM-7 or UCS-2, and how many segments a text takes (pure).

A text message is sent in the GSM 03.38 7-bit alphabet when every character
is in it (160 septets in one message, 153 per part of a concatenated one;
characters of the extension table, ``{ } [ ] ~ \\ | ^ €``, take two septets
and never straddle two parts), else in UCS-2 (70 UTF-16 units alone, 67 per
part; a character outside the BMP takes two units and is never split).

Spanish á í ó ú (and Á Í Ó Ú) are *not* GSM-7, while é ñ ü ¿ ¡ are. A
Spanish text with one accent would double its segment count as UCS-2, so
``transliterate`` offers the other choice: accents that GSM-7 lacks become
the bare letter, typographic quotes and dashes their ASCII forms, and only
what still does not fit (emoji, other scripts) leaves the text in UCS-2.
Which one a node uses is the ``accents`` setting of ``[bridges.sms]``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Coding = Literal["gsm7", "ucs2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

SINGLE = {"gsm7": 160, "ucs2": 70}
PART = {"gsm7": 153, "ucs2": 67}

_PUNCTUATION = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2022": "-",
}


@dataclass(frozen=True, slots=True)
class Encoded:
    text: str
    coding: Coding
    segments: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(char: str, coding: Coding) -> int:
    if coding == "gsm7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def segments(text: str, coding: Coding) -> int:
    """Parts the text takes; no character is split between two parts."""
    total = sum(_units(c, coding) for c in text)
    if total <= SINGLE[coding]:
        return 1
    count, used = 1, 0
    for char in text:
        units = _units(char, coding)
        if used + units > PART[coding]:
            count, used = count + 1, 0
        used += units
    return count


def transliterate(text: str) -> str:
    """Replace what GSM-7 lacks by its nearest GSM-7 form, where there is one."""
    out: list[str] = []
    for char in text:
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
        elif char in _PUNCTUATION:
            out.append(_PUNCTUATION[char])
        else:
            bare = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            out.append(bare if bare and is_gsm7(bare) else char)
    return "".join(out)


def encode(text: str, accents: Literal["ucs2", "transliterate"]) -> Encoded:
    """The text as it will be sent, its coding and its segment count."""
    if accents == "transliterate":
        text = transliterate(text)
    coding: Coding = "gsm7" if is_gsm7(text) else "ucs2"
    return Encoded(text, coding, segments(text, coding))
