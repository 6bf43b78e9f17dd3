"""Which language a desk or ``/report`` request is answered in, and its words.

The words themselves live in the gettext catalogue (``relay/locale``, read by
``relay.storage.catalogues`` into ``node.catalogues``); this module is only
the request's side of the one rule (``relay.core.language.negotiate``):

1. an explicit choice: ``?lang=``, remembered by the desk in the cookie
   ``avisa_lang`` (the public form keeps no cookie, so for it only ``?lang=``);
2. else the browser's ``Accept-Language``;
3. else the node's first language (``[node] languages[0]``).

Only the languages the node serves are ever chosen: ``?lang=xx`` or a cookie
for a language it does not serve counts as no choice. Templates get ``_``,
``gettext`` and ``ngettext`` of the request's ``Words`` (named values as
keyword arguments: ``_("tips.rule", n=2)``); what they return is plain text,
which Jinja's autoescape escapes with the values in it, so neither a message
nor a value can put markup in a page. The language switch lists the other
served languages, each by its own name (``language.name`` in its catalogue).

Ids that templates build at run time (``"tip." ~ tip.state``) are listed
here inside ``N_()`` so ``make messages`` sees them.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from relay.core.language import LANGUAGE_NAME, N_, Words, from_accept_language, negotiate
from relay.http.api import NODE
from relay.storage.catalogues import Catalogues

COOKIE: Final = "avisa_lang"
_WORDS: Final = web.RequestKey("avisa_words", Words)
_MAX_TAG: Final = 35  # BCP 47's longest useful tag; a longer ?lang= is no choice


def served(tag: str | None, languages: tuple[str, ...]) -> str | None:
    """``tag`` (or its primary language) if the node serves it, else None."""
    if not tag or len(tag) > _MAX_TAG or "," in tag or ";" in tag:
        return None
    return from_accept_language(tag, languages)


def choose(request: web.Request, *, remember: bool = True) -> tuple[Words, bool]:
    """The request's words, and whether ``?lang=`` just chose them (set the cookie).

    ``remember``: the desk reads its cookie; the public form has none."""
    catalogues = request.app[NODE].catalogues
    asked = served(request.query.get("lang"), catalogues.languages)
    kept = request.cookies.get(COOKIE) if remember else None
    language = negotiate(
        catalogues.languages,
        explicit=asked or served(kept, catalogues.languages),
        accept_language=request.headers.get("Accept-Language", "")[:1000],
    )
    return catalogues.words(language), asked is not None


def switched(request: web.Request) -> bool:
    """Whether ``?lang=`` chose the language of this request (the cookie then keeps it)."""
    return served(request.query.get("lang"), request.app[NODE].catalogues.languages) is not None


def words(request: web.Request) -> Words:
    """The desk request's words (chosen once per request)."""
    found = request.get(_WORDS)
    if found is None:
        found, _ = choose(request)
        request[_WORDS] = found
    return found


def switch(catalogues: Catalogues, language: str) -> list[tuple[str, str]]:
    """The other served languages, each as (tag, its own name), for the switch link."""
    return [
        (tag, catalogues.words(tag).gettext(LANGUAGE_NAME))
        for tag in catalogues.languages
        if tag != language
    ]


def template_words(words: Words, catalogues: Catalogues) -> dict[str, Any]:
    """What every page template is given to say things: ``_``, ``gettext``, ``ngettext``,
    the page's language and the switch to the others."""
    return {
        "_": words.gettext,
        "gettext": words.gettext,
        "ngettext": words.ngettext,
        "has_words": words.has,
        "lang": words.language,
        "other_languages": switch(catalogues, words.language),
    }


