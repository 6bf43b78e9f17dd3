"""The tips page over HTTP (issue 20 on the desk of issue 17): claim, outcome,
the two-person rule, publish with a prefilled draft; roles shown and refused."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.conftest import RunningNode
from tests.fedkit import members
from tests.webdesk.deskclient import DeskClient

HOSTILE = "<script>alert('tip')</script> ICE en Colonia"


def two_person(text: str) -> str:
    changed = re.sub(r"(?m)^confirmations = 1\b", "confirmations = 2", text)
    assert changed != text
    return changed


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    async with members(tmp_path, clock, ["ventura"], two_person) as started:
        yield started["ventura"]


PEOPLE = itertools.count()  # each desk_as is its own person


async def desk_as(node: RunningNode, *roles: str) -> DeskClient:
    token = await node.node.db.write(
        lambda conn: trust.add_token(
            conn, roles, f"{'-'.join(roles)} {next(PEOPLE)}", node.node.clock()
        )  # type: ignore[arg-type]
    )
    await node.node.reload_trust()
    client = DeskClient.open(node.url)
    response = await client.login(token)
    assert response.status == 303
    return client


async def submit(node: RunningNode, text: str = HOSTILE, reporter: bytes = b"reporter-1") -> str:
    tip = TipIn(
        text=text,
        where=Where(label="Colonia, Oxnard", geohash="9q4gch", codes=["fips:06111"]),
        channel="web",
    )
    return await node.node.desk.submit(tip, reporter=reporter)


def number_of(page: str) -> str:
    match = re.search(r'data-tip="(\d+)"', page)
    assert match
    return match.group(1)


async def test_claim_confirm_twice_and_publish(node: RunningNode) -> None:
    tip_id = await submit(node)
    await submit(node, "Dos camionetas blancas", reporter=b"reporter-2")
    intake = await desk_as(node, "intake")
    first = await desk_as(node, "verifier")
    second = await desk_as(node, "verifier")
    publisher = await desk_as(node, "publisher")
    try:
        _, page, _ = await intake.page("/desk/tips")
        assert "&lt;script&gt;alert(" in page and "<script>alert" not in page
        assert "2 reportes de 2 personas distintas" in page or "2 reports from 2" in page
        assert f"/desk/tips/{tip_id}/claim" not in page and "/publish" not in page
        csrf = await intake.csrf("/desk/tips")
        assert (await intake.post(f"/desk/tips/{tip_id}/claim", {"csrf": csrf}))[0] == 403

        _, page, _ = await first.page("/desk/tips")
        assert f"/desk/tips/{tip_id}/claim" in page and "/publish" not in page
        csrf = await first.csrf("/desk/tips")
        status, _, headers = await first.post(f"/desk/tips/{tip_id}/claim", {"csrf": csrf})
        assert status == 303 and headers["Location"] == "/desk/tips?done=1"
        form = {"csrf": csrf, "outcome": "confirmed", "note": "Lo vi"}
        assert (await first.post(f"/desk/tips/{tip_id}/outcome", form))[0] == 303
        assert (await node.node.desk.get(tip_id)).state == "confirmed"

        # one confirmation of two: the rule is shown, the server refuses
        _, page, _ = await publisher.page("/desk/tips?lang=en")
        assert "1 of 2 confirmations" in page and "Needs 1 more confirmation" in page
        assert f"/desk/tips/{tip_id}/publish" not in page
        pub_csrf = await publisher.csrf("/desk/tips")
        status, _, headers = await publisher.post(
            f"/desk/tips/{tip_id}/publish", {"csrf": pub_csrf, "expires_in": "4h"}
        )
        assert headers["Location"].endswith("error=AVISA_NEEDS_CONFIRMATION")

        # the same verifier again does not count twice
        _, page, _ = await first.page("/desk/tips?lang=en")
        assert "another verifier must too" in page
        csrf2 = await second.csrf("/desk/tips")
        form = {"csrf": csrf2, "outcome": "confirmed"}
        assert (await second.post(f"/desk/tips/{tip_id}/outcome", form))[0] == 303

        _, page, _ = await publisher.page("/desk/tips?lang=en")
        assert "2 of 2 confirmations" in page
        assert f"/desk/tips/{tip_id}/publish" in page
        assert "Actividad confirmada: Colonia, Oxnard" in page  # the desk's prefilled draft
        assert 'name="geohash" value="9q4gch"' in page
        form = {
            "csrf": pub_csrf,
            "headline_es": "ICE en el parque Colonia",
            "body_es": "Verificado por dos personas.",
            "headline_en": "ICE at Colonia park",
            "body_en": "Verified by two people.",
            "radius_m": "800",
            "expires_in": "2h",
        }
        status, _, headers = await publisher.post(f"/desk/tips/{tip_id}/publish", form)
        assert status == 303 and headers["Location"] == "/desk/tips?done=1", headers
        tip = await node.node.desk.get(tip_id)
        assert tip.state == "published" and tip.alert_id
        _, body = await node.call("GET", f"/api/v1/alerts/{tip.alert_id}")
        alert = body["alert"]
        assert alert["certainty"] == "confirmed" and alert["area"]["radius_m"] == 800
        assert alert["text"]["es"]["headline"] == "ICE en el parque Colonia"
        assert "script" not in str(alert)  # the reporter's words stay on the desk
    finally:
        for client in (intake, first, second, publisher):
            await client.close()


async def test_false_alarm_publishes_a_debunk_and_close_needs_a_verifier(
    node: RunningNode,
) -> None:
    tip_id = await submit(node, "Dicen que hay un retén en la 101")
    other = await submit(node, "Otro rumor", reporter=b"reporter-9")
    both = await desk_as(node, "verifier", "publisher")
    try:
        csrf = await both.csrf("/desk/tips")
        _, page, _ = await both.page("/desk/tips")
        assert f"/desk/tips/{tip_id}/outcome" not in page  # claim first
        assert (await both.post(f"/desk/tips/{tip_id}/claim", {"csrf": csrf}))[0] == 303
        form = {"csrf": csrf, "outcome": "false_alarm"}
        _, _, headers = await both.post(f"/desk/tips/{tip_id}/outcome", form)
        assert headers["Location"] == "/desk/tips?done=1", headers["Location"]
        _, page, _ = await both.page("/desk/tips?lang=en")
        assert "False rumor: Colonia, Oxnard" in page
        status, _, headers = await both.post(
            f"/desk/tips/{tip_id}/publish", {"csrf": csrf, "expires_in": "4h"}
        )
        assert headers["Location"] == "/desk/tips?done=1"
        tip = await node.node.desk.get(tip_id)
        _, body = await node.call("GET", f"/api/v1/alerts/{tip.alert_id}")
        assert body["alert"]["kind"] == "rumor" and body["alert"]["certainty"] == "false"
        assert (await both.post(f"/desk/tips/{other}/close", {"csrf": csrf}))[0] == 303
        assert (await node.node.desk.get(other)).state == "closed"
        _, page, _ = await both.page("/desk/tips")
        assert "data-tip" not in page  # neither is open any more
        _, page, _ = await both.page("/desk/tips?all=1")
        assert page.count("data-tip=") == 2
    finally:
        await both.close()


async def test_the_desk_opens_on_tips_or_alerts_by_role(node: RunningNode) -> None:
    await submit(node)
    verifier = await desk_as(node, "verifier")
    reviewer = await desk_as(node, "reviewer")
    try:
        status, page, _ = await verifier.page("/desk/")
        assert status == 200 and "data-tip=" in page and 'href="/desk/tips" aria-current' in page
        status, _, headers = await reviewer.page("/desk/")
        assert status == 303 and headers["Location"] == "/desk/alerts"
        _, page, _ = await reviewer.page("/desk/alerts")
        assert 'href="/desk/tips"' not in page  # no tips tab for a reviewer
        assert (await reviewer.page("/desk/tips"))[0] == 403
    finally:
        await verifier.close()
        await reviewer.close()


async def test_a_disputed_tip_is_shown_and_a_publisher_settles_it(node: RunningNode) -> None:
    tip_id = await submit(node, "Camionetas en la escuela")
    yes, no = await desk_as(node, "verifier"), await desk_as(node, "verifier")
    publisher = await desk_as(node, "publisher")
    try:
        for client, outcome in ((yes, "confirmed"), (no, "false_alarm")):
            csrf = await client.csrf("/desk/tips")
            if outcome == "confirmed":
                await client.post(f"/desk/tips/{tip_id}/claim", {"csrf": csrf})
            form = {"csrf": csrf, "outcome": outcome}
            assert (await client.post(f"/desk/tips/{tip_id}/outcome", form))[0] == 303
        assert (await node.node.desk.get(tip_id)).state == "disputed"
        _, page, _ = await publisher.page("/desk/tips?lang=es")
        assert "en disputa" in page and "Resolver la disputa" in page
        assert f"/desk/tips/{tip_id}/publish" not in page and "/close" not in page
        _, page, _ = await publisher.page("/desk/tips?lang=en")
        assert "Verifiers disagree" in page and "Settle the dispute" in page
        csrf = await publisher.csrf("/desk/tips")
        form = {"csrf": csrf, "outcome": "false_alarm", "note": "no había nada"}
        status, _, headers = await publisher.post(f"/desk/tips/{tip_id}/outcome", form)
        assert (status, headers["Location"]) == (303, "/desk/tips?done=1")
        settled = await node.node.desk.get(tip_id)
        assert (settled.state, settled.history[-1].ruling) == ("false_alarm", True)
        _, page, _ = await publisher.page("/desk/tips?lang=en")
        assert "(ruling)" in page and f"/desk/tips/{tip_id}/publish" in page
        # a publisher's outcome on a tip nobody disputes is refused
        other = await submit(node, "Otra cosa", reporter=b"reporter-5")
        await node.node.desk.claim(other, "ana")
        status, page, _ = await publisher.post(f"/desk/tips/{other}/outcome", form)
        assert status == 403 and "AVISA_FORBIDDEN" in page
        assert (await node.node.desk.get(other)).state == "claimed"
    finally:
        for client in (yes, no, publisher):
            await client.close()
