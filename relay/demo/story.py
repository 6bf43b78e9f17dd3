"""The scenario ``avisa demo`` narrates, each step checked against the nodes' APIs.

0. A resident reports what they saw on Ventura's public form (``/report``);
   Ventura's desk sees the tip, a verifier claims it, goes to look and
   confirms it, a publisher signs the alert, and Los Angeles shows it. The
   tip itself never leaves Ventura.
1. Ventura publishes a confirmed sighting: Los Angeles accepts it (Ventura
   speaks for its own county), relays it to Orange with its endorsement, and
   Orange, which does not know Ventura, accepts it because Los Angeles vouched.
   When Kannel is installed, Ventura runs a text line: a resident texts
   ``ALERTA`` first, and gets the sighting and then its withdrawal by text.
2. Los Angeles reports an unconfirmed sighting: Ventura shows it, Orange holds
   it for review (its policy), and Orange's reviewer then accepts it.
3. Los Angeles debunks a rumor (certainty ``false``): it spreads as fast as an
   alert.
   Ventura's CAP 1.2 / Atom feed lists it for alert hubs and newsrooms.
4. Ventura cancels its sighting: it is withdrawn everywhere, and its CAP feed
   now carries the Cancel.
5. Los Angeles publishes about Santa Ana, outside its own county: Ventura holds
   it for review and Orange rejects it, each by its own policy, with a reason.
6. The coalition vouches for its members once: Ventura and Los Angeles, the
   maintainers, sign version 1 of the trust list ``socal`` naming the three
   networks, Los Angeles publishes it, Orange subscribes with the fingerprint
   read aloud once (Ventura too, as members do); Ventura's next alert is
   accepted at Orange on Ventura's own word, trusted through list socal v1
   (``relay.demo.coalition``).

A step passes when every node shows what the narration says within a
deadline; the demo prints how long each took. With ``--matrix`` Ventura's
alerts also go to a room on a local Synapse, read back here as a member would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bridges.cap.parse import CapMessage, Limits, parse_document, read_cap
from relay.cli.words import plural
from relay.demo.matrix import MatrixRoom
from relay.demo.run import DemoNode, Federation3, avisa_command
from relay.demo.sms import SHORT_CODE, TextLine
from relay.runtime.clock import system_clock

STEP_DEADLINE_S = 20.0


class StepFailed(Exception):
    pass


def draft(kind: str, certainty: str, label: str, geohash: str, code: str,
          es: str, en: str, body_es: str = "", body_en: str = "") -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "certainty": certainty,
        "area": {"label": label, "geohash": geohash, "radius_m": 800, "codes": [code]},
        "agencies": ["ice"],
        "text": {"es": {"headline": es, "body": body_es}, "en": {"headline": en, "body": body_en}},
        "expires_in": "4h",
    }


class Story:
    def __init__(self, federation: Federation3, http: aiohttp.ClientSession,
                 room: MatrixRoom | None, line: TextLine | None = None) -> None:  # fmt: skip
        self.federation = federation
        self.http = http
        self.room = room
        self.line = line
        self.passed = 0
        self.failed = 0

    async def call(self, node: DemoNode, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {node.token}"}
        async with self.http.request(method, node.url + path, json=body, headers=headers) as r:
            reply = await r.json(content_type=None)
            if r.status >= 400:
                raise StepFailed(f"{node.name}: {reply.get('errcode')}: {reply.get('error')}")
            return reply

    async def publish(self, node: DemoNode, body: dict[str, Any]) -> tuple[str, float]:
        reply = await self.call(node, "POST", "/api/v1/alerts", body)
        return str(reply["id"]), system_clock.monotonic()

    async def until(self, check: Callable[[], Awaitable[bool]], what: str, since: float) -> float:
        deadline = system_clock.monotonic() + STEP_DEADLINE_S
        while not await check():
            if system_clock.monotonic() > deadline:
                raise StepFailed(f"not seen within {STEP_DEADLINE_S:.0f} s: {what}")
            await system_clock.sleep(0.01)
        return (system_clock.monotonic() - since) * 1000

    async def state(self, node: DemoNode, alert_id: str) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {node.token}"}
        async with self.http.get(f"{node.url}/api/v1/alerts/{alert_id}", headers=headers) as r:
            return dict(await r.json()) if r.status == 200 else None

    async def shows(self, node: DemoNode, alert_id: str, state: str, since: float) -> float:
        async def check() -> bool:
            shown = await self.state(node, alert_id)
            return shown is not None and shown["state"] == state

        return await self.until(check, f"{alert_id} {state} at {node.name}", since)

    async def decided(self, node: DemoNode, alert_id: str, reason: str, since: float) -> float:
        async def check() -> bool:
            reply = await self.call(node, "GET", "/api/v1/decisions?limit=200")
            return any(
                d["alert_id"] == alert_id and d["reason"] == reason for d in reply["decisions"]
            )

        return await self.until(check, f"{reason} for {alert_id} at {node.name}", since)

    async def cap_entry(self, node: DemoNode, alert_id: str) -> CapMessage:
        """The CAP message the node's Atom feed lists for ``alert_id``, read back as a hub would."""
        headers = {"Authorization": f"Bearer {node.token}"}
        async with self.http.get(f"{node.url}/cap/v1/feed.atom", headers=headers) as r:
            feed = await r.read()
        if alert_id.encode() not in feed:
            raise StepFailed(f"{alert_id} is not in {node.name}'s CAP feed")
        async with self.http.get(f"{node.url}/cap/v1/alerts/{alert_id}.xml", headers=headers) as r:
            message = await r.read()
        return read_cap(parse_document(message, Limits()))

    async def on_map(self, node: DemoNode, alert_id: str) -> tuple[str, str]:
        """Where ``node``'s web desk puts ``alert_id`` on its map, read as a browser would:
        sign in with the node's token, then the alerts page's marker (lat, lon)."""
        ulid = alert_id.split("/", 1)[1]
        jar = aiohttp.CookieJar(unsafe=True)  # the desk's cookie, on a 127.0.0.1 address
        async with aiohttp.ClientSession(cookie_jar=jar) as desk:
            login = {"token": node.token}
            async with desk.post(f"{node.url}/desk/login", data=login) as r:
                if r.status != 200:
                    raise StepFailed(f"{node.name}'s web desk refused its own token ({r.status})")
            async with desk.get(f"{node.url}/desk/alerts") as r:
                page = await r.text()
        marker = re.search(
            rf'id="alert-{ulid}"[^>]*data-lat="([-0-9.]+)" data-lon="([-0-9.]+)"', page
        )
        if marker is None:
            raise StepFailed(f"{alert_id} is not on {node.name}'s web desk map")
        return marker.group(1), marker.group(2)

    async def step(self, title: str, play: Callable[[], Awaitable[None]]) -> None:
        print(f"\n▶ {title}")
        try:
            await play()
        except (StepFailed, aiohttp.ClientError) as exc:
            self.failed += 1
            print(f"  ✗ {exc}")
        else:
            self.passed += 1