#: Ids the templates build from a value (``"tip." ~ tip.state``), for ``make messages``.
BUILT_IN_TEMPLATES: Final = (
    N_("tip.new"),
    N_("tip.claimed"),
    N_("tip.confirmed"),
    N_("tip.false_alarm"),
    N_("tip.unable"),
    N_("tip.duplicate"),
    N_("tip.disputed"),
    N_("tip.published"),
    N_("tip.closed"),
    N_("channel.web"),
    N_("channel.sms"),
    N_("channel.hotline"),
    N_("channel.matrix"),
    N_("channel.cap"),
    N_("action.claim"),
    N_("action.outcome"),
    N_("action.publish"),
    N_("action.close"),
    N_("action.expire"),
    N_("action.update"),
    N_("action.accept"),
    N_("action.hold"),
    N_("action.reject"),
    N_("state.active"),
    N_("state.cancelled"),
    N_("state.superseded"),
    N_("state.expired"),
    N_("state.held"),
    N_("alerts.certainty.confirmed"),
    N_("alerts.certainty.unconfirmed"),
    N_("alerts.certainty.false"),
    N_("role.intake"),
    N_("role.verifier"),
    N_("role.publisher"),
    N_("role.reviewer"),
    N_("role.admin"),
    N_("bridges.routes"),
    N_("bridges.sources"),
    N_("why.AVISA_BAD_PLACE"),
)

#: The agencies a reporter can name on ``/report`` (its codes), as the form and the desk say
#: them; a code from elsewhere (a text message) is shown in capitals.
AGENCY_NAMES: Final = {
    "ice": N_("report.agency.ice"),
    "cbp": N_("report.agency.cbp"),
    "police": N_("report.agency.police"),
    "unknown": N_("report.agency.unknown"),
}


def agency(words: Words, code: str) -> str:
    """An agency code in ``words`` (``police`` → Police, Policía)."""
    return words.gettext(AGENCY_NAMES[code]) if code in AGENCY_NAMES else code.upper()


#: The facts a bridge reports on the bridges page (``bridge.status()`` keys), in words;
#: a key without words is shown as it is.
BRIDGE_FIELDS: Final = (
    N_("bridges.type.matrix"),
    N_("bridges.type.sms"),
    N_("bridges.type.cap"),
    N_("bridges.field.homeserver"),
    N_("bridges.field.user_id"),
    N_("bridges.field.device_id"),
    N_("bridges.field.logged_in"),
    N_("bridges.field.last_sync"),
    N_("bridges.field.last_error"),
    N_("bridges.field.room"),
    N_("bridges.field.room_id"),
    N_("bridges.field.encrypted"),
    N_("bridges.field.cursor"),
    N_("bridges.field.backlog"),
    N_("bridges.field.delivered"),
    N_("bridges.field.edited"),
    N_("bridges.field.skipped"),
    N_("bridges.field.last_success"),
    N_("bridges.field.last_error_at"),
    N_("bridges.field.backoff_until"),
    N_("bridges.field.failures"),
    N_("bridges.field.rate_limited"),
    N_("bridges.field.gateway"),
    N_("bridges.field.ready"),
    N_("bridges.field.sent"),
    N_("bridges.field.refused"),
    N_("bridges.field.retried"),
    N_("bridges.field.opted_out_by_carrier"),
    N_("bridges.field.requeued_in_doubt"),
    N_("bridges.field.replies_over_budget"),
    N_("bridges.field.inbound"),
    N_("bridges.field.feed"),
    N_("bridges.field.name"),
    N_("bridges.field.every"),
    N_("bridges.field.polls"),
    N_("bridges.field.not_modified"),
    N_("bridges.field.documents"),
    N_("bridges.field.messages"),
    N_("bridges.field.filed"),
    N_("bridges.field.updated"),
    N_("bridges.field.closed"),
    N_("bridges.field.last_poll"),
)

#: A policy's reason codes, in words (``why``); a code without words is shown as it is.
REASONS: Final = (
    N_("reason.local"),
    N_("reason.authoritative"),
    N_("reason.endorsed"),
    N_("reason.outside_speaks_for"),
    N_("reason.not_enough_endorsements"),
    N_("reason.review_certainty"),
    N_("reason.reviewer"),
    N_("reason.kind_not_accepted"),
    N_("reason.certainty_not_accepted"),
    N_("reason.rate_limited"),
    N_("reason.origin_cancel"),
    N_("reason.duplicate"),
    N_("reason.expired"),
    N_("reason.bad_signature"),
    N_("reason.unknown_key"),
    N_("reason.trustlist_expired"),
    N_("reason.equivocation"),
)
