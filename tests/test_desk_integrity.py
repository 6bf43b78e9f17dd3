""" "Verified" means verified at the desk (issue 25 holes 1 and 4, DESIGN §17), on real nodes.

Each test drives a real node (real SQLite, the HTTP API on 127.0.0.1:0, the
real CAP importer polling a local aiohttp source) the way an attacker or a
careless operator would:

- hole 1: a CAP source files a tip, two persons confirm it, the source's
  Update moves it to another county: the tip is back to ``claimed`` with no
  confirmations, the history says what changed and from which source, and
  publishing is refused. Conflicting outcomes make the tip ``disputed``;
  only a publisher's outcome settles it;
- hole 4: a sender's tips are capped per hour and per day (429, nothing
  stored), through the API and the public form; 120 texts from one number
  with 5 real reports among them: the 5 remain;
- persons, not tokens: two tokens of Rosa and Rosa's linked Matrix id are one
  verifier;
- a published tip is never closed;
- a closed tip's sealed contact leaves the database file and its WAL at once.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from relay.core.tips import TipIn
from relay.runtime.clock import FakeClock
from relay.storage import db, trust
from relay.storage import tips as tip_store
from tests.adversarial.kit import figure
from tests.cap.kit import cap_node, fixture
from tests.cap.spy import DeskSpy
from tests.cap.test_import import (  # noqa: F401 - fixtures
    BEFORE_STORM_ENDS,
    THUNDERSTORM_REF,
    Origin,
    http,
    origin,
    poller,
)
from tests.conftest import RunningNode
from tests.helpers import T0, report_token

TIP: dict[str, Any] = {
    "text": "Dos camionetas blancas sin placas frente a la tienda",
    "where": {"label": "Colonia park, Oxnard", "geohash": "9q4gch", "codes": ["zip:93030"]},
    "channel": "hotline",
}
FLOODER = "+1 805 555 0111"


async def people(running: RunningNode, *tokens: tuple[str, str, str | None]) -> list[str]:
    """Tokens (roles, label, person) on the running node."""
    made = []
    for roles, label, person in tokens:

        def add(
            conn: sqlite3.Connection, r: str = roles, lb: str = label, p: str | None = person
        ) -> str:
            return trust.add_token(conn, trust.parse_roles(r), lb, T0, p)

        made.append(await running.node.db.write(add))
    await running.node.reload_trust()
    return made


async def as_(running: RunningNode, token: str, method: str, path: str, body: Any = None):  # type: ignore[no-untyped-def]
    kwargs: dict[str, Any] = {"headers": running.headers(token)}
    if body is not None:
        kwargs["json"] = body
    return await running.call(method, path, **kwargs)


def rule(running: RunningNode, **settings: Any) -> None:
    desk = running.node.desk
    desk.section = msgspec.structs.replace(desk.section, **settings)


async def count(running: RunningNode, where: str = "1") -> int:
    sql = f"SELECT count(*) FROM tips WHERE {where}"
    (found,) = await running.node.db.read(lambda c: c.execute(sql).fetchone())
    return int(found)


# --- hole 1 -------------------------------------------------------------------


@pytest.fixture
async def cap(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    async with cap_node(tmp_path, clock, network="oxnard") as running:
        yield running


def moved(storm: bytes) -> bytes:
    """The storm's Update, moved to another county."""
    return (
        storm.replace(b"KSTO1055887203", b"KSTO1055887299", 1)
        .replace(b"<msgType>Alert</msgType>", b"<msgType>Update</msgType>")
        .replace(
            b"<scope>Public</scope>",
            b"<scope>Public</scope><references>KSTO@NWS.NOAA.GOV,KSTO1055887203,"
            b"2003-06-17T14:57:00-07:00</references>",
        )
        .replace(b"<sent>2003-06-17T14:57:00", b"<sent>2003-06-17T15:10:00")
        .replace(b"EXTREME NORTH CENTRAL TUOLUMNE COUNTY", b"DOWNTOWN LOS ANGELES COUNTY")
    )


