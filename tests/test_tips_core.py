"""The desk's pure rules, table-driven: states, two-person rule, clusters, text, drafts.

No event loop, no database: ``relay.core.tips`` and ``relay.core.tipdrafts`` take
every input, time included, as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import msgspec
import pytest

from relay.core import config as config_mod
from relay.core.errors import BadInput, ConfigError, Conflict
from relay.core.tipdrafts import TipDraft, prefill
from relay.core.tips import (
    ClusterInput,
    Tip,
    TipEvent,
    TipIn,
    Where,
    changed_fields,
    clean,
    clusters,
    confirmers,
    expired,
    publish_certainty,
    step,
    tip_in_decoder,
)
from relay.storage.catalogues import load
from tests.helpers import T0

# The shipped catalogues' words, as a node serving es and en passes them to prefill.
WORDS = [load(("es", "en")).words(language) for language in ("es", "en")]

DUP = "01JD0000000000000000000000"


def ev(action: str, actor: str = "ana", **fields: object) -> TipEvent:
    return TipEvent(at=T0, actor=actor, action=action, **fields)  # type: ignore[arg-type]


@dataclass
class Step:
    state: str
    event: TipEvent
    expect: str  # the next state, or the errcode of the Conflict


STEPS = [
    Step("new", ev("claim"), "claimed"),
    Step("claimed", ev("claim", "ben"), "claimed"),
    Step("confirmed", ev("claim", "ben"), "confirmed"),
    Step("new", ev("outcome", outcome="confirmed"), "AVISA_NOT_CLAIMED"),
    Step("claimed", ev("outcome", outcome="confirmed"), "confirmed"),
    Step("claimed", ev("outcome", outcome="false_alarm"), "false_alarm"),
    Step("claimed", ev("outcome", outcome="unable"), "unable"),
    Step("claimed", ev("outcome", outcome="duplicate", duplicate_of=DUP), "duplicate"),
    Step("confirmed", ev("outcome", "ben", outcome="confirmed"), "confirmed"),
    Step("confirmed", ev("outcome", "ben", outcome="false_alarm"), "false_alarm"),
    Step("unable", ev("outcome", outcome="confirmed"), "confirmed"),
    Step("new", ev("close"), "closed"),
    Step("confirmed", ev("close"), "closed"),
    Step("published", ev("close"), "AVISA_TIP_PUBLISHED"),
    Step("closed", ev("close"), "AVISA_TIP_CLOSED"),
    Step("published", ev("claim"), "AVISA_TIP_CLOSED"),
    Step("closed", ev("outcome", outcome="confirmed"), "AVISA_TIP_CLOSED"),
    Step("new", ev("expire", "desk"), "closed"),
    Step("false_alarm", ev("expire", "desk"), "closed"),
    Step("published", ev("expire", "desk"), "published"),
    Step("closed", ev("expire", "desk"), "closed"),
    Step("claimed", ev("update", "cap"), "claimed"),
    Step("confirmed", ev("update", "cap"), "confirmed"),
    Step("confirmed", ev("update", "cap", changed=["where"]), "claimed"),
    Step("false_alarm", ev("update", "cap", changed=["text"]), "claimed"),
    Step("disputed", ev("update", "cap", changed=["observed_at"]), "claimed"),
    Step("new", ev("update", "cap", changed=["where"]), "new"),
    Step("disputed", ev("claim", "ben"), "disputed"),
    Step("confirmed", ev("outcome", outcome="confirmed", ruling=True), "AVISA_TIP_STATE"),
    Step("closed", ev("update", "cap"), "AVISA_TIP_CLOSED"),
    Step("confirmed", ev("publish", alert_id="ventura/x"), "AVISA_TIP_STATE"),
]


@pytest.mark.parametrize("case", STEPS, ids=lambda c: f"{c.state}+{c.event.action}")
def test_state_machine(case: Step) -> None:
    if case.expect.startswith("AVISA_"):
        with pytest.raises(Conflict) as refused:
            step(case.state, case.event)  # type: ignore[arg-type]
        assert refused.value.errcode == case.expect
    else:
        assert step(case.state, case.event) == case.expect  # type: ignore[arg-type]


@dataclass
class Publish:
    name: str
    state: str
    history: list[TipEvent]
    confirmations: int
    expect: str


CONFIRMED_BY_ANA = [ev("claim"), ev("outcome", outcome="confirmed")]
PUBLISHES = [
    Publish("one confirmation is enough by default", "confirmed", CONFIRMED_BY_ANA, 1, "confirmed"),
    Publish("two-person rule: one is not enough", "confirmed", CONFIRMED_BY_ANA, 2,
            "AVISA_NEEDS_CONFIRMATION"),
    Publish("the same verifier twice is one", "confirmed",
            [*CONFIRMED_BY_ANA, ev("outcome", outcome="confirmed")], 2,
            "AVISA_NEEDS_CONFIRMATION"),
    Publish("two distinct verifiers", "confirmed",
            [*CONFIRMED_BY_ANA, ev("outcome", "ben", outcome="confirmed")], 2, "confirmed"),
    Publish("a verifier who changed their mind no longer counts", "confirmed",
            [*CONFIRMED_BY_ANA, ev("outcome", "ben", outcome="confirmed"),
             ev("outcome", outcome="unable"), ev("outcome", "cy", outcome="confirmed")], 3,
            "AVISA_NEEDS_CONFIRMATION"),
    Publish("false alarm publishes at once", "false_alarm",
            [ev("claim"), ev("outcome", outcome="false_alarm")], 3, "false"),
    Publish("unclaimed", "new", [], 1, "AVISA_NEEDS_CONFIRMATION"),
    Publish("claimed only", "claimed", [ev("claim")], 1, "AVISA_NEEDS_CONFIRMATION"),
    Publish("unable", "unable", [ev("claim"), ev("outcome", outcome="unable")], 1,
            "AVISA_NEEDS_CONFIRMATION"),
    Publish("already published", "published", CONFIRMED_BY_ANA, 1, "AVISA_TIP_CLOSED"),
]  # fmt: skip


@pytest.mark.parametrize("case", PUBLISHES, ids=lambda c: c.name)
def test_two_person_rule(case: Publish) -> None:
    if case.expect.startswith("AVISA_"):
        with pytest.raises(Conflict) as refused:
            publish_certainty(case.state, case.history, case.confirmations)  # type: ignore[arg-type]
        assert refused.value.errcode == case.expect
    else:
        got = publish_certainty(case.state, case.history, case.confirmations)  # type: ignore[arg-type]
        assert got == case.expect


def judged(state: str, *events: TipEvent) -> str:
    """The state after each event in turn, each seeing the history before it."""
    history: list[TipEvent] = []
    for event in events:
        state = step(state, event, history)  # type: ignore[arg-type]
        history.append(event)
    return state


def test_conflicting_outcomes_make_a_tip_disputed() -> None:
    ana_yes, ben_no = (
        ev("outcome", outcome="confirmed"),
        ev("outcome", "ben", outcome="false_alarm"),
    )
    assert judged("claimed", ana_yes, ben_no) == "disputed"
    assert judged("claimed", ben_no, ana_yes) == "disputed"
    # a third verifier's outcome does not settle it; the dissenter changing their mind does
    assert judged("claimed", ana_yes, ben_no, ev("outcome", "cy", outcome="confirmed")) == (
        "disputed"
    )
    assert judged("claimed", ana_yes, ben_no, ev("outcome", "ben", outcome="confirmed")) == (
        "confirmed"
    )
    history = [ev("claim"), ana_yes, ben_no]
    with pytest.raises(Conflict) as refused:
        publish_certainty("disputed", history, 1)
    assert refused.value.errcode == "AVISA_DISPUTED"


def test_a_ruling_settles_a_dispute_until_new_dissent() -> None:
    ana_yes, ben_no = (
        ev("outcome", outcome="confirmed"),
        ev("outcome", "ben", outcome="false_alarm"),
    )
    ruling = ev("outcome", "pia", outcome="confirmed", ruling=True)
    assert judged("claimed", ana_yes, ben_no, ruling) == "confirmed"
    history = [ana_yes, ben_no, ruling]
    assert publish_certainty("confirmed", history, 2) == "confirmed"  # ana and pia
    debunk = ev("outcome", "pia", outcome="false_alarm", ruling=True)
    assert judged("claimed", ana_yes, ben_no, debunk) == "false_alarm"
    later = ev("outcome", "cy", outcome="false_alarm")
    assert judged("claimed", ana_yes, ben_no, ruling, later) == "disputed"


def test_a_change_clears_the_confirmations() -> None:
    moved = ev("update", "source", changed=["where"])
    history = [
        ev("claim"),
        ev("outcome", outcome="confirmed"),
        ev("outcome", "ben", outcome="confirmed"),
    ]
    assert confirmers(history) == {"ana", "ben"}
    assert confirmers([*history, moved]) == frozenset()
    assert judged("confirmed", moved) == "claimed"
    with pytest.raises(Conflict):
        publish_certainty("claimed", [*history, moved], 1)
    again = [*history, moved, ev("outcome", "ben", outcome="confirmed")]
    assert confirmers(again) == {"ben"}
    # an update that changed nothing keeps what was judged
    assert confirmers([*history, ev("update", "source")]) == {"ana", "ben"}
    # and a dispute before the change is forgotten with it
    ben_no = ev("outcome", "ben", outcome="false_alarm")
    assert judged("claimed", ev("outcome", outcome="confirmed"), moved, ben_no) == "false_alarm"


def test_persons_not_credentials() -> None:
    rosa_token = ev("outcome", "token:aaaaaaaaaaaa", outcome="confirmed", person="Rosa")
    rosa_other = ev("outcome", "token:bbbbbbbbbbbb", outcome="confirmed", person="Rosa")
    rosa_matrix = ev("outcome", "@rosa:example.org", outcome="confirmed", person="Rosa")
    assert confirmers([rosa_token, rosa_other, rosa_matrix]) == {"Rosa"}
    with pytest.raises(Conflict) as refused:
        publish_certainty("confirmed", [rosa_token, rosa_other, rosa_matrix], 2)
    assert refused.value.errcode == "AVISA_NEEDS_CONFIRMATION"
    luis = ev("outcome", "@luis:example.org", outcome="confirmed")
    assert publish_certainty("confirmed", [rosa_token, rosa_matrix, luis], 2) == "confirmed"
    # Rosa against herself is a change of mind, not a dispute
    rosa_no = ev("outcome", "@rosa:example.org", outcome="false_alarm", person="Rosa")
    assert judged("claimed", rosa_token, rosa_no) == "false_alarm"


def test_changed_fields() -> None:
    tip = TipIn(text="ICE van", where=Where(label="Ventura", geohash="9q4g"))
    assert changed_fields(tip, tip) == []
    moved = msgspec.structs.replace(tip, where=Where(label="Downtown LA", geohash="9q5c"))
    assert changed_fields(tip, moved) == ["where"]
    reworded = msgspec.structs.replace(moved, text="ICE vans", observed_at=T0)
    assert changed_fields(tip, reworded) == ["text", "where", "observed_at"]


def test_confirmers_are_latest_outcomes() -> None:
    history = [ev("outcome", "a", outcome="confirmed"), ev("outcome", "b", outcome="unable")]
    assert confirmers(history) == {"a"}


def test_expiry_only_of_open_tips() -> None:
    ttl = timedelta(hours=12)
    assert expired("new", T0, T0 + ttl, ttl)
    assert not expired("new", T0, T0 + ttl - timedelta(seconds=1), ttl)
    assert expired("confirmed", T0, T0 + ttl, ttl)
    assert not expired("published", T0, T0 + ttl * 3, ttl)
    assert not expired("closed", T0, T0 + ttl * 3, ttl)


def ci(
    tip_id: str,
    minutes: int,
    geohash: str | None = None,
    codes: tuple[str, ...] = (),
    reporter: bytes | None = None,
    channel: str = "web",
) -> ClusterInput:
    at = T0 + timedelta(minutes=minutes)
    return ClusterInput(tip_id, minutes, at, geohash, codes, reporter, channel)


@dataclass
class Clustering:
    name: str
    tips: list[ClusterInput]
    groups: list[set[str]]
    counts: dict[str, tuple[int, int, list[str]]]  # cluster id -> tips, reporters, channels


CLUSTERINGS = [
    Clustering("same geohash prefix, within window",
               [ci("a", 0, "9q4gch", reporter=b"1"), ci("b", 30, "9q4gcz", reporter=b"2",
                                                          channel="sms")],
               [{"a", "b"}], {"a": (2, 2, ["sms", "web"])}),
    Clustering("prefix differs at precision",
               [ci("a", 0, "9q4gch"), ci("b", 30, "9q4fch")], [{"a"}, {"b"}], {}),
    Clustering("outside the window",
               [ci("a", 0, "9q4gch"), ci("b", 121, "9q4gch")], [{"a"}, {"b"}], {}),
    Clustering("shared area code, no geohash",
               [ci("a", 0, codes=("zip:93030",)), ci("b", 10, codes=("zip:93030", "fips:06111"))],
               [{"a", "b"}], {"a": (2, 2, ["web"])}),
    Clustering("same reporter twice is one reporter",
               [ci("a", 0, "9q4gch", reporter=b"1"), ci("b", 5, "9q4gch", reporter=b"1"),
                ci("c", 6, "9q4gch", reporter=b"2", channel="hotline")],
               [{"a", "b", "c"}], {"a": (3, 2, ["hotline", "web"])}),
    Clustering("chains: a~b and b~c, a and c 3h apart",
               [ci("a", 0, "9q4gch"), ci("b", 100, "9q4gch"), ci("c", 180, "9q4gch")],
               [{"a", "b", "c"}], {"a": (3, 3, ["web"])}),
    Clustering("short geohash never matches by prefix",
               [ci("a", 0, "9q4g"), ci("b", 1, "9q4g")], [{"a"}, {"b"}], {}),
]  # fmt: skip


@pytest.mark.parametrize("case", CLUSTERINGS, ids=lambda c: c.name)
def test_clusters(case: Clustering) -> None:
    result = clusters(case.tips, timedelta(hours=2), 5)
    groups: dict[str, set[str]] = {}
    for tip_id, cluster in result.items():
        groups.setdefault(cluster.id, set()).add(tip_id)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, case.groups))
    for cluster_id, (tips, reporters, channels) in case.counts.items():
        cluster = result[cluster_id]
        assert (cluster.tips, cluster.reporters, cluster.channels) == (tips, reporters, channels)


GOOD = b'{"text":"dos camionetas","where":{"label":"Colonia"}}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"text":"","where":{"label":"Colonia"}}',
        b'{"text":"x","where":{"label":""}}',
        b'{"text":"' + b"x" * 2001 + b'","where":{"label":"Colonia"}}',
        b'{"text":"x","where":{"label":"' + b"y" * 201 + b'"}}',
        b'{"text":"x","where":{"label":"a\\u0007b"}}',
        b'{"text":"x\\u0000","where":{"label":"a"}}',
        b'{"text":"x","where":{"label":"a\\nb"}}',
        b'{"text":"x","where":{"label":"a","geohash":"9q4gchxx"}}',
        b'{"text":"x","where":{"label":"a","geohash":"9q4a"}}',
        b'{"text":"x","where":{"label":"a","codes":["zip:1"]}}',
        b'{"text":"x","where":{"label":"a"},"channel":"fax"}',
        b'{"text":"x","where":{"label":"a"},"contact":"+18055550100"}',
        b'{"text":"x","where":{"label":"a"},"agencies":["ICE"]}',
        b'{"text":"x","where":{"label":"a"},"vehicles":"v\\u001b[31m"}',
        b'{"text":"x","where":{"label":"a"},"language":"espanol!"}',
        b'{"text":"x","where":{"label":"a"},"observed_at":"2026-11-23T12:00:00"}',
    ],
)
def test_tip_bounds_refuse(body: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        tip_in_decoder.decode(body)


def test_tip_accepts_newlines_in_text_and_strips_format_characters() -> None:
    tip = tip_in_decoder.decode(
        '{"text":"dos\\ncamionetas \u202eSIBI\u202c\u200b","where":{"label":"Col\u2066onia"},'
        '"vehicles":"van\ufeff","language":"es"}'.encode()
    )
    cleaned = clean(tip)
    assert cleaned.text == "dos\ncamionetas SIBI"
    assert cleaned.where.label == "Colonia"
    assert cleaned.vehicles == "van"
    kept = clean(TipIn(text="क्\u200dष", where=Where(label="x")))
    assert "\u200d" in kept.text
    with pytest.raises(BadInput):
        clean(TipIn(text="\u200b\u200b", where=Where(label="x")))


def test_built_tip_refuses_controls_too() -> None:
    with pytest.raises(ValueError, match="control"):
        TipIn(text="ok", where=Where(label="a\tb"))
    assert tip_in_decoder.decode(GOOD).channel == "hotline"


def shown(**changes: object) -> Tip:
    fields: dict[str, object] = dict(
        id=DUP, number=1, channel="web", received_at=T0, state="confirmed",
        text="Me llamo Rosa, mi número es 805", observed_at=T0 - timedelta(minutes=20),
        where=Where(label="Colonia park", geohash="9q4gch", codes=["fips:06111"]),
        agencies=["ice"], activity="checkpoint",
    )  # fmt: skip
    return Tip(**{**fields, **changes})  # type: ignore[arg-type]


def test_prefill_from_tip_never_copies_the_reporters_words() -> None:
    draft = prefill(shown(), TipDraft(), "confirmed", words=WORDS)
    assert (draft.kind, draft.certainty, draft.expires_in) == ("checkpoint", "confirmed", "4h")
    assert (draft.area.label, draft.area.geohash, draft.area.codes) == (
        "Colonia park",
        "9q4gch",
        ["fips:06111"],
    )
    assert draft.observed_at == T0 - timedelta(minutes=20)
    assert draft.agencies == ["ice"]
    assert set(draft.text) == {"es", "en"}
    assert all("Rosa" not in t.headline + t.body for t in draft.text.values())


def test_prefill_false_alarm_is_a_rumor_debunk() -> None:
    draft = prefill(shown(state="false_alarm"), TipDraft(), "false", words=WORDS)
    assert (draft.kind, draft.certainty) == ("rumor", "false")
    assert draft.text["en"].headline.startswith("False rumor")
    assert draft.text["es"].headline == "Rumor falso: Colonia park"
    with pytest.raises(BadInput):
        prefill(shown(), TipDraft(kind="sighting"), "false", words=WORDS)
    with pytest.raises(BadInput):
        prefill(shown(), TipDraft(certainty="confirmed"), "false", words=WORDS)
    with pytest.raises(BadInput):
        prefill(shown(), TipDraft(kind="rumor"), "confirmed", words=WORDS)


def test_prefill_needs_an_area_when_the_tip_has_no_geohash() -> None:
    tip = shown(where=Where(label="somewhere"))
    with pytest.raises(BadInput, match="geohash"):
        prefill(tip, TipDraft(), "confirmed", words=WORDS)
    area = {"label": "Colonia", "geohash": "9q4gch", "radius_m": 100, "codes": []}
    given = msgspec.convert({"area": area, "expires_in": "2h"}, TipDraft)
    draft = prefill(tip, given, "confirmed", words=WORDS)
    assert (draft.area.radius_m, draft.expires_in) == (100, "2h")


def test_desk_config_defaults_and_checks() -> None:
    desk = config_mod.parse(config_mod.render("ventura", "127.0.0.1:1", "")).desk
    assert (desk.tip_ttl, desk.retention, desk.cluster_window, desk.confirmations) == (
        "12h",
        "7d",
        "2h",
        1,
    )
    base = config_mod.render("ventura", "127.0.0.1:1", "").replace("[desk]\n", "[desk]\n#\n")
    for line, path in [
        ("confirmations = 0", "desk.confirmations"),
        ('retention = "1h"', "desk.retention"),
        ('tip_ttl = "0s"', "desk.tip_ttl"),
    ]:
        name = line.split(" ")[0]
        text = "\n".join(ln for ln in base.splitlines() if not ln.startswith(name + " ")).replace(
            "[desk]\n", f"[desk]\n{line}\n"
        )
        with pytest.raises(ConfigError) as refused:
            config_mod.parse(text)
        assert refused.value.path == path


def test_desk_matrix_config_is_checked() -> None:
    base = config_mod.render("ventura", "127.0.0.1:1", "")
    room = """
