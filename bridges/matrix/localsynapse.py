"""A real, local Synapse homeserver for the Matrix tests, the benchmark and ``avisa demo --matrix``.

Never used by a running node: it is the development harness that lets a fresh
machine try and test the Matrix bridge against the real thing.

``ensure_installed`` puts ``matrix-synapse`` into its own virtual environment
under the project's ``.cache/`` (gitignored) the first time it is needed, so a
fresh clone needs only Python 3.11 and PyPI. An ``flock`` on a file beside it
keeps parallel test processes from installing twice; a stamp file written
last marks a finished install, so an interrupted one is redone.

``Homeserver`` writes a private config (SQLite, plain HTTP on 127.0.0.1 with a
free port, ``registration_shared_secret``, ``trusted_key_servers: []``, no
federation listener and an empty federation whitelist so it never contacts
another server, rate limits raised so tests measure Avisa and not Synapse),
starts it as a child process, waits for ``/_matrix/client/versions`` with a
deadline, and stops it by PID. ``stop``/``start`` keep the database, so a test
can take the homeserver down and bring the same one back.

The admin helpers are async (aiohttp) so tests can call them beside a running
bridge without blocking the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from relay.runtime.clock import system_clock
from relay.runtime.process import terminate


def _cache_dir() -> Path:
    """``AVISA_CACHE_DIR``, else ``.cache/`` of a source checkout, else ``~/.cache/avisa``."""
    if configured := os.environ.get("AVISA_CACHE_DIR"):
        return Path(configured)
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").exists():
        return root / ".cache"
    return Path.home() / ".cache" / "avisa"


CACHE = _cache_dir()
SYNAPSE_SPEC = "matrix-synapse>=1.100,<2"
VENV = CACHE / "synapse-venv"
INSTALL_DEADLINE_S = 1800.0
START_DEADLINE_S = 180.0
SERVER_NAME = "localhost"
_LOTS = {"per_second": 10000, "burst_count": 10000}


def _python_in(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_installed() -> tuple[Path, float]:
    """The venv's python, and how long this call took (installing, or waiting for
    another process that was installing); about 0 when it was already there."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp = VENV / (".installed-" + hashlib.sha256(SYNAPSE_SPEC.encode()).hexdigest()[:12])
    started = system_clock.monotonic()
    with open(CACHE / "synapse-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return _python_in(VENV), system_clock.monotonic() - started
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, env=_clean_env())
        pip = [str(_python_in(VENV)), "-m", "pip", "--disable-pip-version-check"]
        done = subprocess.run(
            [*pip, "install", "--quiet", SYNAPSE_SPEC],
            capture_output=True,
            text=True,
            timeout=INSTALL_DEADLINE_S,
            env=_clean_env(),
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"installing {SYNAPSE_SPEC} failed:\n{done.stderr[-4000:]}")
        stamp.write_text(SYNAPSE_SPEC + "\n")
    return _python_in(VENV), system_clock.monotonic() - started


def _clean_env() -> dict[str, str]:
    """Our environment minus what would leak this project into Synapse's venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(base: Path, port: int, shared_secret: str) -> dict[str, Any]:
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(base / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
        "log_config": str(base / "log.yaml"),
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "report_stats": False,
        "enable_metrics": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "allow_public_rooms_over_federation": False,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "enable_registration": False,
        "rc_message": _LOTS,
        "rc_registration": _LOTS,
        "rc_login": {"address": _LOTS, "account": _LOTS, "failed_attempts": _LOTS},
        "rc_joins": {"local": _LOTS, "remote": _LOTS},
        "rc_joins_per_room": _LOTS,
        "rc_invites": {"per_room": _LOTS, "per_user": _LOTS, "per_issuer": _LOTS},
        "rc_admin_redaction": _LOTS,
        "rc_room_creation": _LOTS,
        "rc_key_requests": _LOTS,
        "rc_3pid_validation": _LOTS,
    }


_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {path}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


@dataclass
class Registered:
    user_id: str
    password: str
    access_token: str
    device_id: str


@dataclass
class Homeserver:
    python: Path
    base: Path
    port: int = field(default_factory=free_port)
    shared_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base / "homeserver.yaml"

    def _command(self) -> list[str]:
        return [str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config_path)]

    def write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "log.yaml").write_text(_LOG_CONFIG.format(path=self.base / "homeserver.log"))
        # JSON is YAML; Synapse reads it as its config file.
        config = json.dumps(_config(self.base, self.port, self.shared_secret), indent=1)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)
        subprocess.run(
            [*self._command(), "--generate-keys"],
            check=True,
            capture_output=True,
            timeout=120,
            env=_clean_env(),
        )

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("homeserver already running")
        started = system_clock.monotonic()
        output = open(self.base / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            self._command(),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=self.base,
            env=_clean_env(),
            start_new_session=True,
        )
        output.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds.append(system_clock.monotonic() - started)

    def _wait_ready(self) -> None:
        deadline = system_clock.monotonic() + START_DEADLINE_S
        assert self.process is not None
        while system_clock.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"synapse exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"synapse not ready after {START_DEADLINE_S}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("stdout.log", "homeserver.log"):
            path = self.base / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        terminate(process)

    # --- admin helpers ------------------------------------------------------

    async def register(self, localpart: str, *, admin: bool = False) -> Registered:
        """A new user via the shared-secret admin API; returns a logged-in session."""
        password = secrets.token_urlsafe(16)
        endpoint = self.url + "/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as http:
            async with http.get(endpoint) as response:
                nonce = (await response.json())["nonce"]
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": _mac(self.shared_secret, nonce, localpart, password, admin),
            }
            async with http.post(endpoint, json=body) as response:
                reply = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"register {localpart}: {reply}")
        return Registered(reply["user_id"], password, reply["access_token"], reply["device_id"])

    async def request(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=body, headers=headers) as r,
        ):
            reply = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{method} {path}: {r.status} {reply}")
            return reply

    async def create_room(self, owner: Registered, alias: str, *, encrypted: bool = False) -> str:
        """A public room ``#alias:localhost`` anyone on the server may join; its id."""
        body: dict[str, Any] = {"room_alias_name": alias, "preset": "public_chat"}
        if encrypted:
            body["initial_state"] = [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
        reply = await self.request(
            "POST", "/_matrix/client/v3/createRoom", owner.access_token, body
        )
        return str(reply["room_id"])

    async def limit_messages(self, admin: Registered, user_id: str, per_second: int) -> None:
        """Make Synapse rate-limit one user's messages (a real M_LIMIT_EXCEEDED)."""
        path = f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit"
        body = {"messages_per_second": per_second, "burst_count": 1}
        await self.request("POST", path, admin.access_token, body)


def _mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + user.encode() + b"\x00" + password.encode() + b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def launch(base: Path) -> tuple[Homeserver, float]:
    """Install if needed, configure and start a homeserver under ``base``."""
    python, install_seconds = ensure_installed()
    server = Homeserver(python, base)
    server.write_config()
    server.start()
    return server, install_seconds
