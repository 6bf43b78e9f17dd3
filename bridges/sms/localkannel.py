"""A real, local Kannel gateway with a fake SMSC, for tests, benchmarks and the demo.

Never used by a running node: it is the harness that lets a machine with
Debian's ``kannel`` and ``kannel-extras`` try the text line against the real
gateway. ``Kannel`` writes a ``kannel.conf`` on free loopback ports (core,
one ``smsc = fake`` connection, an smsbox with ``sendsms``, a sendsms-user and
a catch-all ``sms-service`` posting to the node), starts ``bearerbox`` and
``smsbox`` as child processes, and waits for ``sendsms`` to answer.

``FakeSmsc`` runs Kannel's own ``fakesmsc`` as the phone network: lines
written to its stdin become MO messages (``"FROM TO text WORDS"``), and the
MT messages Kannel delivers to it are read from its log
(``Got message N: <FROM TO TYPE DATA>``), parsed (``text``, ``data`` URL-encoded,
``ucs-2`` URL-encoded UTF-16BE, ``udh`` parts reassembled) and kept in order.
In ``receive_only`` mode it sends nothing and reads each MT the moment it
arrives (interactive ``fakesmsc`` polls its stdin once a second, which would
add up to a second to every latency).
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from relay.runtime.process import terminate

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
PACKAGES = "kannel kannel-extras"
_GOT = re.compile(r"Got message \d+: <(.*)>$")
_SENT = re.compile(r"fakesmsc: sent message \d+$")


def missing() -> str | None:
    """Why a local Kannel cannot run here, or None when it can."""
    absent = [str(path) for path in (BEARERBOX, SMSBOX, FAKESMSC) if not path.exists()]
    if absent:
        return f"missing {', '.join(absent)}: run `sudo apt-get install -y {PACKAGES}`"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kannel_conf(
    *,
    admin_port: int,
    smsbox_port: int,
    smsc_port: int,
    sendsms_port: int,
    username: str,
    password: str,
    post_url: str,
    log_dir: Path,
    log_level: int = 1,
) -> str:
    """The test gateway's configuration (docs/sms.md shows the one for a real SMSC)."""
    return f"""\
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = "{password}-admin"
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{log_dir}/bearerbox.log"
log-level = {log_level}
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {smsc_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{log_dir}/smsbox.log"
log-level = {log_level}
mo-recode = true
http-request-retry = 30
http-queue-delay = 1

group = sendsms-user
username = "{username}"
password = "{password}"
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
post-url = "{post_url}"
"""


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Kannel:
    base: Path
    post_url: str
    username: str = "avisa"
    password: str = "kannel-test-pw"  # noqa: S105 - a throwaway local test gateway
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    smsc_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    log_level: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def conf(self) -> Path:
        return self.base / "kannel.conf"

    def start(self, timeout: float = 30.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            kannel_conf(
                admin_port=self.admin_port,
                smsbox_port=self.smsbox_port,
                smsc_port=self.smsc_port,
                sendsms_port=self.sendsms_port,
                username=self.username,
                password=self.password,
                post_url=self.post_url,
                log_dir=self.base,
                log_level=self.log_level,
            )
        )
        deadline = time.monotonic() + timeout
        self._spawn(BEARERBOX, "bearerbox")
        _wait_port(self.smsbox_port, deadline)
        self._spawn(SMSBOX, "smsbox")
        _wait_port(self.sendsms_port, deadline)
        self.wait_status("smsbox:", deadline)

    def wait_status(self, needle: str, deadline: float) -> None:
        """Until the admin status page shows ``needle`` (a box, an SMSC online)."""
        while time.monotonic() < deadline:
            try:
                if needle in self.status():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"Kannel status never showed {needle!r}:\n{self.log_tail()}")

    def _spawn(self, program: Path, name: str) -> None:
        out = (self.base / f"{name}.out").open("ab")
        process = subprocess.Popen(  # noqa: S603 - fixed programs, our own config
            [str(program), str(self.conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.processes.append(process)

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.password}-admin"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        for process in reversed(self.processes):
            terminate(process, timeout=10)
        self.processes.clear()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("bearerbox.log", "smsbox.log"):
            path = self.base / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-lines:]))
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Mt:
    """One message as the phone network received it (parts of a long one joined)."""

    sender: str
    receiver: str
    coding: str  # "text", "data" or "ucs-2" (of the first part)
    text: str
    parts: int = 1


