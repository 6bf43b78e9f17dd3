"""The words of text messages come from the catalogues (issue 31): GSM-7, pseudo-locale, French.

- Every shipped ``sms.*`` and ``reporter.*`` message (es, en) is GSM-7 once its
  placeholders are filled with ASCII, and each reply fits one segment: a
  translator who adds an ``á`` to a Spanish text fails ``make test`` here,
  before subscribers pay for twice the segments.
- With ``[node] languages = ["qps"]`` (the pseudo-locale of ``tests/locale_kit``)
  every fixed word of an alert text, of each answer to a text and of the
  desk's thanks to a reporter is marked: none bypasses the catalogue.
- A French catalogue and a keyword ``ALERTE`` with ``lang = "fr"``: texting it
  is answered in French with no change to the code; what the French catalogue
  lacks falls back to the node's first language.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bridges.sms.compose import (
    CERTAINTY_WORDS,
    REPLY_IDS,
    Layout,
    Status,
    alert_text,
    reply_text,
    withdrawal_text,
)
from bridges.sms.gsm import encode, is_gsm7
from relay.core.config import parse as parse_config
from relay.core.config import render
from relay.core.errors import ConfigError
from relay.core.language import Words
from relay.core.model import Area
from relay.core.tipdrafts import TipDraft
from relay.runtime.clock import FakeClock
from relay.runtime.desk import REPORTER_REPLIES
from relay.storage.catalogues import SHIPPED_DIR, load
from tests.helpers import make_alert, wait_for
from tests.locale_kit import PSEUDO, unmarked, write_catalogue, write_pseudo
from tests.sms.kit import PHONE, SHORT_CODE, Line, need_kannel, start_line

TEXTED = ("sms.", "reporter.")
# The longest values a reply is filled with: a keyword has at most 20 letters, an
# unknown ZIP is said in at most 10 characters (bridges.sms.keywords).
SAMPLES = {"keyword": "K" * 20, "zip": "9" * 10, "area": "Colonia, Oxnard"}
OTHER = "+18055550199"
AREA = Area(label="Calle Cooper", geohash="9q4gch", radius_m=300, codes=["fips:06111"])


def shipped_texts(language: str) -> dict[str, str]:
    """The shipped catalogue's ``sms.*`` and ``reporter.*`` messages, as translated."""
    path = SHIPPED_DIR / language / "LC_MESSAGES" / "avisa.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and str(message.id).startswith(TEXTED)
    }


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_shipped_words_of_texts_are_gsm7(language: str) -> None:
    texts = shipped_texts(language)
    ids = {*CERTAINTY_WORDS.values(), *REPLY_IDS.values(), *REPORTER_REPLIES.values()}
    assert ids <= set(texts), "every id the code uses is in the catalogue"
    for message_id, text in texts.items():
        assert text, f"{language}: {message_id} is not translated"
        filled = text % defaultdict(lambda: "Sample", SAMPLES)
        outside = sorted({c for c in filled if not is_gsm7(c)})
        assert is_gsm7(filled), f"{language}: {message_id} has {outside}, not GSM-7 (gsm.py)"


@pytest.mark.parametrize("language", ["es", "en"])
def test_each_reply_fits_one_segment_at_its_longest(language: str) -> None:
    words = load(("es", "en")).words(language)
    layout = Layout()
    for what in REPLY_IDS:
        keyword, zip_code = SAMPLES["keyword"], SAMPLES["zip"]
        encoded = reply_text(what, words, layout, keyword=keyword, zip_code=zip_code)
        assert (encoded.coding, encoded.segments) == ("gsm7", 1), (what, encoded.text)
    for message_id in REPORTER_REPLIES.values():
        encoded = encode(words.gettext(message_id), "ucs2")
        assert (encoded.coding, encoded.segments) == ("gsm7", 1), encoded.text


# --- the pseudo-locale: no word bypasses the catalogue ---------------------------------


@pytest.fixture
def pseudo(tmp_path: Path) -> Words:
    write_pseudo(tmp_path / "locale")
    return load((PSEUDO,), tmp_path / "locale").words(PSEUDO)


