"""Desk sessions: a token typed once, then a cookie; CSRF on every change.

``/desk/login`` checks an operator token against the stored token hashes and
opens a session. The browser gets a random session id in an ``HttpOnly``,
``SameSite=Strict`` cookie (``Secure`` when the request came over TLS, or
through a proxy named in ``[node] trusted_proxies`` that says so in
``X-Forwarded-Proto``). The node keeps, in memory only, the SHA-256 of the
session id (a memory dump or a log line never yields a usable cookie), the
SHA-256 of the token (never the token), a CSRF token and an expiry. Roles are
looked up again from the token hash on every request, so revoking a token
ends its sessions at once. Sessions expire after ``[desk_web] session_ttl``.
Each token holds at most ``PER_TOKEN`` sessions, its own oldest giving way:
a token holder signing in a thousand times pushes out only their own
sessions, never a colleague's. ``MAX_SESSIONS`` bounds the whole table; past
it, the token holding the most sessions loses its oldest. A restart signs
everyone out, which a desk can live with.

Every state change is a POST carrying the session's CSRF token, compared in
constant time; a POST whose ``Origin`` or ``Sec-Fetch-Site`` says it came from
another site is refused before that.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from yarl import URL

from relay.core.errors import Forbidden
from relay.http.clientlimit import from_trusted_proxy
from relay.storage.trust import Role, Roles, roles_for_hash, token_hash

COOKIE = "avisa_desk"
#: Where the desk is mounted (``setup``); its cookies are for these pages alone.
PREFIX = "/desk"
MAX_SESSIONS = 10_000
PER_TOKEN = 20
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: bytes
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """Who is at the desk for this request."""

    roles: Roles
    csrf: str
    # As the API names a caller in a tip's history: the token hash's first 6 bytes.
    token_id: str

    def may(self, allowed: tuple[Role, ...]) -> bool:
        """Admin may do everything, as in the API (``relay.http.api.caller``)."""
        return bool(self.roles & {*allowed, "admin"})

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class Sessions:
    def __init__(
        self, ttl: timedelta, limit: int = MAX_SESSIONS, per_token: int = PER_TOKEN
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.per_token = per_token
        self._by_key: OrderedDict[bytes, Session] = OrderedDict()
        # Each token's session keys, oldest first.
        self._by_token: dict[bytes, OrderedDict[bytes, None]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def open(self, token: str, now: datetime) -> str:
        """A new session for ``token`` (already checked); returns the cookie value."""
        self._forget_expired(now)
        hashed = token_hash(token)
        own = self._by_token.setdefault(hashed, OrderedDict())
        while len(own) >= self.per_token:
            self._drop(next(iter(own)))
        while len(self._by_key) >= self.limit:
            heaviest = max(self._by_token.values(), key=len)
            self._drop(next(iter(heaviest)))
        session_id = secrets.token_urlsafe(32)
        key = _key(session_id)
        self._by_key[key] = Session(hashed, secrets.token_urlsafe(32), now + self.ttl)
        self._by_token.setdefault(hashed, OrderedDict())[key] = None
        return session_id

    def find(self, session_id: str | None, now: datetime) -> Session | None:
        if not session_id or len(session_id) > 100 or not session_id.isascii():
            return None
        session = self._by_key.get(_key(session_id))
        if session is None or session.expires_at <= now:
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 100 and session_id.isascii():
            self._drop(_key(session_id))

    def _drop(self, key: bytes) -> None:
        session = self._by_key.pop(key, None)
        if session is None:
            return
        own = self._by_token.get(session.token_hash)
        if own is not None:
            own.pop(key, None)
            if not own:
                del self._by_token[session.token_hash]

    def _forget_expired(self, now: datetime) -> None:
        for key in [k for k, s in self._by_key.items() if s.expires_at <= now]:
            self._drop(key)


def user_for(session: Session, tokens: tuple[tuple[bytes, Roles], ...]) -> User | None:
    roles = roles_for_hash(session.token_hash, tokens)
    if roles is None:
        return None
    return User(roles, session.csrf, session.token_hash[:6].hex())


def over_tls(request: web.Request) -> bool:
    """Came over TLS, itself or through a trusted proxy that says ``X-Forwarded-Proto: https``."""
    if request.secure:
        return True
    if from_trusted_proxy(request):
        return request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    return False


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, secure: bool, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
    )


def same_site(request: web.Request, own_url: str = "") -> bool:
    """Not a cross-site POST, as far as the browser tells (Sec-Fetch-Site, Origin).

    ``Origin`` must name this node: the host the request was sent to (the
    scheme as ``over_tls`` sees it), or ``own_url`` (``[node] url``). Pages
    are served with ``Referrer-Policy: no-referrer``, under which a browser
    sends ``Origin: null`` even for a form of the same site; so a ``null``
    origin proves nothing either way and the form's token decides. An
    ``Origin`` or ``Host`` that does not parse is not this node.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    sent = _origin(origin)
    scheme = "https" if over_tls(request) else "http"
    own = {_origin(f"{scheme}://{request.host}"), _origin(own_url) if own_url else None}
    return sent is not None and sent in own


def _origin(text: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, or None if it does not parse."""
    if len(text) > 300 or not text.isascii():
        return None
    try:
        url = URL(text)
        host, port = url.host, url.port
    except (ValueError, UnicodeError):
        return None
    if not url.scheme or host is None or port is None:
        return None
    return url.scheme.lower(), host.lower(), port


def check_csrf(user: User, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(presented.encode(), user.csrf.encode()):
        raise Forbidden("the form is stale or came from elsewhere; reload the page")
