"""The desk's words in Spanish and English, and how a request picks one.

A ``?lang=`` query switches and is remembered in a cookie; otherwise the
cookie; otherwise the browser's ``Accept-Language`` (first of es/en by
weight); otherwise Spanish, which most of the volunteers read first.
Templates call ``t("key")``; a key missing in one language falls back to the
other, then to the key itself, so a page never breaks over a word. A phrase
with a number has a ``KEY.one`` form for 1: ``t("tips.rule", n).format(n)``
picks it when ``n`` is 1 (Spanish and English need no other forms). The names
of alert kinds (``kind.*``) are those of ``bridges.render``, which the Matrix
and SMS texts use, so the desk says what the alerts say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from relay.core.language import KIND_NAMES
from relay.storage import catalogues

LANGUAGES = ("es", "en")
DEFAULT = "es"
COOKIE = "avisa_lang"

_EN: dict[str, str] = {
    "brand": "Avisa desk",
    "nav.tips": "Tips",
    "nav.alerts": "Alerts",
    "nav.held": "Held",
    "nav.peers": "Peers",
    "nav.bridges": "Bridges",
    "nav.decisions": "Decisions",
    "nav.logout": "Sign out",
    "nav.menu": "Desk pages",
    "lang.other": "Español",
    "login.title": "Sign in to the desk",
    "login.token": "Operator token",
    "login.help": "Paste the token your coordinator gave you. It is never shown again.",
    "login.submit": "Sign in",
    "login.bad": "That token is not known here.",
    "login.expired": "Your session ended. Sign in again.",
    "login.slow": "Too many failed sign-ins from this connection. Wait a while and try again.",
    "live": "Live",
    "roles": "Roles",
    "empty": "Nothing here right now.",
    "error": "Could not do that",
    "done": "Done.",
    "tips.warn.outside": "Signed, but peers that trust this network for {home} will hold it"
    " (outside_speaks_for): its area codes lie outside this network's home area.",
    "tips.warn.nocode": "Signed, but the alert has no area code: peers that trust this"
    " network for {home} will hold it (outside_speaks_for).",
    "forbidden": "Your role may not do this.",
    "notfound": "There is no such page.",
    "alerts.title": "Alerts",
    "alerts.map": "Map of alert areas",
    "alerts.nomap": "No tiles: areas are drawn on a blank map.",
    "alerts.active_only": "Active only",
    "alerts.show_all": "Show all",
    "alerts.origin": "Origin",
    "alerts.endorsed": "Endorsed by",
    "alerts.certainty": "Certainty",
    "alerts.expires": "Expires",
    "alerts.kind": "Kind",
    "alerts.area": "Area",
    "alerts.state": "State",
    "alerts.received": "Received",
    "alerts.update": "Update",
    "alerts.cancel": "Cancel alert",
    "alerts.cancel_note": "Why (sent with the cancel)",
    "alerts.headline": "Headline",
    "alerts.body": "Text",
    "alerts.expires_in": "Expires in",
    "alerts.send_update": "Sign and send update",
    "alerts.send_cancel": "Sign and send cancel",
    "alerts.cancel_headline": "Alert cancelled",
    "alerts.expired": "Expired",
    "role.intake": "intake",
    "role.verifier": "verifier",
    "role.publisher": "publisher",
    "role.reviewer": "reviewer",
    "role.admin": "administrator",
    "held.title": "Held for review",
    "held.from_peer": "Sent by",
    "held.reason": "Why it was held",
    "held.explain": "What the policy says now",
    "held.signatures": "Signatures",
    "held.inside": "Inside the origin's area",
    "held.accept": "Accept and publish",
    "held.reject": "Reject",
    "peers.title": "Peers",
    "peers.url": "Address",
    "peers.last_success": "Last contact",
    "peers.backlog": "Waiting to send",
    "peers.backoff": "Retry in",
    "peers.last_error": "Last error",
    "peers.failures": "Failures in a row",
    "peers.speaks_for": "Speaks for",
    "peers.keys": "Key fingerprints (read aloud to compare)",
    "peers.healthy": "healthy",
    "peers.trouble": "trouble",
    "peers.never": "never",
    "peers.gaps": "Messages missing",
    "peers.gaps_none": "none",
    "peers.gaps_text": "{} in {} gaps, {} not yet asked for",
    "peers.gaps_text.one": "{} in {} gap, {} not yet asked for",
    "peers.gap_asked": "asked for",
    "peers.gap_unasked": "not yet asked for",
    "bridges.title": "Bridges",
    "bridges.none": "No bridge is configured on this node.",
    "bridges.routes": "Routes",
    "bridges.sources": "Sources",
    "decisions.title": "Decisions",
    "decisions.action": "Action",
    "decisions.reason": "Reason",
    "decisions.network": "Network or peer",
    "decisions.at": "When",
    "decisions.alert": "Alert",
    "decisions.peer": "Peer",
    "decisions.any": "any",
    "decisions.filter": "Filter",
    "reason.local": "signed by this node",
    "reason.authoritative": "the origin speaks for this area",
    "reason.endorsed": "endorsed by enough trusted networks",
    "reason.outside_speaks_for": (
        "the area is outside what the origin speaks for, and too few trusted networks endorsed it"
    ),
    "reason.not_enough_endorsements": "an unknown origin, and too few trusted networks endorsed it",
    "reason.review_certainty": "this node reviews alerts of this certainty from peers",
    "reason.reviewer": "decided by a reviewer at this desk",
    "reason.kind_not_accepted": "this node does not take this kind of alert from the origin",
    "reason.certainty_not_accepted": "this node does not take this certainty from the origin",
    "reason.rate_limited": "the peer sent too many alerts too fast",
    "reason.origin_cancel": "the origin cancelled its own alert",
    "reason.duplicate": "already here",
    "reason.expired": "already expired",
    "reason.bad_signature": "a signature does not verify",
    "reason.unknown_key": "signed by a key this node does not know",
    "tips.title": "Tips",
    "tips.none": "No open tips. New ones appear here by themselves.",
    "tips.open_only": "Open only",
    "tips.show_all": "Show all",
    "tips.rule": "Publishing needs {} verifiers to confirm",
    "tips.rule.one": "Publishing needs {} verifier to confirm",
    "tips.activity": "Activity",
    "tips.agencies": "Agencies",
    "tips.vehicles": "Vehicles",
    "tips.size": "How many",
    "tips.observed": "Seen",
    "tips.cluster": "Corroboration",
    "tips.cluster_text": "{} reports from {} different reporters",
    "tips.cluster_text.one": "{} reports, all from {} reporter",
    "tips.confirmations": "Two-person rule",
    "tips.confirmed_of": "{} of {} confirmations",
    "tips.confirmed_of.one": "{} of {} confirmation",
    "tips.other_verifier": "you confirmed: another verifier must too",
    "tips.alert": "Alert signed",
    "tips.history": "History",
    "tips.you": "you",
    "tips.claim": "Claim: I'm checking it",
    "tips.record": "Record what you found",
    "tips.outcome": "Outcome",
    "tips.duplicate_of": "Duplicate of tip number",
    "tips.note": "Note for the desk",
    "tips.save_outcome": "Save outcome",
    "tips.close": "Close without alert",
    "tips.publish": "Publish as alert",
    "tips.publish_help": (
        "Prefilled from the tip. The reporter's own words are never copied into the alert."
    ),
    "tips.geohash": "Geohash",
    "tips.radius": "Radius (m)",
    "tips.sign_publish": "Sign and publish",
    "tips.needs_more": (
        "Needs {} more confirmations from different verifiers before it can be published."
    ),
    "tips.needs_more.one": (
        "Needs {} more confirmation from a different verifier before it can be published."
    ),
    "tip.new": "new",
    "tip.claimed": "claimed",
    "tip.confirmed": "confirmed",
    "tip.false_alarm": "false alarm",
    "tip.unable": "could not verify",
    "tip.duplicate": "duplicate",
    "tip.disputed": "disputed",
    "tips.disputed": (
        "Verifiers disagree (confirmed and false alarm). It cannot be published until"
        " a publisher records the outcome that settles it."
    ),
    "tips.settle": "Settle the dispute (publisher)",
    "tips.ruling": "ruling",
    "tip.published": "published",
    "tip.closed": "closed",
    "channel.web": "web form",
    "channel.sms": "SMS",
    "channel.hotline": "hotline",
    "channel.matrix": "Matrix",
    "channel.cap": "CAP feed",
    "action.claim": "claimed",
    "action.outcome": "outcome",
    "action.publish": "published",
    "action.close": "closed",
    "action.expire": "expired",
    "action.update": "updated",
    "yes": "yes",
    "no": "no",
    "state.active": "active",
    "state.cancelled": "cancelled",
    "state.superseded": "superseded",
    "state.expired": "expired",
    "state.held": "held",
    "certainty.confirmed": "confirmed",
    "certainty.unconfirmed": "unconfirmed",
    "certainty.false": "false (debunked)",
    "action.accept": "accept",
    "action.hold": "hold",
    "action.reject": "reject",
    "now": "just now",
    "tips.single": "only this report so far",
    "ago": "{} ago",
    "in": "in {}",
    "peers.trusted": "Trusted",
    "peers.local": "here (cards exchanged, avisa trust add)",
    "peers.via_list": "through trust list {} version {}, until {}",
    "peers.frozen": "the list expired: new alerts from it are held",
    "peers.list_expired": "Trust list {} (version {}) expired on {}: new alerts from its members"
    " are held until its maintainers publish a newer version.",
    "peers.list_expiring": "Trust list {} (version {}) expires on {}: ask its maintainers for a"
    " new version.",
    "peers.list_refused": "Trust list {}: the last check was refused ({}) {}: {}",
    "reason.trustlist_expired": "its origin is trusted only through a trust list that expired:"
    " new alerts wait for review until the maintainers publish a newer version",
    "reason.equivocation": (
        "the origin signed two different histories: held until an operator decides"
    ),
    "peers.withheld": "Withheld (a checkpoint showed them, this peer did not pass them on)",
    "peers.withheld_none": "none",
    "peers.withheld_text": "{} from {}, since {}",
    "peers.origin_status": "Word from this network",
    "peers.origin_live": "checkpoint at {}",
    "peers.origin_silent": "no word from {} since {}",
    "peers.origin_unknown": "no checkpoint yet",
    "peers.equivocation": (
        "{} signed two different histories (seq {}):"
        " its new alerts are held until an operator decides"
    ),
    "peers.equivocation_clear": "Decided: stop holding its alerts",
}

_ES: dict[str, str] = {
    "brand": "Mesa de Avisa",
    "nav.tips": "Reportes",
    "nav.alerts": "Alertas",
    "nav.held": "En espera",
    "nav.peers": "Redes aliadas",
    "nav.bridges": "Puentes",
    "nav.decisions": "Decisiones",
    "nav.logout": "Salir",
    "nav.menu": "Páginas de la mesa",
    "lang.other": "English",
    "login.title": "Entrar a la mesa",
    "login.token": "Clave de operador",
    "login.help": "Pegue la clave que le dio su coordinador. No se vuelve a mostrar.",
    "login.submit": "Entrar",
    "login.bad": "Esa clave no se conoce aquí.",
    "login.expired": "Su sesión terminó. Entre de nuevo.",
    "login.slow": "Demasiados intentos fallidos desde esta conexión. Espere un rato e intente"
    " de nuevo.",
    "live": "En vivo",
    "roles": "Funciones",
    "empty": "Nada por ahora.",
    "error": "No se pudo hacer",
    "done": "Hecho.",
    "tips.warn.outside": "Firmada, pero los nodos vecinos que confían en esta red para {home}"
    " la retendrán (outside_speaks_for): sus códigos de área quedan fuera del área de esta red.",
    "tips.warn.nocode": "Firmada, pero la alerta no tiene código de área: los nodos vecinos"
    " que confían en esta red para {home} la retendrán (outside_speaks_for).",
    "forbidden": "Su función no permite esto.",
    "notfound": "Esa página no existe.",
    "alerts.title": "Alertas",
    "alerts.map": "Mapa de las zonas de alerta",
    "alerts.nomap": "Sin mapa base: las zonas se dibujan sobre un fondo en blanco.",
    "alerts.active_only": "Solo activas",
    "alerts.show_all": "Ver todas",
    "alerts.origin": "Origen",
    "alerts.endorsed": "Respaldada por",
    "alerts.certainty": "Certeza",
    "alerts.expires": "Vence",
    "alerts.kind": "Tipo",
    "alerts.area": "Zona",
    "alerts.state": "Estado",
    "alerts.received": "Recibida",
    "alerts.update": "Actualizar",
    "alerts.cancel": "Cancelar alerta",
    "alerts.cancel_note": "Motivo (va con la cancelación)",
    "alerts.headline": "Titular",
    "alerts.body": "Texto",
    "alerts.expires_in": "Vence en",
    "alerts.send_update": "Firmar y enviar actualización",
    "alerts.send_cancel": "Firmar y enviar cancelación",
    "alerts.cancel_headline": "Alerta cancelada",
    "alerts.expired": "Venció",
    "role.intake": "recepción",
    "role.verifier": "verificación",
    "role.publisher": "publicación",
    "role.reviewer": "revisión",
    "role.admin": "administración",
    "held.title": "En espera de revisión",
    "held.from_peer": "Enviada por",
    "held.reason": "Por qué quedó en espera",
    "held.explain": "Lo que dice la política ahora",
    "held.signatures": "Firmas",
    "held.inside": "Dentro de la zona del origen",
    "held.accept": "Aceptar y publicar",
    "held.reject": "Rechazar",
    "peers.title": "Redes aliadas",
    "peers.url": "Dirección",
    "peers.last_success": "Último contacto",
    "peers.backlog": "Por enviar",
    "peers.backoff": "Reintento en",
    "peers.last_error": "Último error",
    "peers.failures": "Fallas seguidas",
    "peers.speaks_for": "Habla por",
    "peers.keys": "Huellas de clave (léalas en voz alta para comparar)",
    "peers.healthy": "bien",
    "peers.trouble": "con problemas",
    "peers.never": "nunca",
    "peers.gaps": "Mensajes que faltan",
    "peers.gaps_none": "ninguno",
    "peers.gaps_text": "{} en {} huecos, {} aún sin pedir",
    "peers.gaps_text.one": "{} en {} hueco, {} aún sin pedir",
    "peers.gap_asked": "pedido",
    "peers.gap_unasked": "aún sin pedir",
    "bridges.title": "Puentes",
    "bridges.none": "Este nodo no tiene puentes configurados.",
    "bridges.routes": "Rutas",
    "bridges.sources": "Fuentes",
    "decisions.title": "Decisiones",
    "decisions.action": "Acción",
    "decisions.reason": "Motivo",
    "decisions.network": "Red o aliada",
    "decisions.at": "Cuándo",
    "decisions.alert": "Alerta",
    "decisions.peer": "Aliada",
    "decisions.any": "cualquiera",
    "decisions.filter": "Filtrar",
    "reason.local": "firmada por este nodo",
    "reason.authoritative": "el origen habla por esta zona",
    "reason.endorsed": "respaldada por suficientes redes de confianza",
    "reason.outside_speaks_for": (
        "la zona está fuera de lo que el origen representa y pocas redes de confianza la respaldan"
    ),
    "reason.not_enough_endorsements": "origen desconocido y pocas redes de confianza la respaldan",
    "reason.review_certainty": "este nodo revisa las alertas de esta certeza que llegan de aliadas",
    "reason.reviewer": "decidido por quien revisa en esta mesa",
    "reason.kind_not_accepted": "este nodo no acepta este tipo de alerta de ese origen",
    "reason.certainty_not_accepted": "este nodo no acepta esta certeza de ese origen",
    "reason.rate_limited": "la aliada envió demasiadas alertas muy rápido",
    "reason.origin_cancel": "el origen canceló su propia alerta",
    "reason.duplicate": "ya estaba aquí",
    "reason.expired": "ya venció",
    "reason.bad_signature": "una firma no es válida",
    "reason.unknown_key": "firmada con una clave que este nodo no conoce",
    "tips.title": "Reportes",
    "tips.none": "No hay reportes abiertos. Los nuevos aparecen aquí solos.",
    "tips.open_only": "Solo abiertos",
    "tips.show_all": "Ver todos",
    "tips.rule": "Publicar requiere que {} verificadores confirmen",
    "tips.rule.one": "Publicar requiere que {} verificador confirme",
    "tips.activity": "Actividad",
    "tips.agencies": "Agencias",
    "tips.vehicles": "Vehículos",
    "tips.size": "Cuántos",
    "tips.observed": "Visto",
    "tips.cluster": "Corroboración",
    "tips.cluster_text": "{} reportes de {} personas distintas",
    "tips.cluster_text.one": "{} reportes, todos de {} persona",
    "tips.confirmations": "Regla de dos personas",
    "tips.confirmed_of": "{} de {} confirmaciones",
    "tips.confirmed_of.one": "{} de {} confirmación",
    "tips.other_verifier": "usted confirmó: falta otro verificador",
    "tips.alert": "Alerta firmada",
    "tips.history": "Historial",
    "tips.you": "usted",
    "tips.claim": "Tomar: yo lo verifico",
    "tips.record": "Anotar lo que encontró",
    "tips.outcome": "Resultado",
    "tips.duplicate_of": "Duplicado del reporte número",
    "tips.note": "Nota para la mesa",
    "tips.save_outcome": "Guardar resultado",
    "tips.close": "Cerrar sin alerta",
    "tips.publish": "Publicar como alerta",
    "tips.publish_help": (
        "Prellenado desde el reporte. Las palabras de quien reportó nunca se copian a la alerta."
    ),
    "tips.geohash": "Geohash",
    "tips.radius": "Radio (m)",
    "tips.sign_publish": "Firmar y publicar",
    "tips.needs_more": "Faltan {} confirmaciones de otros verificadores antes de publicar.",
    "tips.needs_more.one": "Falta {} confirmación de otro verificador antes de publicar.",
    "tip.new": "nuevo",
    "tip.claimed": "en verificación",
    "tip.confirmed": "confirmado",
    "tip.false_alarm": "falsa alarma",
    "tip.unable": "no se pudo verificar",
    "tip.duplicate": "duplicado",
    "tip.disputed": "en disputa",
    "tips.disputed": (
        "Los verificadores no coinciden (confirmado y falsa alarma). No se puede publicar"
        " hasta que una persona que publica anote el resultado que lo resuelve."
    ),
    "tips.settle": "Resolver la disputa (publicador/a)",
    "tips.ruling": "decisión",
    "tip.published": "publicado",
    "tip.closed": "cerrado",
    "channel.web": "formulario web",
    "channel.sms": "SMS",
    "channel.hotline": "línea telefónica",
    "channel.matrix": "Matrix",
    "channel.cap": "fuente CAP",
    "action.claim": "tomó",
    "action.outcome": "resultado",
    "action.publish": "publicó",
    "action.close": "cerró",
    "action.expire": "venció",
    "action.update": "actualizó",
    "yes": "sí",
    "no": "no",
    "state.active": "activa",
    "state.cancelled": "cancelada",
    "state.superseded": "reemplazada",
    "state.expired": "vencida",
    "state.held": "en espera",
    "certainty.confirmed": "confirmada",
    "certainty.unconfirmed": "sin confirmar",
    "certainty.false": "falsa (desmentida)",
    "action.accept": "aceptar",
    "action.hold": "retener",
    "action.reject": "rechazar",
    "now": "ahora mismo",
    "tips.single": "por ahora solo este reporte",
    "ago": "hace {}",
    "in": "en {}",
    "peers.trusted": "De confianza",
    "peers.local": "aquí (tarjetas intercambiadas, avisa trust add)",
    "peers.via_list": "por la lista de confianza {} versión {}, hasta {}",
    "peers.frozen": "la lista venció: sus alertas nuevas quedan en espera",
    "peers.list_expired": "La lista de confianza {} (versión {}) venció el {}: las alertas nuevas"
    " de sus miembros quedan en espera hasta que sus responsables publiquen una versión nueva.",
    "peers.list_expiring": "La lista de confianza {} (versión {}) vence el {}: pida a sus"
    " responsables una versión nueva.",
    "peers.list_refused": "Lista de confianza {}: la última revisión fue rechazada ({}) {}: {}",
    "reason.trustlist_expired": "su origen es de confianza solo por una lista de confianza que"
    " venció: las alertas nuevas esperan revisión hasta que publiquen una versión nueva",
    "reason.equivocation": (
        "el origen firmó dos historias distintas: retenida hasta que decida quien opera el nodo"
    ),
    "peers.withheld": "Retenidos (un checkpoint los mostró y esta aliada no los pasó)",
    "peers.withheld_none": "ninguno",
    "peers.withheld_text": "{} de {}, desde {}",
    "peers.origin_status": "Noticias de esta red",
    "peers.origin_live": "checkpoint a las {}",
    "peers.origin_silent": "sin noticias de {} desde las {}",
    "peers.origin_unknown": "todavía sin checkpoint",
    "peers.equivocation": (
        "{} firmó dos historias distintas (seq {}):"
        " sus alertas nuevas quedan retenidas hasta que decida quien opera el nodo"
    ),
    "peers.equivocation_clear": "Decidido: dejar de retener sus alertas",
}

MESSAGES: Mapping[str, Mapping[str, str]] = {"en": _EN, "es": _ES}


def add(language: str, words: Mapping[str, str]) -> None:
    """Another module's words (the tips page keeps its own next to its code)."""
    table = MESSAGES[language]
    assert isinstance(table, dict)
    table.update(words)


def translator(language: str) -> Callable[[str], str]:
    primary = MESSAGES.get(language, MESSAGES[DEFAULT])
    other = MESSAGES["en" if language == "es" else "es"]

    def t(key: str, count: int | None = None) -> str:
        if count == 1:
            key = f"{key}.one" if f"{key}.one" in primary or f"{key}.one" in other else key
        return primary.get(key) or other.get(key) or key

    return t


def from_accept_language(header: str) -> str | None:
    """The first of our languages the browser asks for, by weight, then by order."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, index, primary))
    return min(ranked)[2] if ranked else None


def choose(request: web.Request) -> tuple[str, bool]:
    """The request's language, and whether the query just switched it (set the cookie)."""
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked, True
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie, False
    browser = from_accept_language(request.headers.get("Accept-Language", ""))
    return browser or DEFAULT, False


_SHIPPED = catalogues.load(LANGUAGES)
for _language in LANGUAGES:
    _words = _SHIPPED.words(_language)
    add(_language, {f"kind.{k}": _words.gettext(m) for k, m in KIND_NAMES.items()})
