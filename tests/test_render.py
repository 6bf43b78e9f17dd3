"""``bridges.render``: pure, no event loop, no homeserver."""

from __future__ import annotations

import functools
import html.parser
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import msgspec

from bridges import render as render_module
from bridges.matrix.bridge import edit_content
from bridges.render import MAX_RENDERED_BYTES, Signers, pick_languages, rendered_size
from relay.core.model import Alert, Text
from relay.storage import catalogues
from tests.helpers import T0, make_alert

#: A node's default words: Spanish first, then English (the shipped catalogues).
CATALOGUES = catalogues.load(("es", "en"))
render = functools.partial(render_module.render, catalogues=CATALOGUES)
SIGNERS = Signers("ventura", ("santa-barbara", "la"))


def bilingual(**changes: object) -> Alert:
    alert = make_alert(**changes)  # type: ignore[arg-type]
    texts = {
        "es": Text(headline="ICE en el parque", body="Dos voluntarios.", instruction="No abras"),
        "en": Text(headline="ICE at the park", body="Two volunteers.", instruction="Don't open"),
    }
    return msgspec.structs.replace(alert, text=texts)


def test_spanish_then_english_with_every_fact() -> None:
    out = render(bilingual(), signers=SIGNERS, languages=["es", "en"], now=T0)
    spanish, english = out.plain.split("\n\n———\n\n")
    assert spanish.splitlines()[:2] == ["🔴 CONFIRMADO · Avistamiento", "ICE en el parque"]
    assert "➜ No abras" in spanish and "📍 Zona: Colonia, Oxnard" in spanish
    assert "Visto: 2026-11-23 12:00 UTC · Vence: 2026-11-23 16:00 UTC" in spanish
    assert "Agencias: ICE" in spanish
    assert "Firmado por: ventura (origen) · avalado por: santa-barbara, la" in spanish
    assert english.splitlines()[:2] == ["🔴 CONFIRMED · Sighting", "ICE at the park"]
    assert "Signed by: ventura (origin) · endorsed by: santa-barbara, la" in english
    assert "Seen: 2026-11-23 12:00 UTC · Expires: 2026-11-23 16:00 UTC" in english
    assert out.html.count("<hr>") == 1


def test_route_languages_choose_and_order_sections() -> None:
    alert = bilingual()
    only_english = render(alert, signers=SIGNERS, languages=["en"], now=T0)
    assert "CONFIRMADO" not in only_english.plain and "CONFIRMED" in only_english.plain
    texts = {"es-MX": Text(headline="h", body=""), "en": Text(headline="e", body="")}
    assert pick_languages(texts, ["es"]) == ["es-MX"]
    assert pick_languages(texts, ["en", "es"]) == ["en", "es-MX"]
    assert pick_languages(texts, []) == ["es-MX", "en"]
    assert pick_languages(texts, ["fr"]) == []