def test_every_fixed_word_of_a_text_is_catalogued(pseudo: Words) -> None:
    layout = Layout()
    for certainty in CERTAINTY_WORDS:
        alert = make_alert(certainty=certainty, headline="Headline of the alert")
        own = [alert.text["en"].headline, alert.text["en"].body, alert.area.label]
        statuses: tuple[Status, ...] = ("alert", "update", "cancel", "reinstated")
        shown = [alert_text(alert, status, "en", pseudo, layout).text for status in statuses]
        shown.append(withdrawal_text(alert, "en", pseudo, layout).text)
        for text in shown:
            assert unmarked(text, own) == [], text
    for what in REPLY_IDS:
        text = reply_text(what, pseudo, layout, keyword="ALERTA", zip_code="99999").text
        assert unmarked(text, ["ALERTA", "99999"]) == [], text
    for message_id in REPORTER_REPLIES.values():
        assert unmarked(pseudo.gettext(message_id)) == []


def test_the_configured_help_beats_the_catalogue(tmp_path: Path) -> None:
    write_catalogue(tmp_path, "fr", {"sms.reply.help": "Avisa : aide. STOP pour arreter."})
    words = load(("es", "fr"), tmp_path).words("fr")
    layout = Layout()
    assert reply_text("help", words, layout).text == "Avisa : aide. STOP pour arreter."
    own = reply_text("help", words, layout, help_texts={"fr": "Appelez le 805-555-0100"})
    assert own.text == "Appelez le 805-555-0100"
    spanish = reply_text("help", load(("es", "fr"), tmp_path).words("es"), layout, help_texts={})
    assert spanish.text.startswith("Avisa: alertas verificadas")


def bodies(line: Line, where: str = "alert_id IS NULL") -> list[str]:
    """What the line has queued so far (replies by default), oldest first."""
    conn = sqlite3.connect(line.node.db.path)
    try:
        query = f"SELECT body FROM sms_messages WHERE {where} ORDER BY id"
        return [str(body) for (body,) in conn.execute(query)]
    finally:
        conn.close()


async def answer(line: Line, text: str, mo_id: str, sender: str = PHONE) -> str:
    """Text the line (as Kannel's sms-service would post it); the answer it queued."""
    before = len(bodies(line))
    status, _ = await line.mo(text.encode(), sender=sender, mo_id=mo_id)
    assert status == 200
    queued = bodies(line)
    assert len(queued) == before + 1, f"{text!r} got no answer: {line.sms.stats.inbound}"
    return queued[-1]


async def publish_tip(line: Line) -> None:
    """The desk confirms the one texted tip and publishes it with a prefilled text."""
    desk = line.node.desk
    (tip,) = await desk.listing()
    await desk.claim(tip.id, "ana")
    await desk.outcome(tip.id, "ana", "confirmed")
    await desk.publish(tip.id, "luis", TipDraft(kind="sighting", area=AREA, expires_in="2h"))


async def alert_body(line: Line) -> str:
    await wait_for(
        lambda: bodies(line, "alert_id IS NOT NULL") != [], timeout=20, what="the alert text"
    )
    (text,) = bodies(line, "alert_id IS NOT NULL")
    return text


@pytest.fixture
async def pseudo_line(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Line]:
    data_dir = tmp_path / "ventura"
    data_dir.mkdir(mode=0o700)
    write_pseudo(data_dir / "locale")
    started = await start_line(
        tmp_path,
        clock,
        with_kannel=False,
        node_extra=f'languages = ["{PSEUDO}"]\nlocale_dir = "locale"\n',
        keywords=[("ALERTA", PSEUDO)],
    )
    try:
        yield started
    finally:
        await started.stop()


async def test_every_answer_of_the_line_is_catalogued(pseudo_line: Line) -> None:
    line = pseudo_line
    said = {
        "subscribed, unknown zip": await answer(line, "ALERTA 99999", "q1"),
        "help": await answer(line, "AYUDA", "q2"),
        "stopped": await answer(line, "ALTO", "q3"),
        "started": await answer(line, "START", "q4"),  # subscribed again, in qps
        "tip received": await answer(line, "Hay ICE en la calle Cooper", "q5", sender=OTHER),
    }
    for what, text in said.items():
        assert unmarked(text, ["ALERTA", "99999"]) == [], (what, text)
    await publish_tip(line)
    (thanks,) = bodies(line)[len(said) :]  # to the reporter, in the tip's language
    assert unmarked(thanks) == [], thanks
    alert = await alert_body(line)  # its text prefilled from the catalogue too (tipdraft.*)
    assert unmarked(alert, [AREA.label]) == [], alert


