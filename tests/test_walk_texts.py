"""Issue 27: words people read in texts and feeds: the SMS welcome, and a withdrawal's
title in the CAP feed that already says "Retirada" (never "RETIRADA: Retirada: …")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridges.render import prefixed
from bridges.sms.compose import Layout, reply_text
from relay.runtime.clock import FakeClock
from relay.storage.catalogues import load
from tests.cap.kit import cap_node, publish
from tests.cap.test_export import PUBLIC, feed_entries

ES, EN = (load(("es", "en")).words(language) for language in ("es", "en"))


def test_the_sms_welcome_names_no_keyword() -> None:
    layout = Layout()
    assert reply_text("subscribed", ES, layout, keyword="ALERTA").text == (
        "Avisa: suscrito a las alertas verificadas de su zona. ALTO para salir, AYUDA para ayuda."
    )
    assert reply_text("subscribed", EN, layout, keyword="ALERT").text == (
        "Avisa: subscribed to verified alerts for your area. STOP to quit, HELP for help."
    )
    narrowed = reply_text("subscribed", ES, layout, keyword="ALERTA", zip_code="99999")
    assert narrowed.segments == 1 and narrowed.text.endswith("recibira toda la zona.")


@pytest.mark.parametrize(
    ("prefix", "headline", "title"),
    [
        ("RETIRADA", "Retirada: era otro vehículo", "RETIRADA: era otro vehículo"),
        ("RETIRADA", "retirada - era otro vehículo", "RETIRADA: era otro vehículo"),
        ("RETIRADA", "Retirada", "RETIRADA"),
        ("RETIRADA", "Era otro vehículo", "RETIRADA: Era otro vehículo"),
        ("RETIRADA", "Retiradas las patrullas", "RETIRADA: Retiradas las patrullas"),
        ("WITHDRAWN", "Withdrawn: wrong place", "WITHDRAWN: wrong place"),
        ("FALSO:", "Falso: no hay ICE en el parque", "FALSO: no hay ICE en el parque"),
        ("FALSO:", "No hay ICE en el parque", "FALSO: No hay ICE en el parque"),
    ],
)
def test_a_prefix_is_never_said_twice(prefix: str, headline: str, title: str) -> None:
    assert prefixed(prefix, headline) == title


async def test_a_withdrawal_titled_retirada_in_the_cap_feed(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with cap_node(tmp_path, clock, extra=PUBLIC) as node:
        withdrawn = await publish(node)
        clock.advance("1m")
        status, _ = await node.call(
            "POST",
            f"/api/v1/alerts/{withdrawn['id']}/cancel",
            json={"text": {"es": {"headline": "Retirada: era otro vehículo", "body": ""}}},
        )
        assert status == 201
        (cancel,) = await feed_entries(node)  # the withdrawn alert leaves the feed
        assert cancel["title"] == "RETIRADA: era otro vehículo"