class Scenario:
    """The steps; each method is one, narrated and checked (the last: ``Coalition``)."""

    def __init__(self, story: Story) -> None:
        self.story = story
        self.ventura, self.la, self.orange = (
            story.federation[name] for name in ("ventura", "la", "orange")
        )
        self.sighting_id = ""

    async def run(self) -> None:
        story = self.story
        await story.step("A resident's report becomes a verified alert at Ventura's desk", self.tip)
        if story.line is not None:
            await story.step(
                f"A resident texts ALERTA to Ventura's line ({SHORT_CODE})", self.texts
            )
        await story.step("A confirmed sighting in Oxnard, published by Ventura", self.sighting)
        await story.step("An unconfirmed report from Los Angeles", self.unconfirmed)
        await story.step("Los Angeles debunks a rumor (certainty: false)", self.rumor)
        await story.step("Ventura withdraws its sighting", self.cancel)
        await story.step("Los Angeles reports from Santa Ana, outside its own county", self.outside)
        from relay.demo.coalition import Coalition  # it builds on this module's Story

        await story.step(
            "The coalition vouches for its members once: a trust list, socal",
            Coalition(story).play,
        )

    async def tip(self) -> None:
        story, ventura, la = self.story, self.ventura, self.la
        form = {
            "text": "Dos camionetas blancas y agentes con chalecos en la calle Cooper",
            "place": "Calle Cooper y 5th, Oxnard",
            "zip": "93030",
            "when": "15",
            "agency": "ice",
        }
        titles = []
        for browser in ("es-MX,es;q=0.9", "en-US,en;q=0.9"):
            headers = {"Accept-Language": browser}
            async with story.http.get(f"{ventura.url}/report", headers=headers) as reply:
                found = re.search(r"<h1>([^<]+)</h1>", await reply.text())
            titles.append(found.group(1) if found else "?")
        if "?" in titles or titles[0] == titles[1]:
            raise StepFailed(f"the form did not follow the browser's language: {titles}")
        print(
            f"  ✓ the form speaks the browser's language (words from the catalogues in"
            f" relay/locale; one .po file adds another): «{titles[0]}» / «{titles[1]}»"
        )
        async with story.http.get(f"{ventura.url}/report?lang=es") as reply:
            signed = re.search(r'name="t" value="([^"]+)"', await reply.text())
        form["t"] = signed.group(1) if signed else ""  # the form's token, as a browser sends it
        async with story.http.post(f"{ventura.url}/report?lang=es", data=form) as reply:
            receipt = await reply.text()
            if reply.status != 200 or "Gracias" not in receipt:
                raise StepFailed(f"the public form answered {reply.status}")
        print("  a resident sent it on ventura's public form /report (the receipt shows no id)")
        listed = await story.call(ventura, "GET", "/api/v1/tips?cluster=true")
        tip = listed["tips"][0]
        number = tip["number"]
        print(f"  ✓ ventura's desk sees tip #{number} ({tip['channel']}): {tip['where']['label']}")
        await story.call(ventura, "POST", f"/api/v1/tips/{number}/claim", {"note": "Voy"})
        print(f"  ✓ a verifier claims #{number} and goes to look")
        await story.call(
            ventura,
            "POST",
            f"/api/v1/tips/{number}/outcome",
            {"outcome": "confirmed", "note": "Vi dos camionetas y cuatro agentes"},
        )
        print("  ✓ they confirm it on site")
        path = f"/api/v1/tips/{number}"
        preview = await story.call(ventura, "POST", f"{path}/draft", {"expires_in": "3h"})
        area = preview["draft"]["area"]
        if preview["warnings"] or area["codes"] != ["fips:06111"]:
            raise StepFailed(f"the suggested place is {area['codes']}: {preview['warnings']}")
        print(
            f"  ✓ the desk suggests the place from ZIP 93030 alone: geohash {area['geohash']},"
            f" {' '.join(area['codes'])} (Ventura County); no warning: peers trust ventura there"
        )
        t0 = system_clock.monotonic()
        published = await story.call(ventura, "POST", f"{path}/publish", {"expires_in": "3h"})
        alert_id = published["id"]
        print(f"  ✓ a publisher takes it and signs {alert_id} (text prefilled in es and en)")
        ms = await story.decided(la, alert_id, "authoritative", t0)
        print(
            f"  ✓ la accepted it after {ms:.0f} ms (authoritative: inside ventura's fips:06111),"
            " not held; the tip itself stayed at ventura"
        )
        await story.shows(la, alert_id, "active", t0)

    async def texts(self) -> None:
        line = self.story.line
        assert line is not None
        await line.text("ALERTA")
        (welcome,) = await line.received(1, STEP_DEADLINE_S)
        print(f"  ✓ the resident's phone got: «{welcome.text}»")

    async def _texted(self, count: int, t0: float) -> None:
        """The resident's phone got text number ``count``: shown with its delay."""
        line = self.story.line
        if line is None:
            return
        try:
            latest = (await line.received(count, STEP_DEADLINE_S))[-1]
        except TimeoutError:
            raise StepFailed("the resident's phone got no text") from None
        ms = (system_clock.monotonic() - t0) * 1000
        coding = "UCS-2" if latest.coding == "ucs-2" else "GSM-7"
        print(
            f"  ✓ the resident's phone got it within {ms:.0f} ms (fakesmsc reads once a second;"
            f" {coding}, {plural(latest.parts, 'part')}): «{latest.text}»"
        )

    async def sighting(self) -> None:
        story, ventura, la, orange = self.story, self.ventura, self.la, self.orange
        alert_id, t0 = await story.publish(
            ventura,
            draft(
                "sighting",
                "confirmed",
                "Colonia, Oxnard",
                "9q5681",
                "fips:06111",
                "ICE confirmado cerca de la escuela Ramona",
                "ICE confirmed near Ramona school",
                "Verificado por el equipo de respuesta rápida.",
                "Verified by the rapid-response team.",
            ),
        )
        self.sighting_id = alert_id
        print(f"  ventura signed {alert_id}")
        ms = await story.shows(la, alert_id, "active", t0)
        print(f"  ✓ la shows it after {ms:.0f} ms (ventura speaks for fips:06111)")
        ms = await story.shows(orange, alert_id, "active", t0)
        shown = await story.state(orange, alert_id)
        assert shown is not None
        if shown["endorsed_by"] != ["la"]:
            raise StepFailed(f"orange shows it endorsed by {shown['endorsed_by']}, not la")
        await story.decided(orange, alert_id, "endorsed", t0)
        print(
            f"  ✓ orange shows it after {ms:.0f} ms: it does not know ventura, but la endorsed it"
        )
        lat, lon = await story.on_map(la, alert_id)
        where = f"{float(lat):.4f}, {float(lon):.4f}"
        print(f"  ✓ on la's web desk map (/desk/alerts): a marker at {where}")
        await self._texted(2, t0)
        cap = await story.cap_entry(ventura, alert_id)
        info = cap.infos[0]
        print(
            f"  ✓ in ventura's CAP feed (/cap/v1/feed.atom): {cap.msg_type}, sent"
            f" {cap.sent.isoformat()}, certainty {info.certainty}, «{info.headline}»"
        )
        if (room := story.room) is not None:
            ms = await story.until(lambda: room.has(alert_id), "the Matrix room", t0)
            print(f"  ✓ posted in {room.alias} after {ms:.0f} ms:")
            for line in room.body(alert_id).splitlines()[:4]:
                print(f"      │ {line}")

    async def unconfirmed(self) -> None:
        story, ventura, la, orange = self.story, self.ventura, self.la, self.orange
        alert_id, t0 = await story.publish(
            la,
            draft(
                "sighting",
                "unconfirmed",
                "Boyle Heights",
                "9q5cw5",
                "fips:06037",
                "Posible operativo en Whittier Blvd, sin confirmar",
                "Possible operation on Whittier Blvd, unconfirmed",
            ),
        )
        ms = await story.shows(ventura, alert_id, "active", t0)
        print(f"  ✓ ventura shows it after {ms:.0f} ms")
        ms = await story.shows(orange, alert_id, "held", t0)
        await story.decided(orange, alert_id, "review_certainty", t0)
        print(f"  ✓ orange holds it for review after {ms:.0f} ms (hold_certainties: unconfirmed)")
        await story.call(orange, "POST", f"/api/v1/held/{alert_id}/accept")
        await story.shows(orange, alert_id, "active", t0)
        print("  ✓ orange's reviewer accepts it: now shown there too")

    async def rumor(self) -> None:
        story, ventura, la, orange = self.story, self.ventura, self.la, self.orange
        alert_id, t0 = await story.publish(
            la,
            draft(
                "rumor",
                "false",
                "Whittier Blvd checkpoint",
                "9q5cw5",
                "fips:06037",
                "FALSO: no hay retén en Whittier Blvd",
                "FALSE: there is no checkpoint on Whittier",
                "Verificado en el lugar: es un rumor.",
                "Checked on site: it is a rumor.",
            ),
        )
        shown = [await story.shows(node, alert_id, "active", t0) for node in (ventura, orange)]
        print(
            f"  ✓ the debunk reached ventura and orange after {max(shown):.0f} ms,"
            " as fast as an alert"
        )

    async def cancel(self) -> None:
        story, ventura, la, orange = self.story, self.ventura, self.la, self.orange
        t0 = system_clock.monotonic()
        reply = await story.call(
            ventura,
            "POST",
            f"/api/v1/alerts/{self.sighting_id}/cancel",
            {
                "text": {
                    "es": {"headline": "Retirada: ya se fueron", "body": ""},
                    "en": {"headline": "Withdrawn: they left", "body": ""},
                }
            },
        )
        for node in (la, orange):
            ms = await story.shows(node, self.sighting_id, "cancelled", t0)
            print(f"  ✓ withdrawn at {node.name} after {ms:.0f} ms")
        cap = await story.cap_entry(ventura, reply["id"])
        print(
            f"  ✓ ventura's CAP feed carries the {cap.msg_type} of {cap.references[0].identifier}"
        )
        await self._texted(3, t0)
        if (room := story.room) is not None:
            await story.until(lambda: room.edited(self.sighting_id), "the room edit", t0)
            print(f"  ✓ the message in {room.alias} was edited to say it was withdrawn")

    async def outside(self) -> None:
        story, ventura, la, orange = self.story, self.ventura, self.la, self.orange
        alert_id, t0 = await story.publish(
            la,
            draft(
                "checkpoint",
                "confirmed",
                "Santa Ana",
                "9mupvz",
                "fips:06059",
                "Retén en Santa Ana",
                "Checkpoint in Santa Ana",
            ),
        )
        ms = await story.decided(orange, alert_id, "outside_speaks_for", t0)
        print(
            f"  ✓ orange rejected it after {ms:.0f} ms: outside_speaks_for"
            " (la speaks for fips:06037 only; orange's policy rejects such alerts)"
        )
        await story.shows(ventura, alert_id, "held", t0)
        print("  ✓ ventura holds it for its reviewers instead: each node's policy is its own")


