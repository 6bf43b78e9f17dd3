"""The pure parts of the text line: keywords, GSM-7 and segments, texts, config."""

from __future__ import annotations

import msgspec
import pytest

from bridges.sms.compose import Layout, alert_text, reply_text, withdrawal_text
from bridges.sms.gsm import encode, is_gsm7, segments, transliterate
from bridges.sms.keywords import Empty, Help, Other, Start, Stop, Subscribe, parse
from relay.core.bridgeconfig import SmsKeyword
from relay.core.config import parse as parse_config
from relay.core.config import render
from relay.core.errors import ConfigError
from relay.core.model import Text
from relay.storage.catalogues import load
from tests.helpers import make_alert

WORDS = load(("es", "en"))  # the shipped catalogues, as a node serving es and en reads them
ES, EN = WORDS.words("es"), WORDS.words("en")

KEYWORDS = [
    SmsKeyword(word="ALERTA", lang="es", areas=["fips:06111", "fips:06083"]),
    SmsKeyword(word="ALERT", lang="en", areas=["fips:06111"]),
]
ZIPS = {"93101": ["zip:93101"]}
ES_AREAS = ("fips:06083", "fips:06111")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALERTA", Subscribe("ALERTA", "es", ES_AREAS)),
        ("  alerta ", Subscribe("ALERTA", "es", ES_AREAS)),
        ("Alérta!", Subscribe("ALERTA", "es", ES_AREAS)),
        ("ALERTA 93101", Subscribe("ALERTA", "es", ("zip:93101",), zip_code="93101")),
        ("alerta 93101-1234", Subscribe("ALERTA", "es", ("zip:93101",), zip_code="93101")),
        ("ALERTA 99999", Subscribe("ALERTA", "es", ES_AREAS, unknown_zip="99999")),
        ("ALERTA por favor", Subscribe("ALERTA", "es", ES_AREAS)),
        ("alert", Subscribe("ALERT", "en", ("fips:06111",))),
        ("STOP", Stop("en")),
        ("stop.", Stop("en")),
        ("Stop sending me these", Stop("en")),
        ("ALTO", Stop("es")),
        ("álto", Stop("es")),
        ("baja", Stop("es")),
        ("STOPALL", Stop("en")),
        ("End", Stop("en")),
        ("CANCEL", Stop("en")),
        ("unsubscribe", Stop("en")),
        ("QUIT", Stop("en")),
        ("START", Start("en")),
        ("unstop", Start("en")),
        ("Yes", Start("en")),
        ("HELP", Help("en")),
        ("ayuda", Help("es")),
        ("AYÚDA", Help("es")),
        ("info", Help(None)),
        ("ALERTAS", Other("ALERTAS")),
        ("STOPP", Other("STOPP")),
        ("Hay ICE en la calle 5", Other("Hay ICE en la calle 5")),
        ("¿alto?", Stop("es")),
        ("", Empty()),
        ("   \n ", Empty()),
        ("!!!", Other("!!!")),
        ("🚨", Other("🚨")),
    ],
)
def test_keywords(text: str, expected: object) -> None:
    assert parse(text, KEYWORDS, ZIPS) == expected


def test_gsm7_alphabet_and_segments() -> None:
    assert is_gsm7("Hola, ¿qué pasa? ñ ü é ¡ya! {€}")
    assert not is_gsm7("más") and not is_gsm7("información") and not is_gsm7("🚨")
    assert segments("x" * 160, "gsm7") == 1 and segments("x" * 161, "gsm7") == 2
    assert segments("x" * 306, "gsm7") == 2 and segments("x" * 307, "gsm7") == 3
    assert segments("{" * 80, "gsm7") == 1 and segments("{" * 81, "gsm7") == 2
    # an escape pair never straddles two parts: 152 + one 2-septet character
    assert segments("x" * 152 + "{" + "x" * 10, "gsm7") == 2
    assert segments("á" * 70, "ucs2") == 1 and segments("á" * 71, "ucs2") == 2
    assert segments("🚨" * 35, "ucs2") == 1 and segments("🚨" * 36, "ucs2") == 2


