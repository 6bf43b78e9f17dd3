"""The Matrix messages, the desk room, the CAP/Atom feed and the volunteer CLI say only
catalogued words (issue 31): with the pseudo-locale every fixed word is ``⟦…⟧``, and a
small French catalogue shows up with no change to Python."""

from __future__ import annotations

import html
import re
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from lxml import etree

from bridges.cap.export import CapExport
from bridges.cap.render import ATOM_NS, CAP_NS, render_alert
from bridges.matrix.deskroom import DeskRoom, RoomWords, tip_content
from bridges.render import Rendered, Signers, Status, format_time, render
from relay.cli import tip as cli_tip
from relay.core.config import parse
from relay.core.config import render as render_config
from relay.core.model import Alert, Text
from relay.core.tips import Cluster, Tip, TipEvent, Where
from relay.storage import catalogues
from relay.storage.catalogues import Catalogues
from tests.helpers import T0, key, make_alert, raw_envelope
from tests.locale_kit import PSEUDO, unmarked, write_catalogue, write_pseudo

SIGNERS = Signers("ventura", ("santa-barbara",))
TEXT = Text(
    headline="Two vans at Colonia park", body="Seen by two volunteers", instruction="Stay in"
)
NETWORKS = ("ventura", "santa-barbara")
_TAG = re.compile(r"<[^>]+>")


@pytest.fixture
def pseudo(tmp_path: Path) -> Catalogues:
    write_pseudo(tmp_path)
    return catalogues.load([PSEUDO], tmp_path)


def _alert(**changes: Any) -> Alert:
    alert = make_alert(**changes)
    return msgspec.structs.replace(alert, text={"en": TEXT}, agencies=["ice", "police", "unknown"])


def _allowed(alert: Alert) -> list[str]:
    """The alert's own words, network names, times and agencies said as they are."""
    text = alert.text["en"]
    times = [format_time(moment, UTC) for moment in (alert.observed_at, alert.expires_at)]
    return [text.headline, text.body, text.instruction or "", alert.area.label, *NETWORKS,
            *times, "ICE"]  # fmt: skip


def _words_of(rendered: Rendered) -> str:
    return rendered.plain + "\n" + html.unescape(_TAG.sub(" ", rendered.html))


@pytest.mark.parametrize(
    ("status", "changes"),
    [
        ("active", {}),
        ("active", {"msg_type": "update", "references": ["ventura/01JD000000000000000000000A"]}),
        ("active", {"kind": "rumor", "certainty": "false"}),
        ("active", {"certainty": "unconfirmed", "kind": "workplace"}),
        ("cancelled", {"msg_type": "cancel", "references": ["ventura/01JD000000000000000000000A"]}),
        ("expired", {"certainty": "false"}),
        ("held", {}),
        ("superseded", {}),
    ],
)
def test_a_matrix_message_says_only_catalogued_words(
    pseudo: Catalogues, status: Status, changes: dict[str, Any]
) -> None:
    alert = _alert(**changes)
    replaced = _alert() if status == "cancelled" else None
    out = render(alert, signers=SIGNERS, languages=["en"], now=T0, catalogues=pseudo,
                 status=status, replaced=replaced)  # fmt: skip
    assert unmarked(_words_of(out), _allowed(alert)) == []
    assert "⟦" in out.plain and "⟦" in out.html


def test_cap_and_atom_say_only_catalogued_words(pseudo: Catalogues) -> None:
    node = _CapNode(pseudo)
    cancel = _alert(msg_type="cancel", references=["ventura/01JD000000000000000000000A"])
    alerts = [_alert(), _alert(kind="rumor", certainty="false"), cancel]
    feed = etree.fromstring(CapExport(node).render_feed(alerts, "https://x", T0).body)
    atom = f"{{{ATOM_NS}}}"
    title = feed.findtext(f"{atom}title") or ""
    assert title.startswith("⟦") and unmarked(title, NETWORKS) == []
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == PSEUDO
    for entry in feed.iter(f"{atom}entry"):
        said = (
            (entry.findtext(f"{atom}title") or "") + " " + (entry.findtext(f"{atom}summary") or "")
        )
        assert unmarked(said, [TEXT.headline, TEXT.body]) == []
    message = etree.fromstring(render_alert(alerts[0], raw_envelope(alerts[0], key(1)),
                                            catalogues=pseudo))  # fmt: skip
    event = message.findtext(f"{{{CAP_NS}}}info/{{{CAP_NS}}}event") or ""
    assert event.startswith("⟦") and unmarked(event) == []