async def play(federation: Federation3, *, scenario_only: bool, matrix: bool) -> int:
    print("Avisa demo: three regional networks on this machine.\n")
    print("Setting up (what each coalition's operator would type):")
    federation.setup(print)
    line = TextLine.configure(federation)
    room = await MatrixRoom.open(federation) if matrix else None
    try:
        with federation.running():
            print("\nAll three nodes are running.")
            if line is not None:
                await line.start()
            async with aiohttp.ClientSession() as http:
                story = Story(federation, http, room, line)
                await Scenario(story).run()
            print(
                f"\n{story.passed} of {story.passed + story.failed} steps happened as narrated."
                if not story.failed
                else f"\n{plural(story.failed, 'step')} FAILED."
            )
            if scenario_only:
                return 0 if not story.failed else 1
            _print_access(federation, room)
            await asyncio.Event().wait()
            return 0
    finally:
        if line is not None:
            line.stop()
        if room is not None:
            await room.close()


def _print_access(federation: Federation3, room: MatrixRoom | None) -> None:
    avisa = avisa_command()
    print("\nThe nodes keep running; try the API or the CLI against them:")
    for node in federation.nodes.values():
        print(f"  {node.name:8} {node.url}   token {node.token}")
        print(f"           {avisa} alert list --data {node.data}")
    print("\nThe web desk of each node, in a browser (sign in with its token above):")
    for node in federation.nodes.values():
        print(f"  {node.name:8} {node.url}/desk/   (tips, alerts on a map, held, peers)")
    print(f"  a resident's form: {federation.nodes['ventura'].url}/report")
    orange = federation.nodes["orange"].data
    print(f"  how orange trusts ventura (through list socal): {avisa} trust list --data {orange}")
    if avisa != "avisa":
        activate = Path(avisa).parent / "activate"
        hint = f" (or 'source {activate}' first, then type avisa)" if activate.exists() else ""
        print(f"  avisa is not on your PATH: type {avisa}{hint}")
    if room is not None:
        print(room.how_to_read())
    print("\nCtrl-C stops every node.")
