"""Errors of the core say what is wrong; the HTTP layer alone says which status that is."""

from __future__ import annotations

import pytest

from relay.core.errors import (
    BadInput,
    BadPeerData,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Unauthorized,
)
from relay.runtime.httpio import status_for


def test_core_errors_carry_no_http_status() -> None:
    for error in (BadInput("AVISA_X", "x"), Unauthorized("AVISA_Y", "y"), NotFound("z")):
        assert not hasattr(error, "status")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadInput("AVISA_BAD_REQUEST", "?"), 400),
        (BadPeerData("AVISA_BAD_ENVELOPE", "?"), 400),
        (Unauthorized("AVISA_UNAUTHORIZED", "?"), 401),
        (Forbidden("?"), 403),
        (NotFound("?"), 404),
        (Conflict("AVISA_CANCELLED", "?"), 409),
        (BadInput("AVISA_TIMEOUT", "?"), 408),
        (BadInput("AVISA_TOO_LARGE", "?"), 413),
        (BadPeerData("AVISA_TOO_LARGE", "?"), 413),
        (BadInput("AVISA_UNSUPPORTED_MEDIA_TYPE", "?"), 415),
        (BadInput("AVISA_TOO_MANY_REQUESTS", "?"), 429),
        (BadInput("AVISA_RATE_LIMITED", "?"), 429),
        (BadInput("AVISA_TOO_MANY_STREAMS", "?"), 429),
        (BadInput("AVISA_DESK_FULL", "?"), 429),
    ],
)
def test_one_table_maps_what_is_wrong_to_a_status(error: BadInput, status: int) -> None:
    assert status_for(error) == status


def test_the_kind_decides_before_the_errcode() -> None:
    """One errcode may be a conflict in one place and gone in another."""
    assert status_for(Conflict("AVISA_EXPIRED", "?")) == 409
    assert status_for(Gone("AVISA_EXPIRED", "?")) == 410
