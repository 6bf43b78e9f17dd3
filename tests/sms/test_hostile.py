"""The text line's webhooks against the hostile catalogue (``tests/sms/hostile.py``).

Two ``avisa run`` nodes: one with a Kannel line and a real Kannel + fakesmsc
(what the node queues in answer really goes out), one with a Twilio line.
Every case is sent as raw bytes. The bar: no 5xx; a refused input gets a 4xx
with an errcode and changes nothing in the database; an accepted one is
harmless; the node logs hold no traceback and no internal error. A few odd
texts also travel through the real Kannel from fakesmsc (UDH, binary,
8-bit data, a long text), as a phone would send them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bridges.sms.localkannel import FakeSmsc, Kannel
from relay.storage.files import write_private
from tests.helpers import wait_for
from tests.sms.hostile import Case, catalogue, request_bytes, send
from tests.sms.kit import PHONE, SECRET, SHORT_CODE, need_kannel, sms_toml
from tests.test_federation_process import Proc, free_port, setup_node

pytestmark = pytest.mark.slow
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-for-tests"


def line_node(tmp_path: Path, sendsms_url: str, gateway: str, password: str) -> Proc:
    port = free_port()
    data = setup_node(tmp_path / gateway, "ventura", port)
    extra = f'account_sid = "{SID}"' if gateway == "twilio" else ""
    config = data / "avisa.toml"
    config.write_text(config.read_text() + sms_toml(sendsms_url, extra, gateway))
    write_private(data / "sms.pass", password.encode())
    write_private(data / "sms-inbound.secret", SECRET.encode())
    env = {k: v for k, v in os.environ.items() if k != "AVISA_TEST_CLOCK_FILE"}
    proc = Proc(data, port, env)
    proc.log_level = "info"
    return proc


def snapshot(proc: Proc) -> dict[str, Any]:
    """What a refused input must not change (delivery columns move on their own)."""
    conn = sqlite3.connect(f"file:{proc.data / 'avisa.db'}?mode=ro", uri=True, timeout=30)
    try:
        queries = {
            "subscribers": "SELECT hash, keyword, lang, areas FROM sms_subscribers",
            "queue": "SELECT id, hash, message_id FROM sms_queue",
            # row 1 (the first welcome) is settled before the catalogue starts; other
            # rows' delivery columns move on their own, as Kannel reports on them
            "row_1": "SELECT id, state, dlr FROM sms_queue WHERE id = 1",
            "mo": "SELECT id FROM sms_mo",
            "optout": "SELECT hash FROM sms_optout",
            "tips": "SELECT id, contact FROM tips",
        }
        return {name: conn.execute(sql + " ORDER BY 1").fetchall() for name, sql in queries.items()}
    finally:
        conn.close()


async def run_case(proc: Proc, case: Case) -> tuple[int, bytes, bool]:
    backend = "twilio" if case.surface.startswith("twilio") else "kannel"
    base_path = f"/sms/v1/{backend}/{SECRET}"
    before = snapshot(proc)
    raw = request_bytes(case, f"127.0.0.1:{proc.port}", base_path, proc.url + base_path, TOKEN)
    status, body = await send("127.0.0.1", proc.port, raw)
    return status, body, snapshot(proc) == before


def log_problems(proc: Proc) -> list[str]:
    problems = []
    for line in proc.log.read_text(errors="replace").splitlines():
        if "Traceback" in line or '"level": "error"' in line or "internal error" in line:
            problems.append(line[:300])
    return problems


async def test_hostile_catalogue_no_5xx_no_traceback(tmp_path: Path) -> None:
    need_kannel()
    kannel = Kannel(tmp_path / "kannel", post_url="")
    kannel_node = line_node(tmp_path, kannel.sendsms_url, "kannel", kannel.password)
    twilio_node = line_node(tmp_path, "http://127.0.0.1:9", "twilio", TOKEN)
    kannel.post_url = f"{kannel_node.url}/sms/v1/kannel/{SECRET}?from=%p&to=%P&id=%I"
    await asyncio.to_thread(kannel.start)
    phones = FakeSmsc(kannel)
    await kannel_node.start()
    await twilio_node.start()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    try:
        phones.send(PHONE, SHORT_CODE, "ALERTA")  # a subscriber, so reports have rows to hit
        await phones.wait_for(1, to=PHONE)
        await wait_for(lambda: snapshot(kannel_node)["row_1"][0][1] == "delivered", timeout=20)
        for case in catalogue(SECRET):
            proc = twilio_node if case.surface.startswith("twilio") else kannel_node
            status, body, unchanged = await run_case(proc, case)
            outcomes[f"{case.surface} {status}"] += 1
            if status >= 500:
                failures.append(f"{case.surface} {case.name}: {status}")
            elif not case.accept:
                errcode = json.loads(body or b"{}").get("errcode", "") if body[:1] == b"{" else ""
                if not 400 <= status < 500 or not errcode or not unchanged:
                    failures.append(f"{case.surface} {case.name}: {status} {body[:80]!r}")
        # Odd texts as a phone sends them, through the real Kannel.
        odd = ["udh %05%00%03%01%02%01 Hay ICE", "data %ff%fe%00%01", "text " + "ñ" * 180]
        for line in odd:
            phones.send_line(f"+18055550188 {SHORT_CODE} {line}")
        phones.send("+18055550188", SHORT_CODE, "AYUDA")
        await phones.wait_for(1, to="+18055550188")
    finally:
        kannel_node.stop()
        twilio_node.stop()
        phones.stop()
        kannel.stop()
    cases = len(catalogue(SECRET))
    print(f"\n{cases} hostile inputs: {dict(sorted(outcomes.items()))}")
    assert failures == [], "\n".join(failures)
    assert log_problems(kannel_node) == [] and log_problems(twilio_node) == []
    assert not [outcome for outcome in outcomes if outcome.split()[1].startswith("5")]
