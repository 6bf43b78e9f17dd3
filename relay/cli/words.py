"""The words of ``avisa``'s output: a volunteer's in the catalogues, an operator's in English.

What a volunteer reads (``avisa tip …``, ``avisa desk …``) comes from the
node's gettext catalogues (ids ``cli.*``), in the language the one rule picks
(``relay.core.language.negotiate``): ``--lang``, else ``$AVISA_LANG``; else the
terminal's language (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``: what a
terminal says it reads, as a browser says ``Accept-Language``); else the
node's first language. Counts are gettext plurals.

Operator commands (``keys``, ``trust``, ``init``, ``alert``, …) speak English:
their readers are the few people who run the node, and what they print is
pasted into issues and runbooks, where one wording is worth more than a
translation. Their counts go through ``plural`` (``1 alert``, ``2 alerts``,
never ``alert(s)``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from relay.core.language import Words, negotiate
from relay.storage import catalogues, configfile

LANG_ENV: Final = "AVISA_LANG"
_LOCALE_ENVS: Final = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 channel``, ``2 channels`` (English, operator output); ``nouns`` if irregular."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def lang_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lang",
        metavar="LANG",
        help=f"the language to answer in, e.g. es (default: ${LANG_ENV}, else the"
        " terminal's, else the node's first language)",
    )


def terminal_languages(environ: dict[str, str] | None = None) -> str:
    """The terminal's languages as an Accept-Language list (``es_MX.UTF-8`` → ``es-MX``)."""
    environ = dict(os.environ) if environ is None else environ
    for name in _LOCALE_ENVS:
        value = environ.get(name, "")
        tags = [_tag(part) for part in value.split(":") if part]
        tags = [tag for tag in tags if tag]
        if tags:
            return ",".join(tags)
    return ""


def _tag(locale: str) -> str:
    tag = locale.split(".", maxsplit=1)[0].split("@", maxsplit=1)[0].replace("_", "-")
    return "" if tag in ("C", "POSIX") else tag


def words_for(data_dir: Path, explicit: str | None = None) -> Words:
    """The words ``data_dir``'s node serves, in the language the one rule picks."""
    node = configfile.load(data_dir).node
    found = catalogues.for_node(data_dir, node)
    chosen = negotiate(
        found.languages,
        explicit=explicit or os.environ.get(LANG_ENV) or None,
        accept_language=terminal_languages(),
    )
    return found.words(chosen)


def words_of(args: argparse.Namespace) -> Words:
    """``words_for`` a command's ``--data`` and ``--lang``."""
    return words_for(args.data, getattr(args, "lang", None))