def parse_line(line: str) -> tuple[str, str, str, bytes | None, bytes]:
    """``(sender, receiver, kind, udh, payload)`` of one fakesmsc line."""
    sender, receiver, rest = line.split(" ", 2)
    udh: bytes | None = None
    if rest.startswith("udh "):
        _, raw_udh, rest = rest.split(" ", 2)
        udh = unquote_to_bytes(raw_udh)
    kind, _, data = rest.partition(" ")
    if kind == "text":
        return sender, receiver, kind, udh, data.encode()
    return sender, receiver, kind, udh, unquote_to_bytes(data.replace("+", " "))


def decode_payload(kind: str, payload: bytes) -> tuple[str, str]:
    """``(coding, text)``. Parts of a long message are all ``data``: their bytes are
    UCS-2 when they hold a NUL byte (Latin text in UTF-16BE always does; the
    GSM-7 text Kannel hands the fake SMSC never does)."""
    if kind == "ucs-2" or (kind == "data" and b"\x00" in payload and len(payload) % 2 == 0):
        return "ucs-2", payload.decode("utf-16-be", errors="replace")
    try:
        return ("text" if kind == "text" else "data"), payload.decode("utf-8")
    except UnicodeDecodeError:
        return "data", payload.decode("latin-1")


class FakeSmsc:
    """Kannel's ``fakesmsc`` connected to a ``Kannel``'s fake SMSC port."""

    def __init__(self, kannel: Kannel, *, receive_only: bool = False) -> None:
        self.kannel = kannel
        self.received: list[Mt] = []
        self.arrivals: list[float] = []  # time.monotonic() of each complete message
        self._parts: dict[tuple[str, int], dict[int, bytes]] = {}
        self._lock = threading.Lock()
        args = [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(kannel.smsc_port), "-i", "0"]
        if receive_only:
            args += ["-m", "0", "0 0 text unused"]
        self.process = subprocess.Popen(  # noqa: S603 - Kannel's own test tool
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._sent = 0
        self._acknowledged = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        kannel.wait_status("(online", time.monotonic() + 15)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            match = _GOT.search(line)
            if match:
                self._add(match.group(1))
            elif _SENT.search(line):
                with self._changed:
                    self._acknowledged += 1
                    self._changed.notify_all()

    def _add(self, line: str) -> None:
        sender, receiver, kind, udh, payload = parse_line(line)
        with self._lock:
            if udh is None or len(udh) < 6 or udh[1] != 0:
                coding, text = decode_payload(kind, payload)
                self.received.append(Mt(sender, receiver, coding, text))
                self.arrivals.append(time.monotonic())
                return
            ref, total, seq = udh[3], udh[4], udh[5]
            parts = self._parts.setdefault((receiver, ref), {})
            parts[seq] = payload
            if len(parts) == total:
                del self._parts[(receiver, ref)]
                coding, text = decode_payload(kind, b"".join(parts[n] for n in sorted(parts)))
                self.received.append(Mt(sender, receiver, coding, text, total))
                self.arrivals.append(time.monotonic())

    def send(self, sender: str, receiver: str, text: str) -> None:
        """One MO text (at most ~200 bytes: fakesmsc reads 256-byte lines)."""
        self.send_line(f"{sender} {receiver} text {text}")

    def send_line(self, line: str, timeout: float = 10.0) -> None:
        """Write one MO line and wait until fakesmsc says it sent it.

        One at a time: fakesmsc reads stdin through stdio, so a second line
        already in its buffer would wait there for more input.
        """
        assert self.process.stdin is not None
        self._sent += 1
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        with self._changed:
            if not self._changed.wait_for(lambda: self._acknowledged >= self._sent, timeout):
                raise TimeoutError("fakesmsc did not send the message")

    def messages(self, to: str | None = None) -> list[Mt]:
        with self._lock:
            return [mt for mt in self.received if to is None or mt.receiver == to]

    async def wait_for(self, count: int, to: str | None = None, timeout: float = 20.0) -> list[Mt]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(to)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise TimeoutError(f"expected {count} MT messages, got {self.messages(to)}")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        terminate(self.process, timeout=5)