def test_debunked_rumor_is_unmistakably_false_in_both_languages() -> None:
    alert = bilingual(kind="rumor", certainty="false")
    out = render(alert, signers=SIGNERS, languages=["es", "en"], now=T0)
    spanish, english = out.plain.split("\n\n———\n\n")
    assert spanish.startswith("❌ FALSO — RUMOR DESMENTIDO")
    assert "FALSO: ICE en el parque" in spanish
    assert english.startswith("❌ FALSE — DEBUNKED RUMOR")
    assert "FALSE: ICE at the park" in english
    assert "CONFIRM" not in out.plain
    assert (
        '<font color="#c00000" data-mx-color="#c00000"><strong>FALSE: ICE at the park' in out.html
    )
    # Still FALSE once expired.
    later = render(alert, signers=SIGNERS, languages=["en"], now=T0 + timedelta(hours=5))
    assert (
        later.plain.startswith("⌛ EXPIRED · ❌ FALSE") and "FALSE: ICE at the park" in later.plain
    )


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def test_hostile_text_is_escaped_and_cannot_reorder() -> None:
    hostile = '<a href="https://evil.example">x</a><img src=x onerror=alert(1)> & "q" \u202eevil'
    alert = make_alert(headline=hostile[:140])
    alert = msgspec.structs.replace(
        alert,
        text={"en": Text(headline=hostile[:140], body="<script>alert(1)</script>\nline 2")},
        area=msgspec.structs.replace(alert.area, label="<b>Oxnard</b>"),
        agencies=["ice", "police"],
    )
    out = render(alert, signers=SIGNERS, languages=["en"], now=T0)
    parser = _Collector()
    parser.feed(out.html)
    assert parser.tags <= {"p", "strong", "em", "del", "br", "hr", "font"}
    assert parser.attributes <= {"color", "data-mx-color"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>line 2" in out.html
    assert "&lt;b&gt;Oxnard&lt;/b&gt;" in out.html and "&quot;q&quot;" in out.html
    assert "\u202e" not in out.plain and "\u202e" not in out.html
    assert "Agencies: ICE, Police" in out.plain


def test_withdrawn_says_so_and_strikes_the_original() -> None:
    original = bilingual()
    cancel = make_alert(msg_type="cancel", references=[original.id])
    cancel = msgspec.structs.replace(
        cancel,
        text={
            "es": Text(headline="Vehículo mal identificado", body=""),
            "en": Text(headline="Misidentified vehicle", body=""),
        },
    )
    out = render(
        cancel,
        signers=Signers("ventura"),
        languages=["es", "en"],
        now=T0,
        status="cancelled",
        replaced=original,
    )
    spanish, english = out.plain.split("\n\n———\n\n")
    assert spanish.startswith("⚪ RETIRADA") and "retirada por ventura" in spanish
    assert english.startswith("⚪ WITHDRAWN") and "withdrawn by ventura" in english
    assert "<del>ICE en el parque</del>" in out.html and "<del>ICE at the park</del>" in out.html


def test_expired_and_superseded() -> None:
    alert = bilingual()
    expired = render(alert, signers=SIGNERS, languages=["es"], now=T0, status="expired")
    assert expired.plain.startswith("⌛ VENCIDA · Avistamiento\nEsta alerta ya no está vigente.")
    assert "➜" not in expired.plain  # no instruction for what no longer holds
    by_time = render(alert, signers=SIGNERS, languages=["es"], now=alert.expires_at)
    assert by_time == expired
    moved = render(alert, signers=SIGNERS, languages=["en"], now=T0, status="superseded")
    assert moved.plain.startswith("🔄 UPDATED") and "<del>ICE at the park</del>" in moved.html


def test_update_is_marked_and_times_use_the_route_zone() -> None:
    update = bilingual(msg_type="update", references=["ventura/01JD0000000000000000000000"])
    out = render(
        update, signers=SIGNERS, languages=["es"], now=T0, zone=ZoneInfo("America/Los_Angeles")
    )
    assert out.plain.startswith("🔴 CONFIRMADO · Avistamiento (actualización)")
    assert "Visto: 2026-11-23 04:00 PST" in out.plain


def test_other_languages_get_the_node_first_languages_labels() -> None:
    alert = msgspec.structs.replace(
        make_alert(), text={"tl": Text(headline="May ICE sa parke", body="")}
    )
    out = render(alert, signers=SIGNERS, languages=["tl"], now=T0)
    assert out.plain.startswith("🔴 CONFIRMADO · Avistamiento\nMay ICE sa parke")
    english_first = catalogues.load(("en", "es"))
    out = render(alert, signers=SIGNERS, languages=["tl"], now=T0, catalogues=english_first)
    assert out.plain.startswith("🔴 CONFIRMED · Sighting\nMay ICE sa parke")


def test_a_regional_tag_reads_its_language() -> None:
    alert = msgspec.structs.replace(make_alert(), text={"es-MX": Text(headline="h", body="")})
    english_first = catalogues.load(("en", "es"))
    out = render(alert, signers=SIGNERS, languages=["es-MX"], now=T0, catalogues=english_first)
    assert out.plain.startswith("🔴 CONFIRMADO · Avistamiento")


def test_largest_possible_alert_fits_the_event_budget() -> None:
    long = Text(headline="\u00e9" * 140, body='"' * 2000, instruction="<" * 1000)
    tags = ["es", "en", "fr", "de", "tl", "zh", "vi", "ko"]
    alert = msgspec.structs.replace(make_alert(), text=dict.fromkeys(tags, long))
    out = render(alert, signers=SIGNERS, languages=tags, now=T0)
    assert rendered_size(out) <= MAX_RENDERED_BYTES
    assert out.plain.count("\n\n———\n\n") == 7  # every language kept, bodies shortened
    assert '"' * 1001 not in out.plain
    # As an edit, encrypted (base64 of the JSON), it stays under Matrix's 64 KiB.
    edit = edit_content(out, "m.notice", alert.id, "$" + "e" * 43)
    assert len(json.dumps(edit)) * 4 / 3 + 2048 < 65536


def test_when_even_headlines_are_too_long_the_first_languages_stay() -> None:
    tags = ["es", "en", "fr"]
    alert = msgspec.structs.replace(
        make_alert(), text={tag: Text(headline=tag * 70, body="") for tag in tags}
    )
    two = render(alert, signers=SIGNERS, languages=tags[:2], now=T0)
    budget = rendered_size(two) + 10
    out = render(alert, signers=SIGNERS, languages=tags, now=T0, budget=budget)
    assert out == two
    assert "eses" in out.plain and "enen" in out.plain and "frfr" not in out.plain


def test_render_is_pure() -> None:
    alert = bilingual()
    first = render(alert, signers=SIGNERS, languages=["es", "en"], now=T0)
    assert first == render(alert, signers=SIGNERS, languages=["es", "en"], now=T0)
