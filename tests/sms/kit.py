"""The SMS tests' world: a node with ``[bridges.sms]`` and a real Kannel + fakesmsc.

``Line.start`` picks Kannel's ports first (so the node's config can name its
sendsms URL), starts the node on 127.0.0.1:0, then Kannel with ``post-url``
pointing at the node's webhook, then ``fakesmsc`` as the phone network. Texted
tips go to the node's real desk (DESIGN §10).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.runner import start_bridges
from bridges.sms.bridge import SmsBridgeRunner
from bridges.sms.localkannel import FakeSmsc, Kannel, missing
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage.files import write_private
from tests.conftest import start_node

SECRET = "inbound-secret-0123456789abcdef"
SHORT_CODE = "24587"
PHONE = "+18055550134"

DRAFT: dict[str, Any] = {
    "kind": "sighting",
    "certainty": "confirmed",
    "area": {
        "label": "Colonia, Oxnard",
        "geohash": "9q4gch",
        "radius_m": 500,
        "codes": ["fips:06111"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {"headline": "ICE en el parque Colonia", "body": "Verificado en el sitio."},
        "en": {"headline": "ICE at Colonia park", "body": "Verified on site."},
    },
    "expires_in": "4h",
}


KEYWORDS = (("ALERTA", "es"), ("ALERT", "en"))


def sms_toml(
    sendsms_url: str,
    extra: str = "",
    gateway: str = "kannel",
    keywords: Sequence[tuple[str, str]] = KEYWORDS,
) -> str:
    """``[bridges.sms]`` for the tests; ``keywords`` (word, lang) subscribe to fips:06111."""
    words = "".join(
        f'\n[[bridges.sms.keywords]]\nword = "{word}"\nlang = "{lang}"\nareas = ["fips:06111"]\n'
        for word, lang in keywords
    )
    return f"""
[bridges.sms]
gateway = "{gateway}"
sendsms_url = "{sendsms_url}"
username = "avisa"
password_file = "sms.pass"
sender = "{SHORT_CODE}"
inbound_secret_file = "sms-inbound.secret"
throughput = 0
certainties = ["confirmed", "false"]
{extra}
{words}
[bridges.sms.zips]
93101 = ["zip:93101"]
"""


def need_kannel() -> None:
    reason = missing()
    if reason:
        pytest.skip(f"real Kannel needed: {reason}")


@dataclass
class Line:
    node: Node
    runner: Any
    url: str
    token: str
    http: aiohttp.ClientSession
    kannel: Kannel | None = None
    phones: FakeSmsc | None = None

    @property
    def sms(self) -> SmsBridgeRunner:
        (line,) = [b for b in self.node.bridges if isinstance(b, SmsBridgeRunner)]
        return line

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", None) or self.headers()
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as r:
            body = await r.read()
            try:
                return r.status, (await r.json(content_type=None)) if body else None
            except ValueError:
                return r.status, body

    async def publish(self, **changes: Any) -> str:
        status, body = await self.call("POST", "/api/v1/alerts", json={**DRAFT, **changes})
        assert status == 201, body
        return str(body["id"])

    async def cancel(self, alert_id: str) -> str:
        text = {
            "es": {"headline": "Falsa alarma", "body": ""},
            "en": {"headline": "False alarm", "body": ""},
        }
        status, body = await self.call(
            "POST", f"/api/v1/alerts/{alert_id}/cancel", json={"text": text}
        )
        assert status == 201, body
        return str(body["id"])

    async def counts(self) -> dict[str, Any]:
        return await self.sms.counts()

    async def wait_counts(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        counts = await self.counts()
        while not check(counts):
            if time.monotonic() > deadline:
                logs = self.kannel.log_tail() if self.kannel else ""
                raise TimeoutError(f"counts never matched: {counts}\n{logs}")
            await asyncio.sleep(0.02)
            counts = await self.counts()
        return counts

    async def mo(
        self,
        body: bytes,
        *,
        sender: str = PHONE,
        mo_id: str = "mo-1",
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Post an MO as Kannel's sms-service would (for input fakesmsc cannot send)."""
        query = {"from": sender, "to": SHORT_CODE, "id": mo_id}
        hdrs = {"Content-Type": 'text/plain; charset="UTF-8"', **(headers or {})}
        async with self.http.post(
            f"{self.url}/sms/v1/kannel/{secret}", params=query, data=body, headers=hdrs
        ) as r:
            raw = await r.read()
            return r.status, raw

    async def stop(self) -> None:
        if self.phones is not None:
            self.phones.stop()
        await self.runner.cleanup()
        await self.node.stop()
        if self.kannel is not None:
            self.kannel.stop()
        await self.http.close()


async def start_line(
    tmp: Path,
    clock: FakeClock,
    *,
    extra: str = "",
    with_kannel: bool = True,
    sendsms_url: str | None = None,
    gateway: str = "kannel",
    password: str = "kannel-test-pw",
    node_extra: str = "",
    keywords: Sequence[tuple[str, str]] = KEYWORDS,
) -> Line:
    """``node_extra`` is added to ``[node]`` (``languages``, ``locale_dir``)."""
    kannel = Kannel(tmp / "kannel", post_url="") if with_kannel else None
    url_out = sendsms_url or (
        kannel.sendsms_url if kannel else "http://127.0.0.1:9/cgi-bin/sendsms"
    )
    node, runner, url, token = await start_node(
        tmp, clock, "ventura", sms_toml(url_out, extra, gateway, keywords), node_extra
    )
    write_private(node.data_dir / "sms.pass", password.encode())
    write_private(node.data_dir / "sms-inbound.secret", SECRET.encode())
    # The line's waits (gateway backoff, rate limits) run in real time here, as the
    # Matrix tests' do: they wait for real processes (Kannel, a gateway stand-in) to
    # come back, which the node's FakeClock (it only dates alerts here) cannot move.
    node.bridges = start_bridges(node, sleep=asyncio.sleep, idle_wait=0.2)
    line = Line(node, runner, url, token, aiohttp.ClientSession())
    line.sms.listening(url)
    if kannel is not None:
        kannel.post_url = f"{url}/sms/v1/kannel/{SECRET}?from=%p&to=%P&id=%I"
        await asyncio.to_thread(kannel.start)
        line.kannel = kannel
        line.phones = FakeSmsc(kannel)
    return line
