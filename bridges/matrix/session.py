"""One Matrix login for a bridge (matrix-nio): secrets, login, sync, joins, sends.

The session owns the nio ``AsyncClient`` and the one task that syncs. Routes
share it: they wait for ``ready`` (logged in and synced once), join their
room, and send. nio's own retry loops are switched off (``max_timeouts=0``,
``max_limit_exceeded=0``) so every failure comes back here at once and is
mapped to the bridge's error types: ``M_LIMIT_EXCEEDED`` → ``RateLimited``
with the server's ``retry_after_ms``; a refused event (too large, bad JSON) →
``Undeliverable``; anything else, and an unreachable homeserver →
``TransportError``. Error texts carry the Matrix errcode only, never the
server's message, a token or a body.

Secrets (``password_file`` or ``access_token_file``) are read from the data
directory, must be 0600, and never leave this module except to nio. A
password login reuses the device id it was first given (kept in the node's
database), so end-to-end keys and the homeserver's transaction-id scope
survive restarts. The crypto store (olm account, megolm sessions) lives in
``DATA/matrix/`` (0700) under a random pickle key kept beside it (0600).

Every call has a deadline; the sync loop long-polls and, after each sync,
does what nio's ``sync_forever`` does for end-to-end encryption: upload,
query and claim keys, and send queued to-device messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)
from nio.exceptions import LocalProtocolError, OlmUnverifiedDeviceError
from nio.store import SqliteStore

from bridges.base import RateLimited, Sleep, Undeliverable, secret_file
from bridges.matrix.store import device_for, save_device
from relay.core.backoff import Backoff
from relay.core.bridgeconfig import MatrixBridge
from relay.core.errors import TransportError
from relay.core.times import Clock
from relay.storage.db import Database
from relay.storage.files import write_private

SYNC_TIMEOUT_MS = 30_000
REQUEST_DEADLINE_S = 30.0
STORE_DIR = "matrix"
MEGOLM = "m.megolm.v1.aes-sha2"
_REFUSED = frozenset({"M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"})
_SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 1},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
_log = structlog.get_logger("avisa.matrix")


def read_secret(data_dir: Path, bridge: MatrixBridge, where: str) -> tuple[str, str]:
    """``("password" | "access_token", value)`` from the bridge's secret file."""
    kind = "password" if bridge.password_file else "access_token"
    name = bridge.password_file or bridge.access_token_file
    return kind, secret_file(data_dir, name, f"{where}.{kind}_file", kind)


class SessionLost(TransportError):
    """The homeserver no longer accepts our access token."""


def check(response: Any, what: str) -> Any:
    """``response`` if it is not an error; else the matching bridge error."""
    if not isinstance(response, ErrorResponse):
        return response
    transport = getattr(response, "transport_response", None)
    http_status = getattr(transport, "status", None)
    code = response.status_code or f"HTTP {http_status or '?'}"
    if code == "M_LIMIT_EXCEEDED" or http_status == 429:
        wait = (response.retry_after_ms or 5000) / 1000
        raise RateLimited(f"{what}: M_LIMIT_EXCEEDED", wait)
    if code in _REFUSED:
        raise Undeliverable(f"{what}: {code}")
    if code == "M_UNKNOWN_TOKEN":
        raise SessionLost(f"{what}: {code}")
    raise TransportError(f"{what}: {code}")


