"""HTTP edges shared by the local API and federation: bodies in, errors out.

Request bodies are read under a byte limit and a deadline (a slow-loris body
gets 408, an oversized one 413 before it is buffered), must be
``application/json``, and pass a strict JSON reading before typed decoding:
no duplicate keys, no floats, NaN or Infinity, no ``-0``, no integer beyond
±2^53, no lone surrogates, no nesting deeper than 32. Two parsers therefore
cannot disagree about what a body said.

One middleware turns every error into ``{"errcode", "error"}``: ``BadInput``
keeps its status, aiohttp's own 4xx get an errcode, anything unexpected is
logged and answered with a bare 500 that carries no detail.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import msgspec
import structlog
from aiohttp import web

from relay.errors import BadInput

T = TypeVar("T")
MAX_DEPTH = 32
MAX_INT = 2**53
_MAX_INT_DIGITS = len(str(MAX_INT))
BODY_DEADLINE_S = 10.0
_encoder = msgspec.json.Encoder()
_log = structlog.get_logger("avisa.http")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadInput("AVISA_BAD_JSON", f"duplicate key {key[:40]!r}")
        result[key] = value
    return result


def _no_float(text: str) -> NoReturn:
    raise BadInput("AVISA_BAD_JSON", "numbers must be integers")


def _int(text: str) -> int:
    if text.startswith("-0"):
        raise BadInput("AVISA_BAD_JSON", "-0 is not allowed")
    # Checked before int(): Python refuses to convert more than 4300 digits at all.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise BadInput("AVISA_BAD_JSON", "integer out of range (±2^53)")
    value = int(text)
    if not -MAX_INT < value < MAX_INT:
        raise BadInput("AVISA_BAD_JSON", "integer out of range (±2^53)")
    return value


def _check_tree(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise BadInput("AVISA_BAD_JSON", f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput("AVISA_BAD_JSON", "lone surrogate in a string") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_tree(key, depth + 1)
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)


def strict_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("AVISA_BAD_JSON", "body is not UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_int=_int,
            parse_constant=_no_float,
        )
    except RecursionError:
        raise BadInput("AVISA_BAD_JSON", f"nested deeper than {MAX_DEPTH}") from None
    except json.JSONDecodeError as exc:
        raise BadInput("AVISA_BAD_JSON", f"not JSON: {exc.msg} at byte {exc.pos}") from None
    _check_tree(value)
    return value


_DIGITS = re.compile(r"[0-9]{1,18}")


def ascii_count(text: str | None) -> int | None:
    """A non-negative count or position written in ASCII digits, else None.

    ``str.isdigit`` also says yes to "²" (which ``int`` refuses) and to
    "٣" (which ``int`` reads as 3): a query must mean one thing to everyone.
    """
    if text is None or not _DIGITS.fullmatch(text):
        return None
    return int(text)


def convert(value: Any, type_: type[T], errcode: str = "AVISA_BAD_REQUEST") -> T:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise BadInput(errcode, str(exc)) from None


async def read_body(request: web.Request, limit: int) -> bytes:
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadInput("AVISA_UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json", 415)
    if request.content_length is not None and request.content_length > limit:
        raise BadInput("AVISA_TOO_LARGE", f"body over {limit} bytes", 413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_DEADLINE_S):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise BadInput("AVISA_TOO_LARGE", f"body over {limit} bytes", 413)
                chunks.append(chunk)
    except TimeoutError:
        raise BadInput("AVISA_TIMEOUT", "request body too slow", 408) from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int, type_: type[T]) -> T:
    return convert(strict_loads(await read_body(request, limit)), type_)


def respond(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")


def error_response(status: int, errcode: str, message: str) -> web.Response:
    return respond({"errcode": errcode, "error": message}, status)


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
            return await handler(request)
        except BadInput as exc:
            on_error(exc.errcode, exc.status)
            return error_response(exc.status, exc.errcode, exc.message)
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