async def test_a_feed_cannot_move_a_confirmed_tip(
    cap: RunningNode,
    clock: FakeClock,
    origin: Origin,  # noqa: F811 - the fixture
    http: aiohttp.ClientSession,  # noqa: F811 - the fixture
) -> None:
    clock.now = BEFORE_STORM_ENDS
    rule(cap, confirmations=2)
    ana, ben, pia = await people(
        cap, ("verifier", "Ana", None), ("verifier", "Ben", None), ("publisher", "Pia", None)
    )
    storm = fixture("thunderstorm.cap")
    origin.files["/feed"] = storm
    desk = DeskSpy(cap.node.desk)
    source = poller(cap, desk, origin.url + "/feed", http)
    await source.poll()
    tip_id = desk.by_ref[THUNDERSTORM_REF]
    path = f"/api/v1/tips/{tip_id}"
    await as_(cap, ana, "POST", path + "/claim")
    for token in (ana, ben):
        status, shown = await as_(cap, token, "POST", path + "/outcome", {"outcome": "confirmed"})
        assert status == 200, shown
    assert (shown["state"], shown["confirmations"]) == ("confirmed", 2)

    origin.files["/feed"] = moved(storm)
    await source.poll()
    assert desk.updates == [THUNDERSTORM_REF]
    status, shown = await as_(cap, pia, "GET", path)
    assert (shown["state"], shown.get("confirmations", 0)) == ("claimed", 0)
    assert "DOWNTOWN LOS ANGELES" in shown["where"]["label"]
    update = shown["history"][-1]
    assert (update["action"], update["actor"]) == ("update", "source")
    assert "where" in update["changed"]  # (and observed_at: the Update was sent later)
    assert THUNDERSTORM_REF in update["note"]
    for method, action in (("POST", "/publish"), ("GET", "/draft")):
        status, body = await as_(cap, pia, method, path + action, {} if method == "POST" else None)
        assert (status, body["errcode"]) == (409, "AVISA_NEEDS_CONFIRMATION")
    assert await cap.call("GET", "/api/v1/alerts") == (200, {"alerts": []})

    # the same Update served again changes nothing and is not history
    origin.files["/feed"] = moved(storm) + b"\n"
    await source.poll()
    status, again = await as_(cap, pia, "GET", path)
    assert len(again["history"]) == len(shown["history"])

    # they disagree about the new place: disputed; only the publisher's outcome settles it
    await as_(cap, ana, "POST", path + "/outcome", {"outcome": "confirmed"})
    status, shown = await as_(cap, ben, "POST", path + "/outcome", {"outcome": "false_alarm"})
    assert (status, shown["state"]) == (200, "disputed")
    status, body = await as_(cap, pia, "POST", path + "/publish", {})
    assert (status, body["errcode"]) == (409, "AVISA_DISPUTED")
    status, shown = await as_(cap, ana, "POST", path + "/outcome", {"outcome": "confirmed"})
    assert shown["state"] == "disputed"  # insisting settles nothing
    status, shown = await as_(cap, pia, "POST", path + "/outcome", {"outcome": "confirmed"})
    assert (status, shown["state"], shown["history"][-1]["ruling"]) == (200, "confirmed", True)
    status, published = await as_(cap, pia, "POST", path + "/publish", {"expires_in": "2h"})
    assert status == 201, published


async def test_a_publisher_rules_only_on_a_disputed_tip(running: RunningNode) -> None:
    intake, pia = await people(running, ("intake", "hotline", None), ("publisher", "Pia", None))
    _, body = await as_(running, intake, "POST", "/api/v1/tips", TIP)
    path = f"/api/v1/tips/{body['id']}"
    await running.node.desk.claim(body["id"], "ana")
    status, body = await as_(running, pia, "POST", path + "/outcome", {"outcome": "confirmed"})
    assert (status, body["errcode"]) == (403, "AVISA_FORBIDDEN")
    assert (await running.node.desk.get(path.rsplit("/", 1)[1])).history[-1].action == "claim"


