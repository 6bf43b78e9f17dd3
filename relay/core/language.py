"""Which language a person is answered in, and the words of that language (pure).

Every word a person reads (the desk, the ``/report`` form, a text message, a
Matrix notice, a CAP/Atom title, the CLI messages a volunteer reads) is a
message id in the gettext catalogue ``avisa`` (``relay/locale/<lang>/LC_MESSAGES/
avisa.po``). Ids are keys (``nav.tips``, ``sms.reply.subscribed``) so a
wording change in English does not orphan every translation; English is a
catalogue like the others. Placeholders are named (``%(zip)s``), plurals are
real gettext plurals, with each language's own ``Plural-Forms``.

**One rule picks the language**, everywhere (``negotiate``):

1. an explicit choice: ``?lang=`` or the desk's cookie, a subscriber's stored
   language, a CLI ``--lang``;
2. else what the person's client says: the browser's ``Accept-Language``, or
   the language of the keyword a subscriber texted (ALERTA → es, ALERT → en);
3. else the node's first language (``[node] languages[0]``).

Only languages the node serves (``[node] languages``, each with a catalogue)
are ever chosen. ``Words`` wraps one language's catalogue: a missing message
falls back to the node's first language, then to English, then to the id
itself, so a page never breaks over a word. Loading ``.po`` files is I/O and
lives in ``relay.runtime.catalogues``; this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

#: The gettext domain: one catalogue per language holds every surface's words.
DOMAIN: Final = "avisa"
#: ``[node] languages`` when the config says nothing: Spanish first, as most volunteers read.
DEFAULT_LANGUAGES: Final = ("es", "en")
_MAX_ACCEPT_PARTS: Final = 20


def N_(message: str) -> str:  # gettext's name for "mark, do not translate"
    """Marks an id that code builds at run time (``kind.<kind>``) for ``make messages``."""
    return message


LANGUAGE_NAME: Final = N_("language.name")  # each language's own name, for a switch link
#: The names of alert kinds, shared by every surface (desk, texts, Matrix, CAP titles).
KIND_NAMES: Final = {
    "sighting": N_("kind.sighting"),
    "operation": N_("kind.operation"),
    "checkpoint": N_("kind.checkpoint"),
    "workplace": N_("kind.workplace"),
    "detention": N_("kind.detention"),
    "court": N_("kind.court"),
    "mobilization": N_("kind.mobilization"),
    "rumor": N_("kind.rumor"),
    "all_clear": N_("kind.all_clear"),
    "notice": N_("kind.notice"),
}


class Catalogue(Protocol):
    """What ``gettext.GNUTranslations`` offers (and ``NullTranslations``)."""

    def gettext(self, message: str, /) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int, /) -> str: ...


class Words:
    """One language's words: ``gettext(id, **values)``, ``ngettext(id, id, n, **values)``.

    ``values`` fill the message's named placeholders (``%(zip)s``); a message
    whose placeholders do not match its values is a catalogue bug, and the
    id's English (then the id) is shown rather than a broken sentence.
    """

    __slots__ = ("_chain", "language")

    def __init__(self, language: str, chain: Sequence[Catalogue]) -> None:
        self.language = language
        self._chain = tuple(chain)

    def gettext(self, message: str, /, **values: object) -> str:
        for catalogue in self._chain:
            found = catalogue.gettext(message)
            if found != message:
                return _fill(found, values, message)
        return message

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        values.setdefault("num", n)
        for catalogue in self._chain:
            found = catalogue.ngettext(singular, plural, n)
            if found not in (singular, plural):
                return _fill(found, values, singular)
        return singular if n == 1 else plural

    def has(self, message: str) -> bool:
        """Whether some catalogue in the chain knows ``message``."""
        return any(catalogue.gettext(message) != message for catalogue in self._chain)

    __call__ = gettext


def _fill(text: str, values: dict[str, object], message: str) -> str:
    if not values and "%(" not in text:
        return text
    try:
        return text % values
    except (KeyError, ValueError, TypeError):
        return message


def negotiate(
    available: Sequence[str],
    *,
    explicit: str | None = None,
    accept_language: str | None = None,
    keyword_language: str | None = None,
) -> str:
    """The one rule: explicit choice, then the client's wish, then ``available[0]``."""
    if not available:
        raise ValueError("a node serves at least one language")
    chosen = _match(explicit, available)
    if chosen is None and keyword_language is not None:
        chosen = _match(keyword_language, available)
    if chosen is None and accept_language:
        chosen = from_accept_language(accept_language, available)
    return chosen or available[0]


def from_accept_language(header: str, available: Sequence[str]) -> str | None:
    """The first of ``available`` the header asks for, by weight, then by order."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:_MAX_ACCEPT_PARTS]):
        tag, _, params = part.strip().partition(";")
        weight = _weight(params)
        found = _match(tag, available)
        if found is not None and weight > 0:
            ranked.append((-weight, index, found))
    return min(ranked)[2] if ranked else None


def _weight(params: str) -> float:
    params = params.strip()
    if not params.startswith("q="):
        return 1.0
    try:
        return float(params[2:])
    except ValueError:
        return 0.0


def _match(tag: str | None, available: Iterable[str]) -> str | None:
    """``tag`` itself if served, else its primary language (``es-MX`` → ``es``)."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-").lower()
    served = {language.lower(): language for language in available}
    if tag in served:
        return served[tag]
    return served.get(tag.split("-")[0])
