"""Desk sessions: bounded, expiring, stored only as hashes (relay.http.webdesk.session)."""

from __future__ import annotations

import typing
from datetime import timedelta

from relay.http.webdesk import i18n
from relay.http.webdesk.session import Sessions, user_for
from relay.storage.catalogues import load
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


def test_a_query_names_a_served_language_or_nothing() -> None:
    served = ("es", "en")
    assert [i18n.served(tag, served) for tag in ("en", "es-MX", "EN-us", "fr", "", None)] == [
        "en",
        "es",
        "en",
        None,
        None,
        None,
    ]
    assert i18n.served("en,es", served) is None and i18n.served("e" * 40, served) is None


def test_every_state_outcome_channel_and_action_has_words_in_both_languages() -> None:
    from relay.core.model import CERTAINTIES
    from relay.core.tips import CHANNELS, TIP_STATES, Action

    actions = [*typing.get_args(Action), "accept", "hold", "reject"]
    keys = [
        *(f"tip.{s}" for s in TIP_STATES),
        *(f"channel.{c}" for c in CHANNELS),
        *(f"alerts.certainty.{c}" for c in CERTAINTIES),
        *(f"state.{s}" for s in ("active", "cancelled", "superseded", "expired", "held")),
        *(f"action.{a}" for a in actions),
        *i18n.BUILT_IN_TEMPLATES,
        *i18n.REASONS,
    ]
    catalogues = load(["es", "en"])
    for language in ("es", "en"):
        words = catalogues.words(language)
        missing = [k for k in keys if not words.has(k)]
        assert not missing, (language, missing)
    assert catalogues.words("es").gettext("tip.new") == "nuevo"