class _CapNode:
    """What ``CapExport.render_feed`` reads of a node: its config and its words."""

    def __init__(self, words: Catalogues) -> None:
        self.config = parse(render_config("ventura", "127.0.0.1:8470", ""))
        self.catalogues = words


def _tip() -> Tip:
    return Tip(
        id="01JD0000000000000000000TIP", number=7, channel="sms", received_at=T0,
        state="disputed", text="Dos camionetas", where=Where(label="Colonia park"),
        observed_at=T0 - timedelta(minutes=5), activity="checkpoint", agencies=["ice"],
        vehicles="two vans", size="4", confirmations=1,
        history=[TipEvent(at=T0, actor="@rosa:x", action="outcome", outcome="confirmed",
                          note="vi dos", person="Rosa", ruling=True)],
        cluster=Cluster(id="01JD0000000000000000000TIP", tips=3, reporters=2, channels=["sms"]),
    )  # fmt: skip


TIP_VALUES = ["01JD0000000000000000000TIP", "Dos camionetas", "Colonia park", "two vans",
              "checkpoint", "disputed", "sms", "outcome", "confirmed", "vi dos", "Rosa",
              "@rosa:x", "ice", "#7"]  # fmt: skip


def test_the_desk_room_says_only_catalogued_words(pseudo: Catalogues) -> None:
    content = tip_content(_tip(), RoomWords(pseudo))
    said = content["body"] + " " + html.unescape(_TAG.sub(" ", content["formatted_body"]))
    assert unmarked(said, [*TIP_VALUES, "!claim"]) == []
    assert "⟦" in content["body"]


def test_the_volunteer_cli_says_only_catalogued_words(
    pseudo: Catalogues, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = msgspec.to_builtins(_tip())
    cli_tip._show(shown, False, pseudo.words())
    printed = capsys.readouterr().out
    assert unmarked(printed, TIP_VALUES) == []
    assert printed.count("⟦") >= 10


def test_a_french_catalogue_shows_in_a_matrix_message(tmp_path: Path) -> None:
    write_catalogue(tmp_path, "fr", {
        "matrix.certainty.confirmed": "CONFIRMÉ",
        "kind.sighting": "Observation",
        "matrix.area": "Zone : %(area)s",
        "matrix.signed_by": "Signé par : %(network)s (origine)",
    })  # fmt: skip
    french = catalogues.load(["fr", "en"], tmp_path)
    alert = msgspec.structs.replace(
        make_alert(), text={"fr": Text(headline="ICE au parc", body=""), "de": TEXT}
    )
    out = render(alert, signers=SIGNERS, languages=["fr", "de"], now=T0, catalogues=french)
    fr, de = out.plain.split("\n\n———\n\n")
    assert fr.startswith("🔴 CONFIRMÉ · Observation\nICE au parc")
    assert "📍 Zone : Colonia, Oxnard" in fr and "Signé par : ventura (origine)" in fr
    assert "Seen: " in fr  # not in French yet: English, the last fallback
    assert de.startswith("🔴 CONFIRMÉ · Observation")  # not served: the node's first


# Commands are typed alike in every language.
COMMANDS = ("!claim", "!publish", "!confirmed", "!false", "!unable", "!duplicate", "!close")


class _Desk:
    """The desk as the room's replies need it: a publish that signs alert ``ventura/1``."""

    async def publish(self, number: str, sender: str, draft: object) -> tuple[str, None]:
        return "ventura/1", None

    async def claim(self, number: str, sender: str, note: str | None) -> None:
        return None


async def test_the_desk_rooms_replies_say_only_catalogued_words(pseudo: Catalogues) -> None:
    room = DeskRoom.__new__(DeskRoom)  # no homeserver: only what a reply reads
    room.say, room.desk = RoomWords(pseudo), _Desk()  # type: ignore[assignment]
    room.verifiers, room.publishers = frozenset({"@rosa:x"}), frozenset({"@olga:x"})
    replies = [
        await room._act("@rosa:x", "!hola"),
        await room._act("@rosa:x", "!publish 3"),
        await room._act("@olga:x", "!publish 3"),
        await room._act("@rosa:x", "!claim 3"),
        await room._act("@rosa:x", "!duplicate 3 x"),
    ]
    for reply in replies:
        assert "⟦" in reply
        assert unmarked(reply, ["@rosa:x", "@olga:x", "ventura/1", *COMMANDS]) == []
