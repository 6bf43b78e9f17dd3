"""Errors typed by whose fault they are.

Every failure a caller can see falls in one of these families, so the edges
can map them without guessing: bad input from a client or a peer carries an
``errcode`` (and its kind: unauthorized, forbidden, not found, conflict),
which the HTTP layer alone turns into a 4xx; a transport failure to a peer becomes a retry with
backoff; a configuration error names the setting's path and stops start-up.
Nothing here carries alert text, tokens or addresses: messages are safe to
log and to return.
"""

from __future__ import annotations


class AvisaError(Exception):
    """Base of every error Avisa raises on purpose."""


class BadInput(AvisaError):
    """Input from a client or peer that Avisa refuses.

    ``errcode`` says what is wrong (``AVISA_…``, machine-readable) and the
    message says it to a person (safe to show the caller). Which HTTP status
    that is, is the HTTP layer's business (``relay.runtime.httpio.status_for``):
    code that is not HTTP (the pipeline, the CLI) never needs one.
    """

    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadPeerData(BadInput):
    """A peer sent something that fails a protocol rule (not a transport fault)."""


class Unauthorized(BadInput):
    """Who is asking is unknown or unproven (no token, a bad signature)."""


class Forbidden(BadInput):
    """The caller is known (or claims to be) but may not do this."""

    def __init__(self, message: str, errcode: str = "AVISA_FORBIDDEN") -> None:
        super().__init__(errcode, message)


class NotFound(BadInput):
    """What the request names does not exist (here, or any more)."""

    def __init__(self, message: str) -> None:
        super().__init__("AVISA_NOT_FOUND", message)


class Gone(BadInput):
    """What the request names existed, and has expired or been withdrawn."""


class Conflict(BadInput):
    """The request is well formed but clashes with the state (cancelled, expired)."""


class TransportError(AvisaError):
    """Talking to a peer or bridge failed (connection, timeout, 5xx): retry later."""


class ConfigError(AvisaError):
    """A setting is wrong; ``path`` names it (``policy.max_age``, ``node.key``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class KeyFileError(AvisaError):
    """The node key file cannot be read, decrypted or written."""
