"""Desk sessions: bounded, expiring, stored only as hashes (relay.http.webdesk.session)."""

from __future__ import annotations

import typing
from datetime import timedelta

from relay.http.webdesk.i18n import from_accept_language
from relay.http.webdesk.session import Sessions, user_for
from relay.storage.trust import token_hash
from tests.helpers import T0


def test_sessions_are_bounded_expire_and_keep_no_secret() -> None:
    sessions = Sessions(timedelta(hours=1), limit=3)
    ids = [sessions.open(f"token-{n}", T0) for n in range(4)]
    assert len(sessions) == 3
    assert sessions.find(ids[0], T0) is None  # the oldest gave way
    assert sessions.find(ids[3], T0) is not None
    assert sessions.find(ids[3], T0 + timedelta(hours=1)) is None  # expired
    stored = repr(sessions._by_key)
    assert not any(i in stored for i in ids) and "token-3" not in stored
    assert sessions.find("x" * 500, T0) is None and sessions.find(None, T0) is None
    sessions.close(ids[3])
    assert sessions.find(ids[3], T0) is None


def test_a_session_has_the_roles_its_token_has_now() -> None:
    sessions = Sessions(timedelta(hours=1))
    session = sessions.find(sessions.open("tok", T0), T0)
    assert session is not None
    tokens = ((token_hash("tok"), frozenset({"verifier", "publisher"})),)
    user = user_for(session, tokens)  # type: ignore[arg-type]
    assert user is not None and user.roles == {"verifier", "publisher"}
    assert user.may(("publisher",)) and not user.may(("reviewer",))
    assert user.actor == "token:" + token_hash("tok")[:6].hex()
    assert user_for(session, ()) is None  # revoked


def test_accept_language() -> None:
    assert from_accept_language("en-US,en;q=0.9,es;q=0.8") == "en"
    assert from_accept_language("fr-CA, es-MX;q=0.7, en;q=0.5") == "es"
    assert from_accept_language("en;q=0.2, es;q=0.9") == "es"
    assert from_accept_language("de, fr") is None
    assert from_accept_language("es;q=bogus, en") == "en"


def test_every_state_outcome_channel_and_action_has_words_in_both_languages() -> None:
    from relay.core.model import CERTAINTIES
    from relay.core.tips import CHANNELS, TIP_STATES, Action
    from relay.http.webdesk.i18n import MESSAGES

    actions = [*typing.get_args(Action), "accept", "hold", "reject"]
    keys = [
        *(f"tip.{s}" for s in TIP_STATES),
        *(f"channel.{c}" for c in CHANNELS),
        *(f"certainty.{c}" for c in CERTAINTIES),
        *(f"state.{s}" for s in ("active", "cancelled", "superseded", "expired", "held")),
        *(f"action.{a}" for a in actions),
    ]
    for language in ("es", "en"):
        missing = [k for k in keys if k not in MESSAGES[language]]
        assert not missing, (language, missing)
    assert set(MESSAGES["es"]) == set(MESSAGES["en"])
