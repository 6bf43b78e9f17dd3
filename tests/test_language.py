"""The one language rule, the catalogues' fallbacks, and catalogues that must not load."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from relay.core import config as config_mod
from relay.core.errors import ConfigError
from relay.core.language import KIND_NAMES, Words, from_accept_language, negotiate
from relay.core.model import KINDS
from relay.storage import catalogues
from relay.storage.catalogues import SHIPPED_DIR
from tests.locale_kit import OPEN, unmarked, write_catalogue, write_pseudo

SERVED = ("es", "en")


@pytest.mark.parametrize(
    ("explicit", "keyword", "accept", "expected"),
    [
        ("en", None, "es", "en"),  # an explicit choice beats the browser
        ("fr", None, "en;q=0.5, es", "es"),  # a choice not served falls through
        (None, "en", "es", "en"),  # the keyword's language beats the browser
        (None, None, "en-US,en;q=0.9,es;q=0.8", "en"),
        (None, None, "es;q=0.2, en;q=0.9", "en"),  # by weight
        (None, None, "en;q=0, fr", "es"),  # q=0 is a refusal, fr is not served
        (None, None, "", "es"),  # nothing said: the node's first language
        ("EN_us", None, None, "en"),  # case and underscores are forgiven
    ],
)
def test_negotiate_is_explicit_then_client_then_first(
    explicit: str | None, keyword: str | None, accept: str | None, expected: str
) -> None:
    assert (
        negotiate(SERVED, explicit=explicit, keyword_language=keyword, accept_language=accept)
        == expected
    )


def test_a_language_not_served_is_never_chosen() -> None:
    for header in ("fr", "de-DE, fr;q=0.5", "x" * 5000, "q=1," * 100):
        assert negotiate(("en",), accept_language=header) == "en"
    assert from_accept_language("fr, es;q=0.1", ("es-MX", "es")) == "es"
    assert negotiate(("es-MX", "es"), accept_language="es-mx") == "es-MX"


def test_words_fall_back_to_the_first_language_then_english_then_the_id(tmp_path: Path) -> None:
    write_catalogue(tmp_path, "fr", {"kind.court": "Tribunal (fr)", "x.only_fr": "seulement"})
    loaded = catalogues.load(["fr", "es"], tmp_path)
    french = loaded.words("fr")
    assert french("kind.court") == "Tribunal (fr)"
    assert french("kind.rumor") == "Rumor"  # Spanish, the node's first language
    assert french("no.such.id") == "no.such.id"
    assert loaded.words("de").language == "fr"  # not served: the first language
    assert loaded.words(None)("x.only_fr") == "seulement"


def test_named_placeholders_and_plurals(tmp_path: Path) -> None:
    path = tmp_path / "en" / "LC_MESSAGES" / "avisa.po"
    path.parent.mkdir(parents=True)
    path.write_text(
        'msgid ""\nmsgstr ""\n"Language: en\\n"\n'
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgid "t.zip"\nmsgstr "ZIP %(zip)s"\n\n'
        'msgid "t.count"\nmsgid_plural "t.count"\n'
        'msgstr[0] "%(num)d tip"\nmsgstr[1] "%(num)d tips"\n',
        encoding="utf-8",
    )
    words = catalogues.load(["en"], tmp_path).words("en")
    assert words("t.zip", zip="93030") == "ZIP 93030"
    assert words.ngettext("t.count", "t.count", 1) == "1 tip"
    assert words.ngettext("t.count", "t.count", 3) == "3 tips"
    # A value missing from the call shows the id, never a half-filled sentence.
    assert words("t.zip") == "t.zip"


def test_a_translation_that_invents_a_placeholder_stops_the_node(tmp_path: Path) -> None:
    write_catalogue(tmp_path, "fr", {"kind.court": "Tribunal %(secret)s"})
    with pytest.raises(ConfigError) as caught:
        catalogues.load(["fr"], tmp_path)
    assert "fr/LC_MESSAGES/avisa.po" in caught.value.args[0]
    assert "secret" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [b"hello world\n", b"\xff\xfe not text", b'msgid "a"\nmsgid "b"\n'],
)
def test_a_broken_catalogue_names_its_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fr" / "LC_MESSAGES" / "avisa.po"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        catalogues.load(["fr"], tmp_path)
    assert str(path) in str(caught.value)


def test_a_language_without_a_catalogue_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        catalogues.load(["vi"], tmp_path)
    assert "vi" in str(caught.value)
    assert "translating" in str(caught.value)


def test_config_languages_and_locale_dir() -> None:
    base = '[node]\nnetwork = "ventura"\n'
    assert config_mod.parse(base).node.languages == ["es", "en"]
    assert config_mod.parse(base + 'languages = ["vi", "es"]\n').node.languages == ["vi", "es"]
    for bad in ('languages = []\n', 'languages = ["es", "es"]\n', 'locale_dir = "/etc"\n',
                'locale_dir = "../x"\n', 'languages = ["Spanish"]\n'):  # fmt: skip
        with pytest.raises(ConfigError) as caught:
            config_mod.parse(base + bad)
        assert caught.value.args[0].startswith("node.")


def test_the_shipped_catalogues_are_complete_and_alike() -> None:
    def read(language: str) -> dict[str, object]:
        with (SHIPPED_DIR / language / "LC_MESSAGES" / "avisa.po").open("rb") as handle:
            return {str(m.id if isinstance(m.id, str) else m.id[0]): m.string
                    for m in read_po(handle) if m.id}  # fmt: skip

    english, spanish = read("en"), read("es")
    assert english.keys() == spanish.keys()
    empty = sorted(key for key, text in {**english, **spanish}.items() if not text)
    assert not empty, f"messages with no text: {empty}"
    for key in KIND_NAMES.values():
        assert key in english
    assert set(KIND_NAMES) == set(KINDS)


def test_the_pseudo_locale_marks_every_message(tmp_path: Path) -> None:
    write_pseudo(tmp_path)
    words = catalogues.load(["qps"], tmp_path).words("qps")
    assert words("kind.court").startswith(OPEN)
    assert unmarked(f"{words('kind.court')} Ventura", allowed=["Ventura"]) == []
    assert unmarked(f"{words('kind.court')} Hola") == ["Hola"]


def test_words_is_what_the_core_sees() -> None:
    class Echo:
        def gettext(self, message: str, /) -> str:
            return message.upper()

        def ngettext(self, singular: str, plural: str, n: int, /) -> str:
            return singular.upper()

    assert Words("xx", [Echo()])("a.b") == "A.B"
    assert Words("xx", []).ngettext("a", "b", 2) == "b"
