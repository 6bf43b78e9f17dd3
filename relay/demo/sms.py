"""The demo's text line: Ventura's ``[bridges.sms]`` through a local Kannel.

When Debian's ``kannel`` and ``kannel-extras`` are installed, ``TextLine.open``
gives Ventura a text line (short code 24587, keyword ``ALERTA``/``ALERT`` for
its county), starts Kannel on free loopback ports with ``fakesmsc`` as the
phone network (``bridges.sms.localkannel``), and lets the story text as a
resident would and read what the resident's phone receives. Without Kannel
it says how to enable it, and the story leaves the text line out.
"""

from __future__ import annotations

import asyncio
import secrets

from bridges.sms.localkannel import FakeSmsc, Kannel, Mt, missing
from relay.core import config as config_mod
from relay.demo.run import DemoNode, Federation3
from relay.storage.files import write_private

SHORT_CODE = "24587"
RESIDENT = "+18055550134"


def line_toml(kannel: Kannel) -> str:
    return f"""
[bridges.sms]
sendsms_url = "{kannel.sendsms_url}"
username = "{kannel.username}"
sender = "{SHORT_CODE}"
throughput = 30

[[bridges.sms.keywords]]
word = "ALERTA"
lang = "es"
areas = ["fips:06111"]

[[bridges.sms.keywords]]
word = "ALERT"
lang = "en"
areas = ["fips:06111"]
"""


class TextLine:
    """Kannel + fakesmsc, and Ventura configured to use them."""

    def __init__(self, node: DemoNode) -> None:
        secret = secrets.token_hex(16)
        self.node = node
        self.kannel = Kannel(
            node.data.parent / "kannel",
            post_url=f"{node.url}/sms/v1/kannel/{secret}?from=%p&to=%P&id=%I",
        )
        path = node.data / config_mod.CONFIG_NAME
        path.write_text(path.read_text() + line_toml(self.kannel))
        write_private(node.data / "sms.pass", self.kannel.password.encode())
        write_private(node.data / "sms-inbound.secret", secret.encode())
        self.phones: FakeSmsc | None = None

    @classmethod
    def configure(cls, federation: Federation3) -> TextLine | None:
        """Ventura's text line, or None (and how to enable it) without Kannel."""
        reason = missing()
        if reason:
            print(f"\n(No text line in this demo: {reason}.)")
            return None
        print("  ventura gets a text line: short code 24587, ALERTA/ALERT for fips:06111,")
        print("  through a local Kannel gateway (bearerbox + smsbox, fakesmsc as the phones)")
        return cls(federation["ventura"])

    async def start(self) -> None:
        await asyncio.to_thread(self.kannel.start)
        self.phones = await asyncio.to_thread(FakeSmsc, self.kannel)

    async def text(self, body: str) -> None:
        assert self.phones is not None
        await asyncio.to_thread(self.phones.send, RESIDENT, SHORT_CODE, body)

    async def received(self, count: int, timeout: float) -> list[Mt]:
        assert self.phones is not None
        return await self.phones.wait_for(count, to=RESIDENT, timeout=timeout)

    def stop(self) -> None:
        if self.phones is not None:
            self.phones.stop()
        self.kannel.stop()