# --- hole 4 -------------------------------------------------------------------


async def test_a_sender_is_capped_per_hour_and_per_day(
    running: RunningNode, clock: FakeClock
) -> None:
    rule(running, tips_per_sender_hour=3, tips_per_sender_day=5)
    (intake,) = await people(running, ("intake", "hotline", None))
    # A number's tips (by text or phoned in: the sms channel is the line's own, DESIGN §17)
    texted = {**TIP, "channel": "hotline", "contact": FLOODER}
    answers = [(await as_(running, intake, "POST", "/api/v1/tips", texted))[0] for _ in range(4)]
    assert answers == [201, 201, 201, 429]
    status, body = await as_(running, intake, "POST", "/api/v1/tips", texted)
    assert (status, body["errcode"]) == (429, "AVISA_TOO_MANY_TIPS")
    assert await count(running) == 3
    status, _ = await as_(
        running, intake, "POST", "/api/v1/tips", {**texted, "contact": "+1 805 555 0122"}
    )
    assert status == 201  # another number is another sender
    clock.advance(timedelta(hours=1))
    answers = [(await as_(running, intake, "POST", "/api/v1/tips", texted))[0] for _ in range(3)]
    assert answers == [201, 201, 429]  # five a day
    clock.advance(timedelta(days=1))
    assert (await as_(running, intake, "POST", "/api/v1/tips", texted))[0] == 201
    # a tip without a sender (typed in by the hotline) is not capped
    answers = [(await as_(running, intake, "POST", "/api/v1/tips", TIP))[0] for _ in range(6)]
    assert answers == [201] * 6


async def test_the_public_form_answers_429_past_a_senders_cap(running: RunningNode) -> None:
    fields = {"text": "Camionetas de ICE", "place": "Colonia park", "zip": "93030"}
    statuses = []
    for _ in range(4):
        fields["t"] = await report_token(running.http, running.url)
        async with running.http.post(running.url + "/report?lang=en", data=fields) as reply:
            statuses.append(reply.status)
            page = await reply.text()
    assert statuses == [200, 200, 200, 429]
    assert "cannot take reports right now" in page
    assert await count(running) == 3


