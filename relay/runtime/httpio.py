"""HTTP edges shared by the local API and federation: bodies in, errors out.

Request bodies are read under a byte limit and a deadline (a slow-loris body
gets 408, an oversized one 413 before it is buffered), must be
``application/json``, and pass a strict JSON reading before typed decoding
(``relay.core.strictjson``). Two parsers therefore cannot disagree about what a
body said.

Forms are read one way too (``read_form``): bounded in bytes and fields, UTF-8
or a 400. Header bytes that are not UTF-8 (aiohttp hands them on as lone
surrogates, which crash whoever encodes them again) are refused with a 400 by
the middleware before any handler runs; the Cookie header is the one exception
(another program on the same host may have set any bytes there), so cookies
are read only through ``cookie``, which drops what is not plain ASCII.

One middleware turns every error into ``{"errcode", "error"}``: a
``BadInput`` gets the status ``status_for`` maps its errcode and kind to (the
core's errors carry no HTTP status), aiohttp's own 4xx get an errcode, anything unexpected is
logged and answered with a bare 500 that carries no detail.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

import msgspec
import structlog
from aiohttp import web
from multidict import MultiDict

from relay.core import readable
from relay.core.errors import BadInput, Conflict, Forbidden, Gone, NotFound, Unauthorized
from relay.core.strictjson import strict_loads

__all__ = ["strict_loads"]  # re-exported: the shell's one way to read JSON

T = TypeVar("T")
BODY_DEADLINE_S = 10.0
_encoder = msgspec.json.Encoder()
_log = structlog.get_logger("avisa.http")


_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_count(text: str | None) -> int | None:
    """A non-negative count or position written in ASCII digits, else None.

    ``str.isdigit`` also says yes to "²" (which ``int`` refuses) and to
    "٣" (which ``int`` reads as 3): a query must mean one thing to everyone.
    """
    if text is None or not _DIGITS.fullmatch(text):
        return None
    return int(text)


def authorization(request: web.Request) -> str | None:
    """The one ``Authorization`` header, or None; two of them are refused (401),
    because a proxy that reads the last could see another caller than we do."""
    values = request.headers.getall("Authorization", [])
    if len(values) > 1:
        raise Unauthorized("AVISA_UNAUTHORIZED", "send one Authorization header, not several")
    return values[0] if values else None


def convert(value: Any, type_: type[T], errcode: str = "AVISA_BAD_REQUEST") -> T:
    """Typed decoding; a failure names the field, what it accepts and an example."""
    try:
        return readable.convert(value, type_)
    except readable.Invalid as exc:
        raise BadInput(errcode, str(exc)) from None


async def read_body(
    request: web.Request, limit: int, media_type: str = "application/json"
) -> bytes:
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != media_type:
        raise BadInput("AVISA_UNSUPPORTED_MEDIA_TYPE", f"send Content-Type: {media_type}")
    return await read_bounded(request, limit)


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """A body of any media type, under ``limit`` bytes (413) and the deadline (408)."""
    if request.content_length is not None and request.content_length > limit:
        raise BadInput("AVISA_TOO_LARGE", f"body over {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_DEADLINE_S):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise BadInput("AVISA_TOO_LARGE", f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BadInput("AVISA_TIMEOUT", "request body too slow") from None
    return b"".join(chunks)


FORM_TYPE: Final = "application/x-www-form-urlencoded"
_COOKIE_VALUE = re.compile(r"[\x21-\x7e]{1,256}")


async def read_form(request: web.Request, limit: int, max_fields: int) -> MultiDict[str]:
    """A urlencoded form of at most ``limit`` bytes and ``max_fields`` fields, in UTF-8."""
    body = await read_body(request, limit, FORM_TYPE)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields, errors="strict")
    except (UnicodeDecodeError, ValueError):
        sentence = f"not a form of at most {max_fields} UTF-8 fields"
        raise BadInput("AVISA_BAD_FORM", sentence) from None
    return MultiDict(pairs)


def cookie(request: web.Request, name: str) -> str | None:
    """A cookie's value if it is plain printable ASCII (at most 256 characters), else None."""
    value = request.cookies.get(name)
    return value if value is not None and _COOKIE_VALUE.fullmatch(value) else None


def _check_headers(request: web.Request) -> None:
    for name, value in request.raw_headers:
        if value.isascii() or name.lower() == b"cookie":
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("AVISA_BAD_HEADER", "a header is not UTF-8 text") from None


async def read_json(request: web.Request, limit: int, type_: type[T]) -> T:
    return convert(strict_loads(await read_body(request, limit)), type_)


def respond(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def error_response(status: int, errcode: str, message: str) -> web.Response:
    return respond({"errcode": errcode, "error": message}, status)


#: The one map from what is wrong to an HTTP status: by the error's kind first, then
#: by errcode; any other ``BadInput`` is a 400.
STATUS_BY_ERRCODE: dict[str, int] = {
    "AVISA_TIMEOUT": 408,
    "AVISA_TOO_LARGE": 413,
    "AVISA_UNSUPPORTED_MEDIA_TYPE": 415,
    "AVISA_TOO_MANY_REQUESTS": 429,
    "AVISA_RATE_LIMITED": 429,
    "AVISA_TOO_MANY_STREAMS": 429,
    "AVISA_DESK_FULL": 429,
    "AVISA_TOO_MANY_TIPS": 429,
}
STATUS_BY_KIND: tuple[tuple[type[BadInput], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Gone, 410),
)


def status_for(error: BadInput) -> int:
    """The HTTP status that answers ``error``."""
    for kind, status in STATUS_BY_KIND:
        if isinstance(error, kind):
            return status
    return STATUS_BY_ERRCODE.get(error.errcode, 400)


_HTTP_CODES = {
    404: "AVISA_NOT_FOUND",
    405: "AVISA_METHOD_NOT_ALLOWED",
    413: "AVISA_TOO_LARGE",
    400: "AVISA_BAD_REQUEST",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_middleware(on_error: Callable[[str, int], None]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            _check_headers(request)
            return await handler(request)
        except BadInput as exc:
            status = status_for(exc)
            on_error(exc.errcode, status)
            return error_response(status, exc.errcode, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            errcode = _HTTP_CODES.get(exc.status, "AVISA_HTTP_ERROR")
            on_error(errcode, exc.status)
            return error_response(exc.status, errcode, exc.reason)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:  # noqa: BLE001 - the last line of defence: no trace leaks
            _log.exception("internal error", path=request.path, method=request.method)
            on_error("AVISA_INTERNAL", 500)
            return error_response(500, "AVISA_INTERNAL", "internal error (logged)")

    return middleware
