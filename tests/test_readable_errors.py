"""Issue 21: every decoder error a person sees is a sentence naming the setting, what it
accepts and an example; a cancel is never in force; updates carry and follow."""

from __future__ import annotations

from typing import Any

import pytest

from relay.core import drafts, readable
from relay.core.config import parse as parse_config
from relay.core.config import render
from relay.core.errors import ConfigError
from relay.storage.catalogues import load
from tests.conftest import RunningNode
from tests.test_api import DRAFT, path

DURATION = (
    "expected a duration: a whole number and s, m, h or d (no spaces), for example 90m, 4h or 7d"
)

ENGLISH = load(["en"]).words("en")  # the API says its warnings in English


def _config(**policy: str) -> str:
    text = render("ventura", "127.0.0.1:8470", "http://127.0.0.1:8470")
    for name, value in policy.items():
        text = text.replace(f"\n{name} = ", f"\n{name} = {value}  # ", 1)
    return text


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"max_age": '"7 days"'}, f"policy.max_age: got '7 days'; {DURATION}"),
        ({"on_fail": '"hodl"'}, "policy.on_fail: got 'hodl'; expected one of hold, reject"),
        (
            {"min_endorsements": "9"},
            "policy.min_endorsements: got 9; expected a whole number from 0 to 8",
        ),
        (
            {"hold_certainties": '["maybe"]'},
            "policy.hold_certainties[0]: got 'maybe'; expected one of confirmed, false,"
            " unconfirmed",
        ),
    ],
)
def test_config_errors_read_as_sentences(policy: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config(**policy))
    assert str(error.value) == message


def test_an_unknown_setting_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_config().replace("[store]\n", "[store]\nmax_agee = 3\n"))
    assert str(error.value) == (
        "store: unknown setting 'max_agee'; known here: retention, purge_interval, decision_log_max"
    )


def _draft(**changes: Any) -> dict[str, Any]:
    return {**DRAFT, **changes}


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (_draft(expires_in="99y"), f"expires_in: got '99y'; {DURATION}"),
        (
            _draft(area={**DRAFT["area"], "codes": ["06111"]}),
            "area.codes[0]: got '06111'; expected an area code: fips: and a 2-5 digit FIPS"
            " code, zip: and 5 digits, or iso: and a country or region code, for example"
            " fips:06111, zip:93030 or iso:us-ca. Did you mean fips:06111?",
        ),
        (
            _draft(text={"english": {"headline": "x", "body": ""}}),
            "text: got 'english'; expected a language tag (2 or 3 lowercase letters),"
            " for example es, en or es-MX",
        ),
        (
            _draft(kind="raid"),
            "kind: got 'raid'; expected one of all_clear, checkpoint, court, detention,"
            " mobilization, notice, operation, rumor, sighting, workplace",
        ),
        (
            _draft(area={**DRAFT["area"], "geohash": "9q4"}),
            "area.geohash: got '9q4'; expected a geohash of 4 to 9 characters (digits and"
            " letters except a, i, l, o), for example 9q4gch",
        ),
    ],
)
async def test_api_errors_read_as_sentences(
    running: RunningNode, draft: dict[str, Any], message: str
) -> None:
    status, problem = await running.call("POST", "/api/v1/alerts", json=draft)
    assert (status, problem) == (400, {"errcode": "AVISA_BAD_REQUEST", "error": message})


async def test_upper_case_geohash_is_accepted_and_lifetime_is_human(running: RunningNode) -> None:
    status, body = await running.call(
        "POST", "/api/v1/alerts", json=_draft(area={**DRAFT["area"], "geohash": "9Q4GCH"})
    )
    assert status == 201
    _, shown = await running.call("GET", path(body["id"]))
    assert shown["alert"]["area"]["geohash"] == "9q4gch"
    status, problem = await running.call("POST", "/api/v1/alerts", json=_draft(expires_in="30d"))
    assert (status, problem["error"]) == (
        400,
        "the alert would expire in 30d, beyond this node's policy.max_lifetime (7d);"
        " give a shorter expiry",
    )


