"""The public tip form: ``GET /report`` and ``POST /report`` (DESIGN §10).

Plain HTML in the node's languages (``?lang=``, else the browser's
``Accept-Language``, else ``[node] languages[0]``: ``webdesk.i18n``, the
words from the catalogue, ``report.*``), one ``<form>`` that
works with no JavaScript, no cookies, no images and no outside resources on
the cheapest phone. The pages are the web desk's kind: Jinja2 templates with
autoescape (``report*.html`` in the desk's templates, its environment), so
what the reporter typed goes back out only as text, and one stylesheet
(``report.css``) from the desk's static files, versioned and cached. So the
Content-Security-Policy allows no inline style and no script at all. The
receipt page thanks the reporter and never names the tip's id: whoever sees
the phone later learns nothing to look up.

Reports come from people, not pages (DESIGN §17). A post that its browser
says came from another site (``Sec-Fetch-Site`` other than ``same-origin`` or
``none``, or an ``Origin`` that is not this node) is refused with 403 before
its body is read. Each form carries a token the node signed
(``relay.http.formtokens``: time-bound, single-use); a post without a good
one files nothing and shows the reporter's words again with a fresh token.

Rate limit per client without keeping the client's address anywhere
(``relay.http.clientlimit``, as ``/desk/login`` does). A refused post (429)
is answered before its body is read and changes nothing. The tip's reporter
is a keyed hash of the client's bucket (IPv4 address, IPv6 /64), so posting
many forms from one place counts as one reporter for corroboration.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

import msgspec
from aiohttp import web

from relay.core.errors import BadInput
from relay.core.language import N_, Words
from relay.core.tips import TipIn
from relay.http.api import NODE
from relay.http.clientlimit import ClientLimiter, client_address
from relay.http.formtokens import FormTokens
from relay.http.webdesk import PUBLIC_PAGES, i18n
from relay.http.webdesk.session import same_site
from relay.runtime.httpio import read_form, status_for

routes = web.RouteTableDef()
FORM_BODY_MAX: Final = 16 * 1024
AGENCIES: Final = tuple(i18n.AGENCY_NAMES)


LIMITER: web.AppKey[ClientLimiter] = web.AppKey("report_limiter", ClientLimiter)
TOKENS: web.AppKey[FormTokens] = web.AppKey("report_tokens", FormTokens)
# ``ClientLimiter`` and ``FormTokens`` too: the composition root builds them.
__all__ = ["LIMITER", "TOKENS", "ClientLimiter", "FormTokens", "routes"]

#: Why a post was refused before it was read (``report_refused.html``).
REFUSED: Final = {"slow": N_("report.slow"), "elsewhere": N_("report.elsewhere")}
#: "When?" on the form: minutes ago, as the reporter reads them.
WHEN: Final = {
    0: N_("report.ago.0"),
    15: N_("report.ago.15"),
    30: N_("report.ago.30"),
    60: N_("report.ago.60"),
    120: N_("report.ago.120"),
}
#: Why the form came back, from the desk's error codes.
_PROBLEMS: Final = {
    "AVISA_DESK_FULL": N_("report.full"),
    "AVISA_TOO_MANY_TIPS": N_("report.full"),
    "AVISA_BAD_PHONE": N_("report.bad_phone"),
}

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _page(
    request: web.Request, words: Words, template: str, status: int = 200, **context: Any
) -> web.Response:
    """A page of the form, rendered with the desk's templates and static files."""
    pages = request.app[PUBLIC_PAGES]
    base = i18n.template_words(words, request.app[NODE].catalogues) | {
        "asset": pages.asset,
        "agency": lambda code: i18n.agency(words, code),
    }
    page = pages.environment.get_template(template).render(base | context)
    return web.Response(
        text=page, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def form_page(
    request: web.Request,
    words: Words,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    shown = {name: (values or {}).get(name, "") for name in ("text", "place", "zip", "when")}
    return _page(
        request,
        words,
        "report.html",
        status,
        error=error,
        values=shown,
        form_token=request.app[TOKENS].issue(),
        minutes_ago=WHEN,
        agencies=AGENCIES,
    )


async def _read_form(request: web.Request) -> dict[str, list[str]]:
    form = await read_form(request, FORM_BODY_MAX, 32)
    return {name: form.getall(name) for name in form}


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].replace("\r\n", "\n").strip()


def tip_from_form(form: dict[str, list[str]], lang: str) -> TipIn:
    """The tip a form holds (``msgspec.ValidationError`` past a bound)."""
    zip_code = _one(form, "zip")
    is_zip = len(zip_code) == 5 and zip_code.isascii() and zip_code.isdigit()
    codes = [f"zip:{zip_code}"] if is_zip else []
    agencies = [a for a in dict.fromkeys(form.get("agency", [])) if a in i18n.AGENCY_NAMES]
    fields = {
        "text": _one(form, "text"),
        "where": {"label": _one(form, "place"), "codes": codes},
        "channel": "web",
        "language": lang,
        "agencies": agencies,
        "vehicles": _one(form, "vehicles") or None,
        "size": _one(form, "size") or None,
    }
    return msgspec.convert(fields, TipIn)


def _minutes(form: dict[str, list[str]]) -> int:
    raw = _one(form, "when")
    return int(raw) if raw in {str(m) for m in WHEN} else 0


def _words(request: web.Request) -> Words:
    """``?lang=``, else the browser's Accept-Language, else the node's first language:
    the desk's rule without its cookie (the form keeps none)."""
    words, _ = i18n.choose(request, remember=False)
    return words


@routes.get("/report")
async def report_form(request: web.Request) -> web.Response:
    return form_page(request, _words(request))


@routes.post("/report")
async def report_post(request: web.Request) -> web.Response:
    words = _words(request)
    lang = words.language
    node = request.app[NODE]
    if not same_site(request, node.config.node.url):
        node.desk.counters[("refused", "AVISA_CROSS_SITE")] += 1
        node.metrics.http_error("AVISA_CROSS_SITE", 403)
        return _page(request, words, "report_refused.html", 403, reason=REFUSED["elsewhere"])
    client = client_address(request)
    if not request.app[LIMITER].allow(client):
        node.desk.counters[("refused", "AVISA_RATE_LIMITED")] += 1
        return _page(request, words, "report_refused.html", 429, reason=REFUSED["slow"])
    form = await _read_form(request)
    values = {name: _one(form, name) for name in ("text", "place", "zip", "when")}
    if request.app[TOKENS].spend(_one(form, "t")) != "ok":
        node.desk.counters[("refused", "AVISA_FORM_TOKEN")] += 1
        return form_page(request, words, words.gettext("report.stale"), values, 400)
    desk = node.desk
    try:
        tip = tip_from_form(form, lang)
        observed = node.clock() - timedelta(minutes=_minutes(form))
        tip = msgspec.structs.replace(tip, observed_at=observed.replace(microsecond=0))
        reporter = desk.sealer.keyed_hash(client.encode(), b"web-reporter")
        contact = _one(form, "contact") or None
        await desk.submit(tip, contact=contact, reporter=reporter)
    except msgspec.ValidationError:
        return form_page(request, words, words.gettext("report.bad"), values, 400)
    except BadInput as exc:
        problem = words.gettext(_PROBLEMS.get(exc.errcode, "report.bad"))
        status = 429 if status_for(exc) == 429 else 400
        return form_page(request, words, problem, values, status)
    return _page(request, words, "report_receipt.html")
