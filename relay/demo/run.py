"""``avisa demo``: three regional networks on this machine, and a story they play.

Ventura, Los Angeles and Orange County each get a data directory (``avisa
init``), exchange peer cards with fingerprint checks exactly as operators do
(``avisa keys export-card``, ``avisa trust add … --fingerprint``), and run as
real ``avisa run`` processes on 127.0.0.1 with the embedded SQLite store.
Ventura and Orange do not know each other: everything between them travels
through Los Angeles, which endorses what it relays. Orange's policy holds
unconfirmed reports for review and rejects what fails its checks.

``relay.demo.story`` then narrates the scenario and checks every step against
the nodes' APIs. With ``--scenario-only`` the demo exits 0 only if every step
happened as narrated; otherwise it prints each node's URL and operator token
and keeps running until Ctrl-C. Every process it started is stopped on the
way out, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.core import config as config_mod
from relay.core.errors import AvisaError
from relay.runtime.clock import system_clock
from relay.runtime.process import terminate

START_DEADLINE_S = 30.0


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    label: str
    code: str
    policy: dict[str, str] = field(default_factory=dict)


REGIONS = (
    Region("ventura", "Ventura County", "fips:06111"),
    Region("la", "Los Angeles County", "fips:06037"),
    Region(
        "orange",
        "Orange County",
        "fips:06059",
        {"hold_certainties": '["unconfirmed"]', "on_fail": '"reject"'},
    ),
)
# Who trusts whom (a line: Ventura and Orange never meet), and does the
# truster endorse what it relays to that peer.
TRUST = (("ventura", "la", False), ("la", "ventura", True), ("la", "orange", True),
         ("orange", "la", False))  # fmt: skip


def cli(*argv: str) -> str:
    """Run an ``avisa`` command in this process, as the operator would type it."""
    from relay.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise AvisaError(f"avisa {' '.join(argv[:2])} failed: {err.getvalue().strip()}")
    return out.getvalue()


def avisa_command() -> str:
    """How to type ``avisa`` in this shell: the bare name when the PATH finds this
    installation, else the path of the script next to this Python (``.venv/bin/avisa``)."""
    script = Path(sys.executable).parent / "avisa"
    found = shutil.which("avisa")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "avisa"
    if not script.exists():
        return f"{sys.executable} -m relay"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def refuse_used_workdir(workdir: Path) -> None:
    """A demo's nodes start from scratch: a workdir of an earlier run is not reused."""
    used = [region.name for region in REGIONS if (workdir / region.name).exists()]
    if used:
        raise AvisaError(
            f"{workdir} already holds the demo nodes of an earlier run ({', '.join(used)});"
            f" give a new --workdir, or delete that directory first"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoNode:
    region: Region
    data: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.region.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data / config_mod.TOKEN_NAME).read_text().strip()

    def init(self) -> None:
        cli(
            "init",
            "--data",
            str(self.data),
            "--network",
            self.name,
            "--listen",
            f"127.0.0.1:{self.port}",
        )
        path = self.data / config_mod.CONFIG_NAME
        text = path.read_text()
        for setting, value in self.region.policy.items():
            text = _set(text, setting, value)
        # Its own county: the desk's starting place, and what publishing warns outside of.
        text = text.replace("[node]\n", f'[node]\nhome_codes = ["{self.region.code}"]\n', 1)
        path.write_text(text)

    def card(self, workdir: Path) -> tuple[Path, str]:
        card = workdir / f"{self.name}.card.json"
        cli("keys", "export-card", "--data", str(self.data), "--out", str(card))
        shown = json.loads(cli("keys", "show", "--json", "--data", str(self.data)))
        return card, str(shown["fingerprint"])

    def start(self, env: dict[str, str]) -> None:
        log = open(self.data / "node.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "relay", "run", "--data", str(self.data)],
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()

    def wait_ready(self) -> None:
        deadline = system_clock.monotonic() + START_DEADLINE_S
        while not (self.data / "run.json").exists():
            if self.process is not None and self.process.poll() is not None:
                raise AvisaError(f"{self.name} exited; see {self.data / 'node.log'}")
            if system_clock.monotonic() > deadline:
                raise AvisaError(f"{self.name} did not start; see {self.data / 'node.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        terminate(process, timeout=20)


def _set(text: str, setting: str, value: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.split("=")[0].strip() == setting:
            comment = line[line.index("#") :] if "#" in line else ""
            lines[index] = f"{setting} = {value}".ljust(30) + comment
            return "\n".join(lines) + "\n"
    raise AvisaError(f"no setting {setting} in the generated config")


class Federation3:
    """The three demo nodes: set up, running, and always stopped in the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nodes = {r.name: DemoNode(r, workdir / r.name, free_port()) for r in REGIONS}

    def __getitem__(self, name: str) -> DemoNode:
        return self.nodes[name]

    def setup(self, say: Any) -> None:
        for node in self.nodes.values():
            node.init()
            say(f"  avisa init --network {node.name:8} → {node.url}")
        cards = {name: node.card(self.workdir) for name, node in self.nodes.items()}
        for truster, trusted, endorse in TRUST:
            card, fingerprint = cards[trusted]
            code = self.nodes[trusted].region.code
            argv = [
                "trust",
                "add",
                str(card),
                "--fingerprint",
                fingerprint,
                "--speaks-for",
                code,
                "--data",
                str(self.nodes[truster].data),
            ]
            if endorse:
                argv.append("--endorse")
            cli(*argv)
            say(
                f"  {truster:8} trusts {trusted:8} for {code} (fingerprint {fingerprint[:11]}…"
                f" checked){', endorses what it relays there' if endorse else ''}"
            )

    def start(self, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, **(env or {})}
        for node in self.nodes.values():
            node.start(environment)
        for node in self.nodes.values():
            node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    @contextlib.contextmanager
    def running(self, env: dict[str, str] | None = None) -> Iterator[Federation3]:
        try:
            self.start(env)
            yield self
        finally:
            self.stop()


def _stop_on_signals() -> None:
    """Ctrl-C or SIGTERM stops the demo; a second one (a repeated Ctrl-C, or make
    passing its own SIGTERM on) must not cut the nodes' shutdown short with a traceback:
    every node is stopped within a bounded time anyway (``process.terminate``)."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(args: argparse.Namespace) -> int:
    from relay.demo.story import play

    _stop_on_signals()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="avisa-demo-"))
        )
        refuse_used_workdir(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        federation = Federation3(workdir)
        try:
            return asyncio.run(
                play(federation, scenario_only=args.scenario_only, matrix=args.matrix)
            )
        except KeyboardInterrupt:
            print("\nStopping the demo nodes …")
            return 0
        finally:
            federation.stop()