def test_accents_choice() -> None:
    text = "Redada en Oxnard: más información pronto, ¿sí? “Ojo” — ñandú"
    kept = encode(text, "ucs2")
    assert kept.coding == "ucs2" and kept.text == text
    flat = encode(text, "transliterate")
    assert flat.coding == "gsm7"
    assert flat.text == 'Redada en Oxnard: mas informacion pronto, ¿si? "Ojo" - ñandu'
    assert transliterate("ÁÍÓÚ á") == "AIOU a"
    assert encode("hola 🚨", "transliterate").coding == "ucs2"  # nothing to put instead


def test_alert_text_languages_and_bounds() -> None:
    alert = make_alert(headline="ICE vehicles at Colonia park")
    text = alert_text(alert, "alert", "en", EN, Layout())
    assert text.text.startswith("CONFIRMED ALERT: Sighting. ICE vehicles at Colonia park.")
    assert text.coding == "gsm7" and text.segments == 1
    cancel = alert_text(alert, "cancel", "en", EN, Layout())
    assert cancel.text.startswith("CANCELLED: ICE vehicles")
    long = make_alert(headline="H" * 140)
    body = "Muchísimas patrullas " * 95  # 2,000 characters of UCS-2
    long = long.__class__(
        **{
            **{f: getattr(long, f) for f in long.__struct_fields__},
            "text": {"es": long.text["en"].__class__(headline="Redada", body=body[:2000])},
        }
    )
    for limit in (1, 2, 4, 10):
        fitted = alert_text(long, "alert", "es", ES, Layout(max_segments=limit))
        # cut short enough, the text may lose its last accent and fit GSM-7
        assert fitted.segments <= limit and (fitted.coding == "ucs2" or limit == 1)
        assert fitted.text.startswith("ALERTA CONFIRMADA: Avistamiento. Redada.")
        assert fitted.text.endswith("Zona: Colonia, Oxnard. ALTO para salir.")
        assert "..." in fitted.text
    flat = alert_text(long, "alert", "es", ES, Layout("transliterate", 4))
    assert flat.coding == "gsm7" and flat.segments <= 4 and len(flat.text) > 500


def test_withdrawal_text_says_only_the_headline_within_bounds() -> None:
    alert = make_alert(headline="ICE at Colonia park")
    text = withdrawal_text(alert, "en", EN, Layout()).text
    assert text == (
        "WITHDRAWN FOR REVIEW: ICE at Colonia park. Do not act on this alert until further"
        " notice. STOP to quit."
    )
    assert "Verified" not in text  # nothing else of what it said
    long = make_alert(headline="Ó " * 400)
    encoded = withdrawal_text(long, "en", EN, Layout(max_segments=2))
    assert encoded.segments <= 2 and encoded.text.startswith("WITHDRAWN FOR REVIEW: Ó")
    both = msgspec.structs.replace(
        alert, text={**alert.text, "es": Text(headline="ICE en el parque", body="Verificado.")}
    )
    spanish = withdrawal_text(both, "es", ES, Layout())
    assert spanish.text.startswith("RETIRADA PARA REVISION: ICE en el parque. No actue")
    assert spanish.coding == "gsm7" and spanish.segments == 1


def test_controls_and_bidi_never_reach_a_phone() -> None:
    alert = make_alert(headline="ICE \u202eregdab\u202c here")
    text = alert_text(alert, "alert", "en", EN, Layout()).text
    assert "\u202e" not in text and "\n" not in text


