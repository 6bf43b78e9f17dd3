"""Verified alerts into Matrix rooms: one bridge per login, one route per room.

Each route follows the feed through its own durable cursor (``bridges.base``)
and decides, for every accepted message:

- an **alert** the route wants (area, kind, certainty, language), still
  unexpired and not already replaced by a later message, is posted as a new
  ``m.notice`` (plain ``body`` and HTML ``formatted_body``);
- an **update** or **cancel** whose chain names a message already in the room
  edits that original event (``m.replace`` with ``m.new_content`` and a
  ``* `` fallback body): an update shows its new content, or, if the new
  version falls outside the route, says the alert changed and no longer
  concerns the room; a cancel says it was withdrawn and by whom;
- an update of something never posted here is treated as a new alert; a
  cancel of something never posted here is not posted at all;
- a **withdraw** event (the alert went back to review after it was accepted,
  e.g. its key was revoked) edits the message to "withdrawn for review",
  keeping only its struck headline; if a reviewer accepts it again, the next
  feed event for it edits the message back.

After an outage the route catches up without flooding the room: expired
messages are skipped, and a message already replaced is skipped in favour
of the one that replaced it (later in the feed). Between batches the route
edits messages whose newest version has expired, driven by the node's clock.

What a message says is ``bridges.render``'s: each section's fixed words come
from the node's catalogues (``node.catalogues``) in that section's language.

Every send carries a transaction id derived from route, alert id and action,
from the same device across restarts; the homeserver returns the first event
for a repeated id, so a crash between sending and recording never posts
twice. Content carries ``m.mentions: {}`` so text in an alert can never ping
the room, and ``org.avisa.alert_id`` for machine readers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from bridges.base import (
    BridgeHost,
    Delivered,
    Handled,
    RouteConsumer,
    RouteFilter,
    Skipped,
    Sleep,
    certainties_or,
    supervised,
)
from bridges.matrix import store as matrix_store
from bridges.matrix.session import MatrixSession, txn_id
from bridges.render import Rendered, Signers, Status, render
from bridges.store import Conn
from relay.core.bridgeconfig import MatrixBridge, MatrixRoute
from relay.core.errors import TransportError
from relay.core.model import Alert
from relay.core.times import parse_duration, rfc3339
from relay.runtime.aio import cancel_all
from relay.storage import store

HTML_FORMAT = "org.matrix.custom.html"
ALERT_ID_FIELD = "org.avisa.alert_id"
_log = structlog.get_logger("avisa.matrix")


def message_content(rendered: Rendered, msgtype: str, alert_id: str) -> dict[str, Any]:
    return {
        "msgtype": msgtype,
        "body": rendered.plain,
        "format": HTML_FORMAT,
        "formatted_body": rendered.html,
        "m.mentions": {},
        ALERT_ID_FIELD: alert_id,
    }


def edit_content(
    rendered: Rendered, msgtype: str, alert_id: str, original_event_id: str
) -> dict[str, Any]:
    """An ``m.replace`` edit of ``original_event_id`` with a fallback for old clients."""
    return {
        "msgtype": msgtype,
        "body": "* " + rendered.plain,
        "format": HTML_FORMAT,
        "formatted_body": "* " + rendered.html,
        "m.new_content": message_content(rendered, msgtype, alert_id),
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_event_id},
        "m.mentions": {},
        ALERT_ID_FIELD: alert_id,
    }


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def _signers(stored: store.StoredAlert) -> Signers:
    return Signers(stored.alert.network, tuple(stored.endorsed_by))


class MatrixRouteWorker(RouteConsumer):
    """One room: posts, edits and expires the alerts meant for it."""

    def __init__(
        self,
        session: MatrixSession,
        route: MatrixRoute,
        node: BridgeHost,
        *,
        bridge_certainties: list[str],
        expiry_check: timedelta,
        retention: timedelta,
        sleep: Sleep,
        retry_max: float,
        idle_wait: float,
    ) -> None:
        key = f"matrix:{session.config.user_id}:{route.room}"
        # Wake at least as often as expiry is checked, even with no new alerts.
        idle_wait = min(idle_wait, expiry_check.total_seconds())
        super().__init__(key, node, sleep=sleep, retry_max=retry_max, idle_wait=idle_wait)
        self.session = session
        self.route = route
        self.catalogues = node.catalogues
        self.filter = RouteFilter(
            areas=tuple(route.areas),
            kinds=frozenset(route.kinds),
            certainties=certainties_or(bridge_certainties, route.certainties),
            languages=tuple(route.languages),
        )
        self.zone = _zone(route.timezone)
        self.expiry_check = expiry_check
        self.retention = retention
        self.room_id: str | None = None
        self._next_sweep = datetime.min.replace(tzinfo=UTC)

    # --- RouteConsumer ----------------------------------------------------------

    async def prepare(self) -> None:
        room_id = await self.session.join(self.route.room)
        if self.route.encrypted and not self.session.is_encrypted(room_id):
            await self.session.enable_encryption(room_id)
        self.room_id = room_id

    async def handle(self, pos: int, stored: store.StoredAlert) -> Handled:
        if self.room_id is None:
            await self.prepare()
        alert = stored.alert
        own = await self.node.db.read(
            partial(matrix_store.own_post, route=self.cursor_name, alert_id=alert.id)
        )
        if own is not None and own.status == "withdrawn":
            # A reviewer accepted again what was withdrawn: show it again, in place.
            return await self._edit(stored, own, f"reinstate-{pos}")
        prior = None
        if alert.msg_type != "alert":
            prior = await self.node.db.read(
                partial(
                    matrix_store.current_post, route=self.cursor_name, alert_ids=alert.references
                )
            )
        if prior is None or prior.room_id != self.room_id:
            return await self._post(stored)
        return await self._edit(stored, prior)

    async def withdraw(self, pos: int, stored: store.StoredAlert) -> Handled:
        """The alert went back to review after it was shown here: edit it to say so."""
        alert = stored.alert
        own = await self.node.db.read(
            partial(matrix_store.own_post, route=self.cursor_name, alert_id=alert.id)
        )
        if own is None or own.status != "active":
            return Skipped("not_shown")
        rendered = self._render(alert, stored, "held")
        event_id = await self._send(
            own.room_id,
            edit_content(rendered, self.route.msgtype, alert.id, own.root_event_id),
            txn_id(self.cursor_name, alert.id, f"withdraw-{pos}"),
        )
        route = self.cursor_name

        def record(conn: Conn) -> None:
            matrix_store.record_edit(
                conn, route, own, alert.id, event_id, "withdrawn", alert.expires_at
            )

        _log.info("withdrawn for review", route=route, alert_id=alert.id)
        return Delivered(record, edit=True)

    async def periodic(self) -> None:
        """Edit messages whose newest version expired; forget old ones."""
        now = self.node.clock()
        if now < self._next_sweep:
            return
        if self.room_id is None:
            await self.prepare()
        due = await self.node.db.read(
            partial(matrix_store.due_to_expire, route=self.cursor_name, now=now)
        )
        for post in due:
            await self._expire(post)
        if len(due) < 100:
            await self.node.db.write(
                partial(
                    matrix_store.purge, route=self.cursor_name, now=now, retention=self.retention
                )
            )
            self._next_sweep = now + self.expiry_check

    # --- decisions ----------------------------------------------------------------

    async def _post(self, stored: store.StoredAlert) -> Handled:
        alert = stored.alert
        if alert.msg_type == "cancel":
            return Skipped("not_posted_here")
        reason = self.filter.skip_reason(alert)
        if reason is None and alert.expires_at <= self.node.clock():
            reason = "expired"
        if reason is None and stored.state in ("cancelled", "superseded"):
            reason = "replaced"
        if reason is not None:
            return Skipped(reason)
        rendered = self._render(alert, stored, "active")
        room_id = self._room()
        event_id = await self._send(
            room_id,
            message_content(rendered, self.route.msgtype, alert.id),
            txn_id(self.cursor_name, alert.id, "post"),
        )
        route = self.cursor_name

        def record(conn: Conn) -> None:
            matrix_store.record_root(conn, route, alert.id, room_id, event_id, alert.expires_at)

        return Delivered(record)

    async def _edit(
        self, stored: store.StoredAlert, prior: matrix_store.Post, action: str = "edit"
    ) -> Handled:
        alert = stored.alert
        if prior.status == "cancelled":
            return Skipped("already_withdrawn")
        if alert.msg_type == "update" and stored.state in ("cancelled", "superseded"):
            return Skipped("replaced")
        status: Status
        if alert.msg_type == "cancel":
            status = "cancelled"
            previous = await self.node.db.read(partial(store.get, alert_id=prior.alert_id))
            rendered = self._render(alert, stored, status, previous.alert if previous else None)
        elif self.filter.skip_reason(alert) is None:
            status = "expired" if alert.expires_at <= self.node.clock() else "active"
            rendered = self._render(alert, stored, status)
        else:
            status = "superseded"
            previous = await self.node.db.read(partial(store.get, alert_id=prior.alert_id))
            shown = previous if previous is not None else stored
            rendered = self._render(shown.alert, shown, status)
        event_id = await self._send(
            prior.room_id,
            edit_content(rendered, self.route.msgtype, alert.id, prior.root_event_id),
            txn_id(self.cursor_name, alert.id, action),
        )
        route = self.cursor_name

        def record(conn: Conn) -> None:
            matrix_store.record_edit(
                conn, route, prior, alert.id, event_id, status, alert.expires_at
            )

        return Delivered(record, edit=True)

    async def _expire(self, post: matrix_store.Post) -> None:
        stored = await self.node.db.read(partial(store.get, alert_id=post.alert_id))
        if stored is not None:
            rendered = self._render(stored.alert, stored, "expired")
            await self._send(
                post.room_id,
                edit_content(rendered, self.route.msgtype, post.alert_id, post.root_event_id),
                txn_id(self.cursor_name, post.alert_id, "expired"),
            )
            self.status.edited += 1
        route = self.cursor_name
        await self.node.db.write(lambda conn: matrix_store.mark_expired(conn, route, post.alert_id))
        _log.info("marked expired", route=route, alert_id=post.alert_id)

    def _render(
        self,
        alert: Alert,
        stored: store.StoredAlert,
        status: Status,
        replaced: Alert | None = None,
    ) -> Rendered:
        return render(
            alert,
            signers=_signers(stored),
            languages=self.filter.languages_for(alert),
            now=self.node.clock(),
            catalogues=self.catalogues,
            status=status,
            zone=self.zone,
            replaced=replaced,
        )

    async def _send(self, room_id: str, content: dict[str, Any], txn: str) -> str:
        try:
            return await self.session.send(room_id, content, txn)
        except TransportError as exc:
            if str(exc).endswith("M_FORBIDDEN"):
                self.room_id = None  # kicked or left: join again before the next try
            raise

    def _room(self) -> str:
        if self.room_id is None:
            raise RuntimeError("route used before prepare()")
        return self.room_id

    def state(self, head: int) -> dict[str, Any]:
        return {
            "room": self.route.room,
            "room_id": self.room_id,
            "encrypted": self.route.encrypted,
            **super().state(head),
        }


class MatrixBridgeRunner:
    """A Matrix login and its routes, running inside the node."""

    def __init__(
        self,
        node: BridgeHost,
        config: MatrixBridge,
        index: int,
        *,
        sleep: Sleep | None = None,
        idle_wait: float = 30.0,
    ) -> None:
        self.node = node
        self.config = config
        self.sleep = sleep = sleep or node.clock.sleep
        retry_max = parse_duration(config.retry_max).total_seconds()
        self.session = MatrixSession(
            config,
            f"bridges.matrix[{index}]",
            node.data_dir,
            node.db,
            node.clock,
            sleep,
            retry_max,
        )
        self.routes = [
            MatrixRouteWorker(
                self.session,
                route,
                node,
                bridge_certainties=list(node.config.policy.bridge_certainties),
                expiry_check=parse_duration(config.expiry_check),
                retention=node.retention,
                sleep=sleep,
                retry_max=retry_max,
                idle_wait=idle_wait,
            )
            for route in config.routes
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(
            asyncio.create_task(
                supervised(self.session.run, self.sleep, "matrix sync"), name="avisa-matrix-sync"
            )
        )
        for route in self.routes:
            self._tasks.append(
                asyncio.create_task(
                    supervised(route.run, self.sleep, "matrix route"), name="avisa-matrix-route"
                )
            )

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        await self.session.close()

    def status(self) -> dict[str, Any]:
        head = int(self.node.feed.head)
        return {
            "type": "matrix",
            "homeserver": self.config.homeserver,
            "user_id": self.config.user_id,
            "device_id": self.session.device_id(),
            "logged_in": self.session.ready.is_set(),
            "last_sync": rfc3339(self.session.last_sync) if self.session.last_sync else None,
            "last_error": self.session.last_error,
            "routes": [route.state(head) for route in self.routes],
        }
