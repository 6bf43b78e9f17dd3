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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
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
