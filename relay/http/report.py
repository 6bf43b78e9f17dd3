"""The public tip form: ``GET /report`` and ``POST /report`` (DESIGN §10).

Plain HTML, Spanish first and English (``?lang=en``), one ``<form>`` that
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
from relay.core.tips import TipIn
from relay.http.api import NODE
from relay.http.clientlimit import ClientLimiter, client_address
from relay.http.formtokens import FormTokens
from relay.http.webdesk import PUBLIC_PAGES
from relay.http.webdesk.session import same_site
from relay.runtime.httpio import read_form, status_for

routes = web.RouteTableDef()
FORM_BODY_MAX: Final = 16 * 1024
AGENCIES: Final = ("ice", "cbp", "police", "unknown")
MINUTES_AGO: Final = (0, 15, 30, 60, 120)


LIMITER: web.AppKey[ClientLimiter] = web.AppKey("report_limiter", ClientLimiter)
TOKENS: web.AppKey[FormTokens] = web.AppKey("report_tokens", FormTokens)
# ``ClientLimiter`` and ``FormTokens`` too: the composition root builds them.
__all__ = ["LIMITER", "TOKENS", "ClientLimiter", "FormTokens", "routes"]

TEXT: Final = {
    "es": {
        "title": "Reportar actividad de inmigración",
        "intro": "Cuéntenos lo que vio. Un equipo de voluntarios lo verificará antes de"
        " enviar cualquier alerta. No escriba nombres de personas.",
        "text": "¿Qué vio? (vehículos, uniformes, cuántos agentes, qué hacen)",
        "place": "¿Dónde? (calle y cruce, negocio, parque)",
        "zip": "Código postal (opcional)",
        "when": "¿Cuándo?",
        "ago": {0: "Ahora", 15: "Hace 15 minutos", 30: "Hace 30 minutos", 60: "Hace 1 hora",
                120: "Hace 2 horas o más"},
        "agencies": "¿Quién? (si sabe)",
        "agency": {"ice": "ICE", "cbp": "CBP / Patrulla Fronteriza", "police": "Policía",
                   "unknown": "No sé"},
        "vehicles": "Vehículos (opcional)",
        "size": "¿Cuántos agentes? (opcional)",
        "contact": "Su teléfono (opcional): solo para responderle. Se guarda cifrado y se"
        " borra al cerrar el reporte.",
        "send": "Enviar reporte",
        "other": ("en", "English"),
        "thanks": "Gracias. Recibimos su reporte.",
        "thanks_more": "Voluntarios capacitados lo verificarán. Si dejó su teléfono, le"
        " responderemos. No comparta rumores sin verificar.",
        "again": "Enviar otro reporte",
        "slow": "Demasiados reportes desde esta conexión. Espere un rato e intente de nuevo,"
        " o llame a la línea de emergencia.",
        "bad_phone": "Ese número de teléfono no parece válido. Revíselo o déjelo vacío.",
        "bad": "Escriba qué vio (hasta 2000 caracteres) y dónde (hasta 200).",
        "full": "No podemos recibir reportes ahora mismo. Llame a la línea de emergencia.",
        "stale": "El formulario venció o ya se envió. Revise lo que escribió y envíelo de nuevo.",
        "elsewhere": "Este reporte vino de otra página, no de este formulario, y no se"
        " guardó. Si usted quiere reportar algo, use este formulario.",
    },
    "en": {
        "title": "Report immigration enforcement activity",
        "intro": "Tell us what you saw. A team of volunteers will verify it before any"
        " alert goes out. Do not write people's names.",
        "text": "What did you see? (vehicles, uniforms, how many agents, what they are doing)",
        "place": "Where? (street and cross street, business, park)",
        "zip": "ZIP code (optional)",
        "when": "When?",
        "ago": {0: "Now", 15: "15 minutes ago", 30: "30 minutes ago", 60: "1 hour ago",
                120: "2 hours ago or more"},
        "agencies": "Who? (if you know)",
        "agency": {"ice": "ICE", "cbp": "CBP / Border Patrol", "police": "Police",
                   "unknown": "Don't know"},
        "vehicles": "Vehicles (optional)",
        "size": "How many agents? (optional)",
        "contact": "Your phone (optional): only to reply to you. It is kept encrypted and"
        " deleted when the report is closed.",
        "send": "Send report",
        "other": ("es", "Español"),
        "thanks": "Thank you. We received your report.",
        "thanks_more": "Trained volunteers will verify it. If you left your phone, we will"
        " reply. Please do not share unverified rumors.",
        "again": "Send another report",
        "slow": "Too many reports from this connection. Please wait a while and try again,"
        " or call the hotline.",
        "bad_phone": "That phone number does not look valid. Check it or leave it empty.",
        "bad": "Write what you saw (up to 2000 characters) and where (up to 200).",
        "full": "We cannot take reports right now. Please call the hotline.",
        "stale": "The form expired or was already sent. Check what you wrote and send it again.",
        "elsewhere": "This report came from another page, not from this form, and was not"
        " saved. If you want to report something, use this form.",
    },
}  # fmt: skip

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _lang(value: str | None) -> str:
    return "en" if value == "en" else "es"


def _page(
    request: web.Request, lang: str, template: str, status: int = 200, **context: Any
) -> web.Response:
    """A page of the form, rendered with the desk's templates and static files."""
    pages = request.app[PUBLIC_PAGES]
    other_lang, other_name = TEXT[lang]["other"]
    base = {
        "lang": lang,
        "t": TEXT[lang],
        "other_lang": other_lang,
        "other_name": other_name,
        "asset": pages.asset,
    }
    page = pages.environment.get_template(template).render(base | context)
    return web.Response(
        text=page, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def form_page(
    request: web.Request,
    lang: str,
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    shown = {name: (values or {}).get(name, "") for name in ("text", "place", "zip", "when")}
    return _page(
        request,
        lang,
        "report.html",
        status,
        error=error,
        values=shown,
        form_token=request.app[TOKENS].issue(),
        minutes_ago=MINUTES_AGO,
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
    agencies = [a for a in dict.fromkeys(form.get("agency", [])) if a in AGENCIES]
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
    return int(raw) if raw in {str(m) for m in MINUTES_AGO} else 0


@routes.get("/report")
async def report_form(request: web.Request) -> web.Response:
    return form_page(request, _lang(request.query.get("lang")))


@routes.post("/report")
async def report_post(request: web.Request) -> web.Response:
    lang = _lang(request.query.get("lang"))
    node = request.app[NODE]
    if not same_site(request, node.config.node.url):
        node.desk.counters[("refused", "AVISA_CROSS_SITE")] += 1
        node.metrics.http_error("AVISA_CROSS_SITE", 403)
        return _page(request, lang, "report_refused.html", 403, reason="elsewhere")
    client = client_address(request)
    if not request.app[LIMITER].allow(client):
        node.desk.counters[("refused", "AVISA_RATE_LIMITED")] += 1
        return _page(request, lang, "report_refused.html", 429, reason="slow")
    form = await _read_form(request)
    values = {name: _one(form, name) for name in ("text", "place", "zip", "when")}
    if request.app[TOKENS].spend(_one(form, "t")) != "ok":
        node.desk.counters[("refused", "AVISA_FORM_TOKEN")] += 1
        return form_page(request, lang, str(TEXT[lang]["stale"]), values, 400)
    desk = node.desk
    try:
        tip = tip_from_form(form, lang)
        observed = node.clock() - timedelta(minutes=_minutes(form))
        tip = msgspec.structs.replace(tip, observed_at=observed.replace(microsecond=0))
        reporter = desk.sealer.keyed_hash(client.encode(), b"web-reporter")
        contact = _one(form, "contact") or None
        await desk.submit(tip, contact=contact, reporter=reporter)
    except msgspec.ValidationError:
        return form_page(request, lang, str(TEXT[lang]["bad"]), values, 400)
    except BadInput as exc:
        full = ("AVISA_DESK_FULL", "AVISA_TOO_MANY_TIPS")
        key = (
            "full"
            if exc.errcode in full
            else {"AVISA_BAD_PHONE": "bad_phone"}.get(exc.errcode, "bad")
        )
        status = 429 if status_for(exc) == 429 else 400
        return form_page(request, lang, str(TEXT[lang][key]), values, status)
    return _page(request, lang, "report_receipt.html")