# --- a French catalogue, with no change to the code -----------------------------------

FRENCH = {
    "sms.reply.subscribed": "Avisa : abonne aux alertes de votre zone. STOP pour arreter.",
    "sms.reply.tip": "Avisa : nous avons recu votre signalement. Quelqu'un va le verifier.",
    "reporter.confirmed": "Avisa : merci. Nous avons verifie et envoye une alerte.",
    "sms.status.confirmed": "ALERTE CONFIRMEE",
    "sms.status.stop": "STOP pour arreter",
}
FRENCH_NODE = 'languages = ["es", "en", "fr"]\nlocale_dir = "locale"\n'
FRENCH_KEYWORDS = [("ALERTA", "es"), ("ALERT", "en"), ("ALERTE", "fr")]


async def french_line(tmp_path: Path, clock: FakeClock, *, with_kannel: bool) -> Line:
    data_dir = tmp_path / "ventura"
    data_dir.mkdir(mode=0o700)
    write_catalogue(data_dir / "locale", "fr", FRENCH)
    return await start_line(
        tmp_path, clock, with_kannel=with_kannel, node_extra=FRENCH_NODE, keywords=FRENCH_KEYWORDS
    )


async def test_a_french_keyword_is_answered_in_french(tmp_path: Path, clock: FakeClock) -> None:
    line = await french_line(tmp_path, clock, with_kannel=False)
    try:
        assert await answer(line, "alerte", "f1") == FRENCH["sms.reply.subscribed"]
        # not in the French catalogue: the node's first language, naming the French keyword
        help_text = await answer(line, "INFO", "f2")
        assert help_text.startswith("Avisa: alertas verificadas") and "ALERTE" in help_text
        tip_ack = await answer(line, "Il y a ICE rue Cooper", "f3")
        assert tip_ack == FRENCH["sms.reply.tip"]
        (tip,) = await line.node.desk.listing()
        assert tip.language == "fr"  # the subscriber's language, for the desk too
        await publish_tip(line)
        assert bodies(line)[-1] == FRENCH["reporter.confirmed"]
        alert = await alert_body(line)  # prefilled in fr from the node's first language
        assert alert.startswith("ALERTE CONFIRMEE: Avistamiento. Actividad confirmada:")
        assert alert.endswith("Zona: Calle Cooper. STOP pour arreter.")
        # a number that never subscribed, texting a carrier word, gets that word's language
        assert (await answer(line, "HELP", "f4", sender=OTHER)).startswith("Avisa: verified")
    finally:
        await line.stop()


async def test_a_phone_texting_alerte_reads_french(tmp_path: Path, clock: FakeClock) -> None:
    need_kannel()
    line = await french_line(tmp_path, clock, with_kannel=True)
    try:
        phones = line.phones
        assert phones is not None
        phones.send(PHONE, SHORT_CODE, "ALERTE")
        (welcome,) = await phones.wait_for(1, to=PHONE)
        assert welcome.text == FRENCH["sms.reply.subscribed"]
    finally:
        await line.stop()


def test_a_keyword_language_the_node_does_not_serve_is_refused() -> None:
    base = render("ventura", "127.0.0.1:8470", "https://avisa.example.org")
    sms = '\n[bridges.sms]\nsender = "24587"\n\n[[bridges.sms.keywords]]\nword = "ALERTE"\n'
    sms += 'lang = "fr"\nareas = ["fips:06111"]\n'
    with pytest.raises(ConfigError) as refused:
        parse_config(base + sms)
    assert refused.value.path == "bridges.sms.keywords[0].lang"
    assert "[node] languages" in str(refused.value)
    served = base.replace("[node]\n", '[node]\nlanguages = ["es", "fr"]\n', 1)
    config = parse_config(served + sms + '\n[bridges.sms.help]\nfr = "Aide"\n')
    assert config.bridges.sms is not None and config.bridges.sms.keywords[0].lang == "fr"
    with pytest.raises(ConfigError, match="not one of"):
        parse_config(served + sms + '\n[bridges.sms.help]\nen = "Help"\n')
