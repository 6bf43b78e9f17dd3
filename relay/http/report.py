"""The public tip form: ``GET /report`` and ``POST /report`` (DESIGN §10).

Plain HTML, Spanish first and English (``?lang=en``), one ``<form>`` that
works with no JavaScript, no cookies, no images and no outside resources on
the cheapest phone. Everything the reporter typed goes back out only through
``html.escape``. The receipt page thanks the reporter and never names the
tip's id: whoever sees the phone later learns nothing to look up.

Rate limit per client without keeping the client's address anywhere: the
address (or, behind a proxy, the header ``[desk] client_header`` names) is
turned into a BLAKE2b hash keyed with a random key that lives in this
process's memory only, and that hash indexes a token bucket in a bounded,
least-recently-used table. A restart forgets every bucket and the key. A
refused post (429) is answered before its body is read and changes nothing.

Each form carries a random per-form token; its keyed hash is the tip's
reporter, so two posts from one form count once for corroboration.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Final
from urllib.parse import parse_qs

import msgspec
from aiohttp import web

from relay.core.errors import BadInput
from relay.core.tips import TipIn
from relay.http.api import NODE
from relay.runtime.httpio import BODY_DEADLINE_S

routes = web.RouteTableDef()
FORM_BODY_MAX: Final = 16 * 1024
MAX_CLIENTS: Final = 10_000
AGENCIES: Final = ("ice", "cbp", "police", "unknown")
MINUTES_AGO: Final = (0, 15, 30, 60, 120)


class ClientLimiter:
    """Token buckets per client, keyed by an in-memory keyed hash of its address."""

    def __init__(
        self,
        per_hour: int,
        max_clients: int = MAX_CLIENTS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_hour)
        self.refill_per_s = per_hour / 3600.0
        self.max_clients = max_clients
        self._monotonic = monotonic
        self._key = os.urandom(32)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def _client(self, address: str) -> bytes:
        return hashlib.blake2b(address.encode(), key=self._key, digest_size=16).digest()

    def allow(self, address: str) -> bool:
        client, now = self._client(address), self._monotonic()
        tokens, since = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - since) * self.refill_per_s)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if not allowed:
            self.refused += 1
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)


LIMITER: web.AppKey[ClientLimiter] = web.AppKey("report_limiter", ClientLimiter)

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
    },
}  # fmt: skip

_STYLE = (
    "body{font:1rem/1.4 sans-serif;max-width:36rem;margin:0 auto;padding:.5rem}"
    "label{display:block;margin-top:.8rem;font-weight:bold}"
    "textarea,input[type=text],input[type=tel],select{width:100%;box-sizing:border-box;"
    "font-size:1rem;padding:.3rem}"
    ".check{font-weight:normal;display:inline-block;margin-right:1rem}"
    "button{margin-top:1rem;font-size:1.1rem;padding:.5rem 1rem}.error{color:#a00}"
)
_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _lang(value: str | None) -> str:
    return "en" if value == "en" else "es"


def _page(lang: str, body: str, status: int = 200) -> web.Response:
    t = TEXT[lang]
    page = (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(str(t['title']))}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=page, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def form_page(lang: str, error: str = "", values: dict[str, str] | None = None) -> str:
    t, v = TEXT[lang], values or {}
    other_lang, other_name = t["other"]
    ago = t["ago"]
    agency = t["agency"]
    assert isinstance(ago, dict) and isinstance(agency, dict)
    options = "".join(
        f'<option value="{m}"{" selected" if v.get("when") == str(m) else ""}>{_e(ago[m])}</option>'
        for m in MINUTES_AGO
    )
    checks = "".join(
        f'<label class="check"><input type="checkbox" name="agency" value="{a}"> '
        f"{_e(agency[a])}</label>"
        for a in AGENCIES
    )
    problem = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    return (
        f'<p><a href="/report?lang={other_lang}">{_e(other_name)}</a></p>'
        f"<h1>{_e(t['title'])}</h1><p>{_e(t['intro'])}</p>{problem}"
        f'<form method="post" action="/report?lang={lang}" accept-charset="utf-8">'
        f'<input type="hidden" name="t" value="{os.urandom(16).hex()}">'
        f'<label for="text">{_e(t["text"])}</label>'
        f'<textarea id="text" name="text" rows="5" maxlength="2000" required>'
        f"{_e(v.get('text', ''))}</textarea>"
        f'<label for="place">{_e(t["place"])}</label>'
        f'<input type="text" id="place" name="place" maxlength="200" required'
        f' value="{_e(v.get("place", ""))}">'
        f'<label for="zip">{_e(t["zip"])}</label>'
        f'<input type="text" id="zip" name="zip" inputmode="numeric" maxlength="5"'
        f' value="{_e(v.get("zip", ""))}">'
        f'<label for="when">{_e(t["when"])}</label><select id="when" name="when">{options}'
        f"</select><fieldset><legend>{_e(t['agencies'])}</legend>{checks}</fieldset>"
        f'<label for="vehicles">{_e(t["vehicles"])}</label>'
        f'<input type="text" id="vehicles" name="vehicles" maxlength="200">'
        f'<label for="size">{_e(t["size"])}</label>'
        f'<input type="text" id="size" name="size" maxlength="200">'
        f'<label for="contact">{_e(t["contact"])}</label>'
        f'<input type="tel" id="contact" name="contact" maxlength="64" autocomplete="off">'
        f'<button type="submit">{_e(t["send"])}</button></form>'
    )


def receipt_page(lang: str) -> str:
    t = TEXT[lang]
    return (
        f"<h1>{_e(t['thanks'])}</h1><p>{_e(t['thanks_more'])}</p>"
        f'<p><a href="/report?lang={lang}">{_e(t["again"])}</a></p>'
    )


def client_address(request: web.Request, header: str) -> str:
    if header:
        forwarded = request.headers.get(header, "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:100]
    return request.remote or "?"


async def _read_form(request: web.Request) -> dict[str, list[str]]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadInput("AVISA_UNSUPPORTED_MEDIA_TYPE", "send the form", 415)
    if request.content_length is not None and request.content_length > FORM_BODY_MAX:
        raise BadInput("AVISA_TOO_LARGE", "form too large", 413)
    try:
        async with asyncio.timeout(BODY_DEADLINE_S):
            raw = await request.content.read(FORM_BODY_MAX + 1)
    except TimeoutError:
        raise BadInput("AVISA_TIMEOUT", "request body too slow", 408) from None
    if len(raw) > FORM_BODY_MAX:
        raise BadInput("AVISA_TOO_LARGE", "form too large", 413)
    try:
        text = raw.decode("utf-8")
        return parse_qs(text, keep_blank_values=False, max_num_fields=32, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("AVISA_BAD_REQUEST", "not a form") from None


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
    return _page(_lang(request.query.get("lang")), form_page(_lang(request.query.get("lang"))))


@routes.post("/report")
async def report_post(request: web.Request) -> web.Response:
    lang = _lang(request.query.get("lang"))
    node = request.app[NODE]
    limiter = request.app[LIMITER]
    if not limiter.allow(client_address(request, node.config.desk.client_header)):
        node.desk.counters[("refused", "AVISA_RATE_LIMITED")] += 1
        return _page(lang, f'<p class="error">{_e(TEXT[lang]["slow"])}</p>', 429)
    form = await _read_form(request)
    values = {name: _one(form, name) for name in ("text", "place", "zip", "when")}
    desk = node.desk
    try:
        tip = tip_from_form(form, lang)
        observed = node.clock() - timedelta(minutes=_minutes(form))
        tip = msgspec.structs.replace(tip, observed_at=observed.replace(microsecond=0))
        form_token = _one(form, "t")[:64] or os.urandom(16).hex()
        reporter = desk.sealer.keyed_hash(form_token.encode(), b"web-reporter")
        contact = _one(form, "contact") or None
        await desk.submit(tip, contact=contact, reporter=reporter)
    except msgspec.ValidationError:
        return _page(lang, form_page(lang, str(TEXT[lang]["bad"]), values), 400)
    except BadInput as exc:
        key = {"AVISA_BAD_PHONE": "bad_phone", "AVISA_DESK_FULL": "full"}.get(exc.errcode, "bad")
        status = exc.status if exc.status in (400, 429) else 400
        return _page(lang, form_page(lang, str(TEXT[lang][key]), values), status)
    return _page(lang, receipt_page(lang))
