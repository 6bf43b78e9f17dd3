"""Errors typed by whose fault they are.

Every failure a caller can see falls in one of these families, so the edges
can map them without guessing: bad input from a client or a peer becomes a
4xx with an ``errcode``; a transport failure to a peer becomes a retry with
backoff; a configuration error names the setting's path and stops start-up.
Nothing here carries alert text, tokens or addresses: messages are safe to
log and to return.
"""

from __future__ import annotations


class AvisaError(Exception):
    """Base of every error Avisa raises on purpose."""


class BadInput(AvisaError):
    """Input from a client or peer that Avisa refuses; maps to a 4xx.

    ``errcode`` is the machine-readable code (``AVISA_…``), ``status`` the
    HTTP status, and the message is human text safe to show the caller.
    """

    def __init__(self, errcode: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadPeerData(BadInput):
    """A peer sent something that fails a protocol rule (not a transport fault)."""


class Unauthorized(BadInput):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(errcode, message, status=401)


class Forbidden(BadInput):
    def __init__(self, message: str) -> None:
        super().__init__("AVISA_FORBIDDEN", message, status=403)


class NotFound(BadInput):
    def __init__(self, message: str) -> None:
        super().__init__("AVISA_NOT_FOUND", message, status=404)


class Conflict(BadInput):
    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(errcode, message, status=409)


class TransportError(AvisaError):
    """Talking to a peer or bridge failed (connection, timeout, 5xx): retry later."""


class ConfigError(AvisaError):
    """A setting is wrong; ``path`` names it (``policy.max_age``, ``node.key``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class KeyFileError(AvisaError):
    """The node key file cannot be read, decrypted or written."""