class MatrixSession:
    def __init__(
        self,
        bridge: MatrixBridge,
        where: str,
        data_dir: Path,
        db: Database,
        clock: Clock,
        sleep: Sleep,
        retry_max: float,
        sync_filter: dict[str, Any] | None = None,
    ) -> None:
        self.config = bridge
        # The alert bridge only sends; the desk room also reads every message.
        self.sync_filter = sync_filter or _SYNC_FILTER
        # nio event callbacks (function, event types) given to every client this
        # session makes; they run inside sync, so they must only queue work.
        self.callbacks: list[tuple[Callable[..., Awaitable[None]], tuple[type, ...]]] = []
        self.where = where
        self.db = db
        self.clock = clock
        self.sleep = sleep
        self.login_kind, self._secret = read_secret(data_dir, bridge, where)
        self.store_dir = data_dir / STORE_DIR
        self.client: AsyncClient | None = None
        self.ready = asyncio.Event()
        self._synced = asyncio.Event()
        self.backoff = Backoff(cap=retry_max)
        self.last_error: str | None = None
        self.last_sync: datetime | None = None

    # --- lifecycle ------------------------------------------------------------

    async def run(self) -> None:
        """Log in, then sync forever; re-login when the token is lost."""
        while True:
            try:
                if not self.ready.is_set():
                    await self._login()
                    await self._sync(full_state=True)
                    self.ready.set()
                    self.backoff.reset()
                await self._sync(full_state=False)
                self.backoff.reset()
            except TransportError as exc:
                if isinstance(exc, SessionLost) and self.login_kind == "password":
                    self.ready.clear()
                self.last_error = str(exc)
                wait = (
                    exc.retry_after if isinstance(exc, RateLimited) else self.backoff.next_delay()
                )
                await self.sleep(wait)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    def _pickle_key(self) -> str:
        self.store_dir.mkdir(mode=0o700, exist_ok=True)
        self.store_dir.chmod(0o700)
        path = self.store_dir / "pickle.key"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(32).encode())
        return path.read_text().strip()

    def _new_client(self, device_id: str | None) -> AsyncClient:
        config = AsyncClientConfig(
            max_limit_exceeded=0,
            max_timeouts=0,
            request_timeout=REQUEST_DEADLINE_S,
            encryption_enabled=True,
            store=SqliteStore,
            store_sync_tokens=False,
            pickle_key=self._pickle_key(),
        )
        client = AsyncClient(
            self.config.homeserver.rstrip("/"),
            self.config.user_id,
            device_id=device_id or "",
            store_path=str(self.store_dir),
            config=config,
        )
        for callback, types in self.callbacks:
            client.add_event_callback(callback, types)
        return client

    async def _login(self) -> None:
        await self.close()
        user_id = self.config.user_id
        if self.login_kind == "password":
            device_id = await self.db.read(lambda conn: device_for(conn, user_id))
            if device_id and not (self.store_dir / f"{user_id}_{device_id}.db").exists():
                device_id = None  # its keys are gone: a new device, not a silent key change
            self.client = self._new_client(device_id)
            response = await self._ask(
                self.client.login(self._secret, self.config.device_name), "login"
            )
            assert isinstance(response, LoginResponse)
            if response.device_id != device_id:
                new_device = response.device_id
                await self.db.write(lambda conn: save_device(conn, user_id, new_device))
        else:
            self.client = self._new_client(None)
            self.client.access_token = self._secret
            who = await self._ask(self.client.whoami(), "whoami")
            assert isinstance(who, WhoamiResponse)
            if who.user_id != user_id or not who.device_id:
                raise TransportError("access token belongs to another user or has no device")
            self.client.restore_login(who.user_id, who.device_id, self._secret)
        _log.info("matrix login", user_id=user_id, device_id=self.client.device_id)

    async def _ask(self, request: Awaitable[Any], what: str) -> Any:
        """Await a nio request with a deadline; its response, or a bridge error."""
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S + SYNC_TIMEOUT_MS / 1000):
                response = await request
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransportError(f"{what}: homeserver unreachable ({type(exc).__name__})") from None
        except (LocalProtocolError, OlmUnverifiedDeviceError) as exc:
            raise TransportError(f"{what}: {type(exc).__name__}") from None
        return check(response, what)

    async def _sync(self, *, full_state: bool) -> None:
        client = self._client()
        response = await self._ask(
            client.sync(
                timeout=0 if full_state else SYNC_TIMEOUT_MS,
                sync_filter=self.sync_filter,
                full_state=full_state,
                set_presence="offline",
            ),
            "sync",
        )
        assert isinstance(response, SyncResponse)
        await self._after_sync(client)
        self.last_sync = self.clock()
        self.last_error = None
        synced, self._synced = self._synced, asyncio.Event()
        synced.set()

    async def _after_sync(self, client: AsyncClient) -> None:
        if client.should_upload_keys:
            await self._ask(client.keys_upload(), "keys upload")
        if client.should_query_keys:
            await self._ask(client.keys_query(), "keys query")
        if client.should_claim_keys:
            users = client.get_users_for_key_claiming()
            await self._ask(client.keys_claim(users), "keys claim")
        for reply in await self._ask(client.send_to_device_messages(), "to-device"):
            check(reply, "to-device")

    def _client(self) -> AsyncClient:
        if self.client is None or not self.client.logged_in:
            raise TransportError("not logged in")
        return self.client

    # --- what routes use --------------------------------------------------------

    async def wait_synced(self, timeout: float) -> bool:
        """True once the next sync completed; False after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._synced.wait()
                return True
        return False

    async def join(self, room: str) -> str:
        """Join ``room`` (alias or id) and wait until a sync has shown it; its id."""
        await self.ready.wait()
        client = self._client()
        joined = await self._ask(client.join(room), "join")
        assert isinstance(joined, JoinResponse)
        room_id = str(joined.room_id)
        for _ in range(3):
            if room_id in client.rooms:
                return room_id
            await self.wait_synced(SYNC_TIMEOUT_MS / 1000)
        if room_id not in client.rooms:
            raise TransportError("join: the room did not appear in sync")
        return room_id

    def is_encrypted(self, room_id: str) -> bool:
        room = self._client().rooms.get(room_id)
        return bool(room is not None and room.encrypted)

    async def enable_encryption(self, room_id: str) -> None:
        client = self._client()
        content = {"algorithm": MEGOLM}
        response = await self._ask(
            client.room_put_state(room_id, "m.room.encryption", content), "enable encryption"
        )
        assert isinstance(response, RoomPutStateResponse)
        for _ in range(3):
            if self.is_encrypted(room_id):
                return
            await self.wait_synced(SYNC_TIMEOUT_MS / 1000)
        raise TransportError("enable encryption: not yet visible in sync")

    async def send(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        """Send one ``m.room.message``; the same ``txn_id`` never posts twice."""
        client = self._client()
        sent = await self._ask(
            client.room_send(
                room_id,
                "m.room.message",
                content,
                tx_id=txn_id,
                ignore_unverified_devices=True,
            ),
            "send",
        )
        assert isinstance(sent, RoomSendResponse)
        return str(sent.event_id)

    def device_id(self) -> str | None:
        return self.client.device_id if self.client is not None else None


def txn_id(route: str, alert_id: str, action: str) -> str:
    """A transaction id that is the same for the same delivery, and only for it."""
    digest = hashlib.sha256(f"{route}\n{alert_id}\n{action}".encode()).hexdigest()
    return f"avisa.{digest[:40]}"
