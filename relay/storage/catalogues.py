"""Reading the gettext catalogues: the one place a ``.po`` file is opened.

Catalogues are read as ``.po`` (Babel's reader) and compiled in memory when
the node starts, so the file a translator edits is the file the node serves:
no ``.mo`` to forget to rebuild, and adding a language is one ``.po`` file
plus one config line (``[node] languages``). A language's catalogue is found
in ``[node] locale_dir`` (the operator's, inside the data directory) before
the shipped ones (``relay/locale``), so an operator can also reword a message.

A catalogue is checked before it is used, and a bad one stops the node with
its path and line (a ``ConfigError``), never a half-translated desk: its
named placeholders must be those of the English message with the same id
(a translation that drops ``%(zip)s`` would say the wrong thing), and it
must parse. English is always loaded, served or not: it is the last
fallback before the message id itself (``relay.core.language.Words``).
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po

from relay.core.config import NodeSection
from relay.core.errors import ConfigError
from relay.core.language import DOMAIN, Words

SHIPPED_DIR: Final = Path(__file__).resolve().parent.parent / "locale"
SOURCE_LANGUAGE: Final = "en"
MAX_CATALOGUE_BYTES: Final = 4 * 1024 * 1024
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]")


class Catalogues:
    """The served languages' words; ``words(lang)`` for any of them."""

    def __init__(self, languages: Sequence[str], compiled: dict[str, gettext.GNUTranslations]):
        self.languages = tuple(languages)
        self._compiled = compiled

    def words(self, language: str | None = None) -> Words:
        """``language``'s words (the node's first language if not served), with fallbacks."""
        chosen = language if language in self.languages else self.languages[0]
        order = dict.fromkeys((chosen, self.languages[0], SOURCE_LANGUAGE))
        return Words(chosen, [self._compiled[name] for name in order if name in self._compiled])


def for_node(data_dir: Path, node: NodeSection) -> Catalogues:
    """The catalogues ``[node] languages`` and ``locale_dir`` ask for."""
    return load(node.languages, data_dir / node.locale_dir if node.locale_dir else None)


def load(languages: Sequence[str], locale_dir: Path | None = None) -> Catalogues:
    """Read, check and compile the catalogues of ``languages`` (and English).

    Read once per process for the same files (by path and modification time):
    a test suite or a CLI that builds many nodes parses each catalogue once.
    """
    wanted = tuple(dict.fromkeys((SOURCE_LANGUAGE, *languages)))
    stamps = tuple(_stamp(catalogue_path(language, locale_dir)) for language in wanted)
    return _load_cached(tuple(languages), locale_dir, stamps)


def _stamp(path: Path) -> tuple[str, int]:
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        return str(path), -1


@functools.lru_cache(maxsize=32)
def _load_cached(
    languages: tuple[str, ...], locale_dir: Path | None, _stamps: tuple[tuple[str, int], ...]
) -> Catalogues:
    _, source = _read(SOURCE_LANGUAGE, locale_dir)
    english = _placeholders(source)
    compiled = {SOURCE_LANGUAGE: _compile(source)}
    for language in languages:
        if language != SOURCE_LANGUAGE:
            path, catalog = _read(language, locale_dir)
            _check_placeholders(path, catalog, english)
            compiled[language] = _compile(catalog)
    return Catalogues(languages, compiled)


def catalogue_path(language: str, locale_dir: Path | None = None) -> Path:
    """Where ``language``'s catalogue is read from (the operator's folder first)."""
    relative = Path(language) / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale_dir is not None and (locale_dir / relative).is_file():
        return locale_dir / relative
    return SHIPPED_DIR / relative


def _read(language: str, locale_dir: Path | None) -> tuple[Path, Catalog]:
    path = catalogue_path(language, locale_dir)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CATALOGUE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            "node.languages",
            f"no catalogue for {language!r}: add {path} (docs/translating.md)",
        ) from None
    if len(data) > MAX_CATALOGUE_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_CATALOGUE_BYTES} bytes")
    try:
        return path, read_po(io.BytesIO(data), locale=None, domain=DOMAIN, abort_invalid=True)
    except (PoFileError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not a valid .po file: {exc}") from None


def _placeholders(catalog: Catalog) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for message in catalog:
        if message.id:
            found[_key(message.id)] = frozenset(
                name for text in _strings(message.string) for name in _PLACEHOLDER.findall(text)
            )
    return found


def _check_placeholders(path: Path, catalog: Catalog, english: dict[str, frozenset[str]]) -> None:
    for message in catalog:
        key = _key(message.id) if message.id else ""
        if key not in english or message.fuzzy:
            continue
        for text in _strings(message.string):
            names = frozenset(_PLACEHOLDER.findall(text))
            if text and not names <= english[key]:
                raise ConfigError(
                    f"{path}:{message.lineno}",
                    f"{key!r} uses {', '.join(sorted(names - english[key]))}, which the"
                    f" English message does not give",
                )


def _key(message_id: object) -> str:
    return message_id[0] if isinstance(message_id, tuple) else str(message_id)


def _strings(string: object) -> list[str]:
    if isinstance(string, tuple | list):
        return [text for text in string if isinstance(text, str)]
    return [string] if isinstance(string, str) else []


def _compile(catalog: Catalog) -> gettext.GNUTranslations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)
