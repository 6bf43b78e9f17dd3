"""``GET /api/v1/sms``, ``POST /api/v1/sms/preview`` and ``avisa alert publish --dry-run-sms``."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cli.alert import print_sms_preview
from relay.runtime.clock import FakeClock
from tests.sms.kit import DRAFT, start_line


async def test_preview_counts_segments_and_recipients(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    line = await start_line(tmp_path, clock, with_kannel=False, extra='accents = "ucs2"')
    try:
        for n, word in enumerate(["ALERTA", "ALERT", "ALERTA 93101"]):
            status, _ = await line.mo(word.encode(), sender=f"+1805555010{n}", mo_id=f"m{n}")
            assert status == 200
        spanish = {"headline": "Redada en Oxnard", "body": "Más información pronto. " * 6}
        draft = {**DRAFT, "text": {**DRAFT["text"], "es": spanish}}
        status, preview = await line.call("POST", "/api/v1/sms/preview", json=draft)
        assert status == 200, preview
        assert preview["recipients"] == 2 and preview["texted"] and preview["max_segments"] == 4
        es, en = preview["texts"]["es"], preview["texts"]["en"]
        assert es["coding"] == "ucs2" and es["segments"] == 4
        assert en["coding"] == "gsm7" and en["segments"] == 1
        assert en["text"].startswith("CONFIRMED ALERT: Sighting. ICE at Colonia park.")
        print_sms_preview(preview)
        shown = capsys.readouterr().out
        assert "[es] 4 segments, UCS-2" in shown and "[en] 1 segment, GSM-7" in shown
        assert "recipients: 2" in shown
        status, _ = await line.call("GET", "/api/v1/alerts")
        assert status == 200 and _["alerts"] == []  # a preview signs and sends nothing

        status, body = await line.call("POST", "/api/v1/sms/preview", json={**DRAFT, "kind": "x"})
        assert status == 400
        status, body = await line.call(
            "GET", "/api/v1/sms", headers={"Authorization": "Bearer nope"}
        )
        assert status == 401
        status, body = await line.call("GET", "/api/v1/sms")
        assert status == 200 and body["subscribers"] == 3 and body["queued"] + body["sending"] >= 0
    finally:
        await line.stop()


async def test_transliterated_spanish_fits_gsm7(tmp_path: Path, clock: FakeClock) -> None:
    line = await start_line(tmp_path, clock, with_kannel=False, extra='accents = "transliterate"')
    try:
        spanish = {"headline": "Redada en Oxnard", "body": "Más información pronto. " * 6}
        draft = {**DRAFT, "text": {"es": spanish}}
        status, preview = await line.call("POST", "/api/v1/sms/preview", json=draft)
        es = preview["texts"]["es"]
        assert status == 200 and es["coding"] == "gsm7" and es["segments"] == 2
        assert "Mas informacion pronto." in es["text"]
    finally:
        await line.stop()