async def test_a_flood_of_texts_never_crowds_out_real_reports(running: RunningNode) -> None:
    rule(running, max_open_tips=10, tips_per_sender_hour=1000, tips_per_sender_day=1000)
    (intake,) = await people(running, ("intake", "hotline", None))
    flood = {**TIP, "channel": "hotline", "contact": FLOODER, "text": "ICE everywhere"}
    real = [TIP, TIP, {**TIP, "contact": "+1 805 555 0122"}, TIP, {**TIP, "contact": "8055550133"}]
    kept = []
    for n in range(120):
        status, body = await as_(running, intake, "POST", "/api/v1/tips", flood)
        assert status == 201, body
        if n % 24 == 0:
            status, body = await as_(running, intake, "POST", "/api/v1/tips", real[n // 24])
            assert status == 201, body
            kept.append(body["id"])
    shown = {tip.id: tip.state for tip in await running.node.desk.listing(limit=1000)}
    assert all(shown.get(tip_id) == "new" for tip_id in kept), shown
    assert len(shown) == 10 and await count(running, "state = 'new'") == 10
    # every sender holding one open tip: nobody's only tip goes, the new one is refused
    for tip_id in list(shown):
        if tip_id not in kept:
            await running.node.desk.close(tip_id, "ana")
    for n in range(5):
        await as_(running, intake, "POST", "/api/v1/tips", {**TIP, "contact": f"80555502{n}0"})
    status, body = await as_(running, intake, "POST", "/api/v1/tips", flood)
    assert status == 201  # three hotline tips weigh together: their oldest gives way
    status, body = await as_(
        running, intake, "POST", "/api/v1/tips", {**TIP, "contact": "8055550299"}
    )
    assert status == 201
    status, body = await as_(
        running, intake, "POST", "/api/v1/tips", {**TIP, "contact": "8055550298"}
    )
    assert (status, body["errcode"]) == (429, "AVISA_DESK_FULL")


# --- persons, not tokens --------------------------------------------------------


def avisa(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


async def test_two_tokens_and_a_matrix_id_of_one_person_are_one_verifier(
    running: RunningNode,
) -> None:
    rule(running, confirmations=2)
    rosa_phone, rosa_laptop, luis, pia = await people(
        running,
        ("verifier", "Rosa phone", "Rosa"),
        ("verifier", "Rosa laptop", "Rosa"),
        ("verifier", "Luis", None),
        ("publisher", "Pia", None),
    )
    tip_id = await running.node.desk.submit(msgspec.convert(TIP, type=TipIn))
    path = f"/api/v1/tips/{tip_id}"
    await as_(running, rosa_phone, "POST", path + "/claim")
    for token in (rosa_phone, rosa_laptop):
        status, shown = await as_(
            running, token, "POST", path + "/outcome", {"outcome": "confirmed"}
        )
    assert (status, shown["confirmations"]) == (200, 1)
    assert {e["person"] for e in shown["history"]} == {"Rosa"}
    status, body = await as_(running, pia, "POST", path + "/publish", {})
    assert (status, body["errcode"]) == (409, "AVISA_NEEDS_CONFIRMATION")

    data = str(running.data_dir)
    bad = avisa("desk", "link", "rosa", "Rosa", "--data", data, check=False)
    assert bad.returncode == 1 and "@user:example.org" in bad.stderr
    avisa("desk", "link", "@rosa:example.org", "Rosa", "--data", data)
    persons = avisa("desk", "persons", "--data", data).stdout
    assert "@rosa:example.org" in persons and persons.count("Rosa") == 3
    # as the desk room records it: the sender's Matrix id
    shown_tip = await running.node.desk.outcome(tip_id, "@rosa:example.org", "confirmed")
    assert (shown_tip.confirmations, shown_tip.history[-1].person) == (1, "Rosa")
    status, shown = await as_(running, luis, "POST", path + "/outcome", {"outcome": "confirmed"})
    assert shown["confirmations"] == 2
    status, published = await as_(running, pia, "POST", path + "/publish", {})
    assert status == 201, published


async def test_a_link_made_later_counts_for_outcomes_already_recorded(
    running: RunningNode,
) -> None:
    rule(running, confirmations=2)
    olga, pia = await people(running, ("verifier", "Olga", None), ("publisher", "Pia", None))
    desk = running.node.desk
    tip_id = await desk.submit(msgspec.convert(TIP, type=TipIn))
    await desk.claim(tip_id, "@olga:example.org")
    await desk.outcome(tip_id, "@olga:example.org", "confirmed")  # not linked yet
    status, shown = await as_(running, olga, "POST", f"/api/v1/tips/{tip_id}/outcome",
                              {"outcome": "confirmed"})  # fmt: skip
    assert (status, shown["confirmations"]) == (200, 2)  # two persons, as far as it knows
    avisa("desk", "link", "@olga:example.org", "Olga", "--data", str(running.data_dir))
    assert (await desk.get(tip_id)).confirmations == 1
    status, body = await as_(running, pia, "POST", f"/api/v1/tips/{tip_id}/publish", {})
    assert (status, body["errcode"]) == (409, "AVISA_NEEDS_CONFIRMATION")


def test_token_add_person_and_list(tmp_path: Path) -> None:
    data = str(tmp_path / "n")
    avisa("init", "--network", "ventura", "--data", data)
    avisa("token", "add", "--role", "verifier", "--label", "Rosa phone", "--person", "Rosa",
          "--data", data)  # fmt: skip
    avisa("token", "add", "--role", "verifier", "--label", "Luis", "--data", data)
    listed = avisa("token", "list", "--data", data).stdout
    assert "Rosa phone  [Rosa]" in listed and "[Luis]" not in listed
    persons = avisa("desk", "persons", "--data", data).stdout
    assert "Rosa" in persons and "Luis" in persons
    bad = avisa("token", "add", "--role", "verifier", "--person", "x" * 101, "--data", data,
                check=False)  # fmt: skip
    assert bad.returncode == 1 and "1-100 printable" in bad.stderr


# --- published, closed ------------------------------------------------------------


async def test_a_published_tip_is_never_closed(running: RunningNode) -> None:
    (admin,) = await people(running, ("admin", "Ana", None))
    _, body = await as_(running, admin, "POST", "/api/v1/tips", TIP)
    path = f"/api/v1/tips/{body['id']}"
    await as_(running, admin, "POST", path + "/claim")
    await as_(running, admin, "POST", path + "/outcome", {"outcome": "confirmed"})
    status, _ = await as_(running, admin, "POST", path + "/publish", {})
    assert status == 201
    status, body = await as_(running, admin, "POST", path + "/close", {"note": "done"})
    assert (status, body["errcode"]) == (409, "AVISA_TIP_PUBLISHED")
    assert "retract" in body["error"]
    status, shown = await as_(running, admin, "GET", path)
    assert shown["state"] == "published" and shown["history"][-1]["action"] == "publish"


def files_of(running: RunningNode) -> bytes:
    base = running.node.db.path
    return b"".join(
        path.read_bytes()
        for path in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm"))
        if path.exists()
    )


async def test_a_closed_tips_contact_leaves_the_files_at_once(running: RunningNode) -> None:
    (admin,) = await people(running, ("admin", "Ana", None))
    _, body = await as_(running, admin, "POST", "/api/v1/tips", {**TIP, "contact": FLOODER})
    (sealed,) = await running.node.db.read(
        lambda c: c.execute("SELECT contact FROM tips").fetchone()
    )
    assert sealed and bytes(sealed) in files_of(running)  # the control: it was written
    status, shown = await as_(running, admin, "POST", f"/api/v1/tips/{body['id']}/close")
    assert (status, shown["state"]) == (200, "closed")
    assert bytes(sealed) not in files_of(running)  # no purge, no restart: at once


async def test_nobody_sets_a_person_a_ruling_or_a_sender_from_outside(
    running: RunningNode,
) -> None:
    (admin,) = await people(running, ("admin", "Ana", None))
    _, body = await as_(running, admin, "POST", "/api/v1/tips", TIP)
    path = f"/api/v1/tips/{body['id']}"
    await as_(running, admin, "POST", path + "/claim")
    before = await running.node.db.read(
        lambda c: c.execute("SELECT * FROM tip_history ORDER BY n").fetchall()
    )
    hostile = [
        (path + "/outcome", {"outcome": "confirmed", "ruling": True}),
        (path + "/outcome", {"outcome": "confirmed", "person": "Somebody else"}),
        (path + "/outcome", {"outcome": "disputed"}),
        (path + "/claim", {"person": "Rosa"}),
        (path + "/close", {"changed": ["where"]}),
        ("/api/v1/tips", {**TIP, "reporter": "AAAAAAAAAAAA"}),
        ("/api/v1/tips", {**TIP, "source": "https://evil.example/cap"}),
        ("/api/v1/tips", {**TIP, "state": "confirmed"}),
    ]
    for target, payload in hostile:
        status, answer = await as_(running, admin, "POST", target, payload)
        assert (status, answer["errcode"]) == (400, "AVISA_BAD_REQUEST"), (target, payload)
    after = await running.node.db.read(
        lambda c: c.execute("SELECT * FROM tip_history ORDER BY n").fetchall()
    )
    assert after == before and await count(running) == 1


@pytest.mark.slow
async def test_figure_a_flood_against_a_full_desk(running: RunningNode) -> None:
    """What eviction costs at the default bound: 10,000 open tips from 2,000 senders
    (5 each), then 200 texts from one more number (cap raised): each one evicts."""
    rule(running, tips_per_sender_hour=1000, tips_per_sender_day=1000)
    bound = running.node.desk.section.max_open_tips
    now = running.node.clock()

    def fill(conn: sqlite3.Connection) -> None:
        for n in range(bound):
            tip = msgspec.convert(TIP, type=TipIn)
            tip_store.insert(conn, f"{n:026d}", tip, now, reporter=b"sender-%05d" % (n // 5),
                             contact=None, source_ref=None)  # fmt: skip

    await running.node.db.write(fill)
    desk = running.node.desk
    flood = msgspec.convert({**TIP, "channel": "sms"}, type=TipIn)
    started = time.perf_counter()
    for _ in range(200):
        await desk.submit(flood, contact=FLOODER)
    took = time.perf_counter() - started
    assert await count(running, "state = 'new'") == bound
    figure("desk_flood_full", open_tips=bound, submits=200, ms_per_submit=round(took * 5, 2))


def test_migration_0700_keeps_tips_history_and_tokens(tmp_path: Path) -> None:
    """A node upgraded in place: its tips, their history and its tokens come through
    the rebuild; the history still follows its tip; ``disputed`` is a state."""
    conn = db.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY)")
    for name, sql in db.MIGRATIONS[: [n for n, _ in db.MIGRATIONS].index("0700_desk_integrity")]:
        db.transaction(conn, lambda c, s=sql, n=name: _apply(c, s, n))
    conn.execute(
        "INSERT INTO tips (id, number, state, channel, received_at, codes, reporter, body)"
        " VALUES ('T1', 1, 'confirmed', 'web', 0, '[]', x'0102030405060708', x'7b7d')"
    )
    conn.execute("INSERT INTO tip_history (tip_id, event) VALUES ('T1', 'e1'), ('T1', 'e2')")
    conn.execute(
        "INSERT INTO tokens (hash, roles, label, created_at) VALUES (x'01', 'verifier', 'Rosa', 0),"
        " (x'02', 'verifier', '', 0)"
    )
    assert "0700_desk_integrity" in db.migrate(conn)
    assert conn.execute("SELECT id, state, reporter FROM tips").fetchall() == [
        ("T1", "confirmed", bytes.fromhex("0102030405060708"))
    ]
    assert conn.execute("SELECT event FROM tip_history ORDER BY n").fetchall() == [("e1",), ("e2",)]
    assert conn.execute("SELECT label, person FROM tokens ORDER BY hash").fetchall() == [
        ("Rosa", "Rosa"),
        ("", None),
    ]
    conn.execute("UPDATE tips SET state = 'disputed'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE tips SET state = 'undecided'")
    conn.execute("DELETE FROM tips")
    assert conn.execute("SELECT count(*) FROM tip_history").fetchone() == (0,)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def _apply(conn: sqlite3.Connection, sql: str, name: str) -> None:
    for statement in (part.strip() for part in sql.split(";")):
        if statement:
            conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))


async def test_a_feed_rewriting_a_tip_endlessly_is_stopped_quietly(running: RunningNode) -> None:
    desk = running.node.desk
    ref = "feed@example.org,ID-1"
    tip = msgspec.convert({**TIP, "channel": "cap"}, type=TipIn)
    tip_id = await desk.submit(tip, source_ref=ref, source="https://feed.example.org/cap")
    answers = [
        await desk.update_from_source(ref, msgspec.structs.replace(tip, text=f"version {n}"))
        for n in range(tip_store.MAX_HISTORY + 5)
    ]
    assert answers == [True] * tip_store.MAX_HISTORY + [False] * 5
    shown = await desk.get(tip_id)
    assert shown.text == f"version {tip_store.MAX_HISTORY - 1}"
    assert len(shown.history) == tip_store.MAX_HISTORY
    assert 'event="refused",detail="AVISA_TIP_BUSY"} 5' in "\n".join(desk.metrics_lines())