[desk.matrix]
homeserver = "http://127.0.0.1:8008"
user_id = "@desk:localhost"
room = "#desk:localhost"
verifiers = ["@ana:localhost"]
password_file = "desk.secret"
"""
    assert config_mod.parse(base + room).desk.matrix is not None
    for broken, path in [
        (room.replace('password_file = "desk.secret"', ""), "desk.matrix"),
        (room.replace('verifiers = ["@ana:localhost"]', ""), "desk.matrix.verifiers"),
        (room.replace("desk.secret", "../desk.secret"), "desk.matrix.password_file"),
        (room.replace("http://127.0.0.1:8008", "ftp://x"), "desk.matrix.homeserver"),
        (room.replace("@ana:localhost", "ana"), "desk.matrix.verifiers[0]"),
    ]:
        with pytest.raises(ConfigError) as refused:
            config_mod.parse(base + broken)
        assert refused.value.path == path
    bridge = """
[[bridges.matrix]]
homeserver = "http://127.0.0.1:8008"
user_id = "@desk:localhost"
password_file = "m.secret"
[[bridges.matrix.routes]]
room = "#alerts:localhost"
"""
    with pytest.raises(ConfigError) as refused:
        config_mod.parse(base + room + bridge)
    assert refused.value.path == "desk.matrix.user_id"