async def test_geohash_without_area_code_warns(running: RunningNode) -> None:
    status, body = await running.call(
        "POST", "/api/v1/alerts", json=_draft(area={**DRAFT["area"], "codes": []})
    )
    assert (status, body["warnings"]) == (201, [ENGLISH.gettext(drafts.NO_AREA_CODE)])
    status, body = await running.call("POST", "/api/v1/alerts", json=DRAFT)
    assert (status, body["warnings"]) == (201, [])


async def test_a_cancel_is_never_active_in_the_list_or_metrics(running: RunningNode) -> None:
    _, first = await running.call("POST", "/api/v1/alerts", json=DRAFT)
    text = {"text": {"es": {"headline": "Retirada", "body": ""}}}
    status, withdrawal = await running.call("POST", path(first["id"]) + "/cancel", json=text)
    assert status == 201
    _, active = await running.call("GET", "/api/v1/alerts?active=true")
    assert active["alerts"] == []
    _, everything = await running.call("GET", "/api/v1/alerts")
    states = {item["alert"]["id"]: item["state"] for item in everything["alerts"]}
    assert states == {first["id"]: "cancelled", withdrawal["id"]: "cancelled"}
    async with running.http.get(running.url + "/metrics", headers=running.headers()) as response:
        metrics = await response.text()
    assert 'avisa_alerts{state="active"} 0' in metrics
    assert 'avisa_alerts{state="cancelled"} 2' in metrics


async def test_update_takes_only_what_changes_and_old_ids_follow(running: RunningNode) -> None:
    _, first = await running.call("POST", "/api/v1/alerts", json=DRAFT)
    status, second = await running.call(
        "POST", path(first["id"]) + "/update", json={"certainty": "unconfirmed"}
    )
    assert status == 201 and second["replaces"] == first["id"]
    _, shown = await running.call("GET", path(second["id"]))
    alert = shown["alert"]
    assert alert["certainty"] == "unconfirmed"
    assert (alert["text"], alert["area"], alert["kind"]) == (
        DRAFT["text"],
        DRAFT["area"],
        "sighting",
    )
    _, original = await running.call("GET", path(first["id"]))
    assert alert["expires_at"] == original["alert"]["expires_at"]  # carried over
    text = {"text": {"en": {"headline": "Withdrawn", "body": ""}}}
    status, cancelled = await running.call("POST", path(first["id"]) + "/cancel", json=text)
    assert (status, cancelled["cancels"]) == (201, second["id"])
    status, problem = await running.call("POST", path(first["id"]) + "/update", json={})
    assert (status, problem["errcode"]) == (409, "AVISA_CANCELLED")
    assert problem["error"] == f"alert {first['id']} is cancelled (by {cancelled['id']})"


def test_readable_names_dict_keys_and_lists_with_the_callers_names() -> None:
    with pytest.raises(readable.Invalid) as error:
        readable.convert(
            _draft(agencies=["ICE"]), drafts.Draft, lambda p: "--agency" if "agenc" in p else p
        )
    assert str(error.value) == (
        "--agency: got 'ICE'; expected a lowercase word, for example ice, cbp, police or unknown"
    )


def test_decisions_use_one_vocabulary_in_logs_and_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    import structlog

    from relay.runtime.log import DecisionLog, configure
    from relay.runtime.metrics import Metrics

    made = [
        ("ventura/01M82V7M000000000000000000", status, "x")
        for status in ("accepted", "held", "rejected", "duplicate")
    ]
    try:
        configure("info", json_output=True)
        DecisionLog().decisions(made, "ventura")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        structlog.reset_defaults()
    assert [line["decision"] for line in lines] == ["accept", "hold", "reject", "reject"]
    metrics = Metrics()
    metrics.decision("accepted", "local", None)
    assert 'avisa_decisions_total{decision="accept",reason="local",peer="local"} 1' in (
        metrics.render({})
    )


def test_a_url_on_this_host_must_name_the_listening_port() -> None:
    text = render("la", "127.0.0.1:8471", "http://127.0.0.1:8470")
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert str(error.value) == (
        "node.url: names port 8470 of this host but node.listen is 127.0.0.1:8471;"
        " peers would reach another program: give both the same port"
    )
    parse_config(render("la", "127.0.0.1:8471", "https://avisa.la.example.org"))
    parse_config(render("la", "127.0.0.1:8471", "http://localhost:8471"))
