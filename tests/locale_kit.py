"""Catalogues made by tests: a pseudo-locale, and small real languages (French).

``write_pseudo(locale_dir)`` writes ``qps/LC_MESSAGES/avisa.po`` from the
English catalogue: every message becomes ``⟦…⟧`` around its English, with the
named placeholders kept. A node configured with ``[node] languages = ["qps"]``
and ``locale_dir`` then shows every catalogued word inside brackets, and
``unmarked(text)`` finds the words that bypassed the catalogue: what is left
outside the brackets once the values the test itself supplied are removed.

``write_catalogue(locale_dir, "fr", {...})`` writes a handful of real
translations: the rest falls back to the node's first language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from relay.storage.catalogues import SHIPPED_DIR

PSEUDO = "qps"
OPEN, CLOSE = "⟦", "⟧"
_MARKED = re.compile(f"{OPEN}[^{CLOSE}]*{CLOSE}")
_WORD = re.compile(r"[^\W\d_]{2,}")


def english() -> Catalog:
    with (SHIPPED_DIR / "en" / "LC_MESSAGES" / "avisa.po").open("rb") as handle:
        return read_po(handle)


def write_pseudo(locale_dir: Path, language: str = PSEUDO) -> Path:
    """The pseudo-locale's catalogue, from English; returns its path."""
    source = english()
    catalog = Catalog(locale="en", domain="avisa", fuzzy=False)
    for message in source:
        if not message.id:
            continue
        if isinstance(message.string, tuple | list):
            string: object = tuple(_bracket(text) for text in message.string)
        else:
            string = _bracket(str(message.string))
        catalog.add(message.id, string)
    return _write(locale_dir, language, catalog)


def write_catalogue(locale_dir: Path, language: str, messages: Mapping[str, str]) -> Path:
    """A small real catalogue (``{"nav.tips": "Signalements"}``); returns its path."""
    catalog = Catalog(locale="en", domain="avisa", fuzzy=False)
    for key, text in messages.items():
        catalog.add(key, text)
    return _write(locale_dir, language, catalog)


def unmarked(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Words of ``text`` outside ``⟦…⟧`` that are not in the ``allowed`` values."""
    rest = _MARKED.sub(" ", text)
    for value in sorted(allowed, key=len, reverse=True):
        if value:
            rest = rest.replace(value, " ")
    return _WORD.findall(rest)


def _bracket(text: str) -> str:
    if not text:
        return text
    return OPEN + text + CLOSE


def _write(locale_dir: Path, language: str, catalog: Catalog) -> Path:
    folder = locale_dir / language / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "avisa.po"
    with path.open("wb") as handle:
        write_po(handle, catalog)
    return path