def test_replies_per_language() -> None:
    layout = Layout()
    assert reply_text("stopped", ES, layout, keyword="ALERTA").text.startswith("Avisa: ya no")
    assert reply_text("stopped", EN, layout, keyword="ALERT").text.startswith("Avisa: you will")
    custom = reply_text("help", ES, layout, help_texts={"es": "Llame al 805-555-0100"})
    assert custom.text == "Llame al 805-555-0100"
    every = [
        reply_text(w, WORDS.words(lang), layout, keyword="ALERTA")
        for w in ("subscribed", "stopped", "started", "help", "help_no_tips", "tip")
        for lang in ("es", "en")
    ]
    assert all(r.coding == "gsm7" and r.segments == 1 for r in every)


BASE = render("ventura", "127.0.0.1:8470", "https://avisa.example.org")
SMS = """
[bridges.sms]
sender = "24587"

[[bridges.sms.keywords]]
word = "ALERTA"
lang = "es"
areas = ["fips:06083", "fips:06111"]

[bridges.sms.zips]
93101 = ["zip:93101"]
"""


def test_the_design_example_loads() -> None:
    sms = parse_config(BASE + SMS).bridges.sms
    assert sms is not None and sms.gateway == "kannel" and sms.throughput == 30
    assert sms.certainties == ["confirmed", "false"] and sms.tips and sms.accents == "ucs2"
    assert sms.keywords[0].areas == ["fips:06083", "fips:06111"]
    assert sms.max_replies_per_hour == 500
    assert parse_config(BASE).bridges.sms is None


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ('word = "ALERTA"', 'word = "STOP"', "bridges.sms.keywords[0].word"),
        ('word = "ALERTA"', 'word = "Alto"', "bridges.sms.keywords[0].word"),
        ('word = "ALERTA"', 'word = "two words"', "bridges.sms.keywords[0].word"),
        ('lang = "es"', 'lang = "fr"', "bridges.sms.keywords[0].lang"),
        ('areas = ["fips:06083", "fips:06111"]', "areas = []", "bridges.sms.keywords[0].areas"),
        ('93101 = ["zip:93101"]', '9310 = ["zip:93101"]', "bridges.sms.zips"),
        ('sender = "24587"', 'sender = "24587"\nthroughput = -1', "bridges.sms.throughput"),
        ('sender = "24587"', 'sender = "24587"\ngateway = "smpp"', "bridges.sms.gateway"),
        ('sender = "24587"', 'sender = "24587"\ngateway = "twilio"', "bridges.sms.account_sid"),
        (
            'sender = "24587"',
            'sender = "24587"\npassword_file = "/etc/p"',
            "bridges.sms.password_file",
        ),
        ('sender = "24587"', 'sender = "24587"\nmax_segments = 11', "bridges.sms.max_segments"),
        (
            'sender = "24587"',
            'sender = "24587"\nsendsms_url = "ftp://x"',
            "bridges.sms.sendsms_url",
        ),
        ('sender = "24587"', 'sender = "24587"\ncolour = 1', "bridges.sms"),
        (
            'sender = "24587"',
            'sender = "24587"\nmax_replies_per_hour = -1',
            "bridges.sms.max_replies_per_hour",
        ),
    ],
)
def test_bad_settings_are_named(old: str, new: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + SMS.replace(old, new))
    assert caught.value.args[0] == path or str(caught.value).startswith(path), str(caught.value)


async def test_pacer_keeps_to_its_rate() -> None:
    import asyncio

    from bridges.sms.bridge import Pacer

    loop = asyncio.get_running_loop()
    pacer = Pacer(200)
    started = loop.time()
    for _ in range(41):
        await pacer.slot()
    assert loop.time() - started >= 40 / 200 - 0.005  # 41 starts span 40 intervals
    unpaced = Pacer(0)
    started = loop.time()
    for _ in range(1000):
        await unpaced.slot()
    assert loop.time() - started < 0.2


def test_numbers_the_line_never_texts() -> None:
    from relay.core.phone import never_texted

    assert never_texted("+19005550123") == "premium_rate"  # US 900
    assert never_texted("+449091234567") == "premium_rate"  # UK 09
    assert never_texted("24587") == "short_code"
    assert never_texted("+18055550134") is None and never_texted("+18005550123") is None
