"""Strict JSON: the one reading of untrusted JSON text that two parsers cannot disagree on.

``strict_loads`` refuses duplicate keys, floats, NaN and Infinity, ``-0``,
integers beyond ±2^53, lone surrogates and nesting deeper than 32, each with
a ``BadInput`` (``AVISA_BAD_JSON``). It is pure (no I/O), so the core can use
it as well as the HTTP edges (``relay.runtime.httpio``).

It walks the whole document in Python, so the hot paths (envelopes and
federation transactions, whose values are only strings, lists and objects)
first try a cheaper proof of the same thing: bytes identical to msgspec's
encoding of what msgspec decoded from them hold no duplicate key, no number,
no lone surrogate (msgspec refuses those while decoding) and no nesting
beyond the type's own. Only bytes that fail that comparison are walked.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from relay.core.errors import BadInput

MAX_DEPTH = 32
MAX_INT = 2**53
_MAX_INT_DIGITS = len(str(MAX_INT))


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
