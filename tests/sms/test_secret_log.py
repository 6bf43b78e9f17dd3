"""The text line's inbound secret never reaches the node's log (issue 25, hole 6).

The tester made the webhooks fail inside (an internal error) and found the
whole path, ``/sms/v1/kannel/<secret>/report``, in the log: with it anyone
forges subscribe texts and delivery reports. Here two ``avisa run``
processes (a Kannel line with a real Kannel and fakesmsc, and a Twilio line)
have a table of the line renamed under them, so every webhook fails inside
with a 500; then their log files are scanned for the secret, plain and
percent-encoded, and for the phone number: none is there, while the errors
themselves are (with the path, masked).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from bridges.sms.localkannel import FakeSmsc, Kannel
from bridges.sms.twilio import signature
from relay.storage.files import write_private
from tests.helpers import wait_for
from tests.sms.kit import PHONE, SECRET, SHORT_CODE, need_kannel, sms_toml
from tests.test_federation_process import Proc, free_port, setup_node

pytestmark = pytest.mark.slow
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-for-tests"


def line_node(
    tmp_path: Path, name: str, sendsms_url: str, extra: str, gateway: str, password: str
) -> Proc:
    port = free_port()
    data = setup_node(tmp_path / name, "ventura", port)
    config = data / "avisa.toml"
    config.write_text(config.read_text() + sms_toml(sendsms_url, extra, gateway))
    write_private(data / "sms.pass", password.encode())
    write_private(data / "sms-inbound.secret", SECRET.encode())
    env = {k: v for k, v in os.environ.items() if k != "AVISA_TEST_CLOCK_FILE"}
    proc = Proc(data, port, env)
    proc.log_level = "info"
    return proc


def break_the_line(proc: Proc) -> None:
    """Every webhook now fails inside: the queue table is gone (from the node's view)."""
    conn = sqlite3.connect(proc.data / "avisa.db", timeout=30)
    try:
        conn.execute("ALTER TABLE sms_queue RENAME TO sms_queue_hidden")
        conn.commit()
    finally:
        conn.close()


def internal_errors(proc: Proc) -> int:
    return proc.log.read_text(errors="replace").count('"internal error"')


def assert_clean(proc: Proc, password: str) -> None:
    log = proc.log.read_bytes()
    for secret in (SECRET, quote(SECRET, safe=""), password, "8055550134", "555-0134"):
        assert secret.encode() not in log, secret
    assert b"/sms/v1/" in log and b"[redacted]" in log  # the errors are there, masked


async def test_kannel_webhooks_failing_inside_log_no_secret(tmp_path: Path) -> None:
    need_kannel()
    kannel = Kannel(tmp_path / "kannel", post_url="")
    proc = line_node(tmp_path, "k", kannel.sendsms_url, "", "kannel", kannel.password)
    kannel.post_url = f"{proc.url}/sms/v1/kannel/{SECRET}?from=%p&to=%P&id=%I"
    await asyncio.to_thread(kannel.start)
    phones = FakeSmsc(kannel)
    await proc.start()
    try:
        phones.send(PHONE, SHORT_CODE, "ALERTA")
        await phones.wait_for(1, to=PHONE)
        break_the_line(proc)
        phones.send(PHONE, SHORT_CODE, "HELP")  # through Kannel: a 500 to its post-url
        await wait_for(lambda: internal_errors(proc) >= 1, timeout=30, what="the MO failing")
        base = f"{proc.url}/sms/v1/kannel/{SECRET}"
        async with aiohttp.ClientSession() as http:
            for path in ("/report?ref=1&status=1", "/report?ref=1&status=16&reply=x"):
                async with http.get(base + path) as answer:
                    assert answer.status == 500
                    assert SECRET not in await answer.text()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            query = {"from": PHONE, "to": SHORT_CODE, "id": "direct-1"}
            async with http.post(base, params=query, data=b"AYUDA", headers=headers) as answer:
                assert answer.status == 500
    finally:
        proc.stop()
        phones.stop()
        kannel.stop()
    assert internal_errors(proc) >= 4
    assert_clean(proc, kannel.password)


async def test_twilio_webhooks_failing_inside_log_no_secret(tmp_path: Path) -> None:
    extra = f'account_sid = "{SID}"'
    proc = line_node(tmp_path, "t", "http://127.0.0.1:9", extra, "twilio", TOKEN)
    await proc.start()
    try:
        break_the_line(proc)
        base = f"http://127.0.0.1:{proc.port}/sms/v1/twilio/{SECRET}"
        calls = [
            ("", {"MessageSid": "SM1", "From": PHONE, "To": "+18055550100", "Body": "ALERT"}),
            ("/report?ref=1", {"MessageSid": "SM2", "MessageStatus": "delivered"}),
        ]
        async with aiohttp.ClientSession() as http:
            for suffix, form in calls:
                headers = {"X-Twilio-Signature": signature(TOKEN, base + suffix, form)}
                async with http.post(base + suffix, data=form, headers=headers) as answer:
                    assert answer.status == 500
    finally:
        proc.stop()
    assert internal_errors(proc) >= 2
    assert_clean(proc, TOKEN)
