"""Requests that fail before they are requests: HTTP framing errors.

aiohttp answers a request it cannot parse (a request line or header over
8190 bytes, both ``Content-Length`` and ``Transfer-Encoding``, a bad method or
chunk size) before any route or middleware runs: with a ``text/plain`` 400
that quotes the offending input back, and a multi-line traceback on the
node's log whose message holds the start of the request line verbatim. A
phone number or token in a query string would land in the log, before any
authentication.

``FramingRunner`` is an ``AppRunner`` whose connections answer such a request
with the contract's ``{"errcode", "error"}`` in fixed words, and log one line
naming only the status and the parser's error class (never its message,
which quotes the input). The connection is closed, as aiohttp does.

aiohttp's own line limits are not the contract's: it measures the request
target alone (a request line could reach 8,203 bytes) and a header's name and
value apart. ``line_over_limit`` measures what docs/protocol.md §6.2 names,
the request line ``METHOD SP target SP HTTP/1.1`` and each header line
``name ": " value``, and such a request gets the same answer before any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from relay.runtime.httpio import error_response

_log = structlog.get_logger("avisa.http")
_ERRORS = {
    400: ("AVISA_BAD_REQUEST", "malformed HTTP request"),
    413: ("AVISA_TOO_LARGE", "request too large"),
    431: ("AVISA_TOO_LARGE", "request header fields too large"),
}
_INTERNAL = ("AVISA_INTERNAL", "internal error (logged)")
#: The longest request line or header line, in bytes, CRLF not counted.
MAX_LINE: Final = 8190
_VERSION_BYTES: Final = len("HTTP/1.1")


def line_over_limit(request: BaseRequest) -> bool:
    """The request line or a header line (as ``name: value``) is over ``MAX_LINE`` bytes."""
    target = len(request.raw_path.encode("utf-8", "surrogateescape"))
    if len(request.method) + 1 + target + 1 + _VERSION_BYTES > MAX_LINE:
        return True
    return any(len(name) + 2 + len(value) > MAX_LINE for name, value in request.raw_headers)


class _FramingHandler(RequestHandler):
    """A connection whose parse errors answer in JSON and log one redacted line."""

    on_error: Callable[[str, int], None] | None = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response is under way
            raise ConnectionError("response already started")
        errcode, text = _ERRORS.get(status, _INTERNAL if status >= 500 else _ERRORS[400])
        _log.warning(
            "malformed http request",
            status=status,
            errcode=errcode,
            error=type(exc).__name__ if exc is not None else None,
        )
        if self.on_error is not None:
            self.on_error(errcode, status)
        response = error_response(status, errcode, text)
        response.force_close()
        return response

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[StreamResponse]],
    ) -> tuple[StreamResponse, bool]:
        if line_over_limit(request):
            request_handler = self._line_too_long
        return await super()._handle_request(request, start_time, request_handler)

    async def _line_too_long(self, request: BaseRequest) -> StreamResponse:
        return self.handle_error(request, 400, LineTooLong("", MAX_LINE))


class _FramingServer(web.Server):
    on_error: Callable[[str, int], None] | None = None

    def __call__(self) -> RequestHandler:
        handler = _FramingHandler(self, loop=self._loop, **self._kwargs)
        handler.on_error = self.on_error
        return handler


class FramingRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are ``_FramingHandler``s."""

    def __init__(
        self, app: web.Application, on_error: Callable[[str, int], None], **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._on_error = on_error

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server inside Application; its class decides which
        # RequestHandler each connection gets, and nothing else differs.
        server.__class__ = _FramingServer
        assert isinstance(server, _FramingServer)
        server.on_error = self._on_error
        return server
