"""Decoder errors as sentences a volunteer can act on.

msgspec reports what failed in its own terms (``Expected `str` matching regex
'^[0-9]{1,6}[smhd]$' - at `$.expires_in```). ``convert`` decodes the same way
and, on failure, walks the target type along the error's path to the field
that failed, so the sentence can say what that field accepts, with an
example, and what it was given: ``--expires-in: got '99y'; expected a
duration: a whole number and s, m, h or d, for example 90m, 4h or 2d``.

The setting is named by the caller's ``name`` function (``policy.on_fail`` in
``avisa.toml``, ``--expires-in`` on the command line, ``expires_in`` in the
API), so each edge names things the way its reader typed them. Patterns are
described once, in ``ACCEPTS``, keyed by the pattern the type declares.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from relay.core.model import (
    AGENCY_PATTERN,
    ALERT_ID_PATTERN,
    AREA_CODE_PATTERN,
    GEOHASH_PATTERN,
    LANG_PATTERN,
    NETWORK_PATTERN,
)
from relay.core.times import DURATION_PATTERN

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Accepts:
    what: str
    example: str


ACCEPTS: dict[str, Accepts] = {
    DURATION_PATTERN: Accepts(
        "a duration: a whole number and s, m, h or d (no spaces)", "90m, 4h or 7d"
    ),
    GEOHASH_PATTERN: Accepts(
        "a geohash of 4 to 9 characters (digits and letters except a, i, l, o)", "9q4gch"
    ),
    AREA_CODE_PATTERN: Accepts(
        "an area code: fips: and a 2-5 digit FIPS code, zip: and 5 digits,"
        " or iso: and a country or region code",
        "fips:06111, zip:93030 or iso:us-ca",
    ),
    LANG_PATTERN: Accepts("a language tag (2 or 3 lowercase letters)", "es, en or es-MX"),
    AGENCY_PATTERN: Accepts("a lowercase word", "ice, cbp, police or unknown"),
    NETWORK_PATTERN: Accepts(
        "a network id, 2 to 63 long: labels of lowercase letters, digits and '-' joined"
        " by single dots, each starting with a letter and not ending with '-'",
        "ventura, la-rrn or oc.resilience",
    ),
    ALERT_ID_PATTERN: Accepts("an alert id NETWORK/ULID", "ventura/01JEXAMPLE0000000000000000"),
}

_MESSAGE = re.compile(r"^(?P<problem>.*?)(?: - at `(?P<path>[^`]*)`(?: in `(?P<parent>[^`]*)`)?)?$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
ANY_KEY = "[...]"  # msgspec's path step into a dict, whichever key it was
_FIELD_IN_PROBLEM = re.compile(r"field `([^`]*)`")
Namer = Callable[[str], str]


def convert(
    value: Any,
    type_: type[T],
    name: Namer = lambda path: path,
    accepts: Mapping[str, Accepts] | None = None,
) -> T:
    """``msgspec.convert``, raising ``Invalid`` with a readable sentence on failure."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise Invalid(*explain(str(exc), type_, value, name, accepts)) from None


class Invalid(ValueError):
    """``path`` is the setting as the caller names it; ``str()`` the whole sentence."""

    def __init__(self, path: str, sentence: str) -> None:
        super().__init__(f"{path}: {sentence}" if path else sentence)
        self.path = path
        self.sentence = sentence


def explain(
    message: str,
    type_: Any,
    value: Any,
    name: Namer = lambda path: path,
    accepts: Mapping[str, Accepts] | None = None,
) -> tuple[str, str]:
    """(the setting as ``name`` spells it, a sentence) for a msgspec error message."""
    table = {**ACCEPTS, **(accepts or {})}
    match = _MESSAGE.match(message)
    assert match is not None  # the pattern matches any text
    problem = match.group("problem")
    is_key = match.group("parent") is not None
    segments = _segments(match.group("parent") if is_key else match.group("path") or "$")
    field = _FIELD_IN_PROBLEM.search(problem)
    info, got = _walk(inspect.type_info(type_), value, segments)
    if field and problem.startswith("Object missing required field"):
        segments.append(field.group(1))
        return name(_dotted(segments)), "is required"
    if field and problem.startswith("Object contains unknown field"):
        known = _field_names(info)
        hint = f"; known here: {', '.join(known)}" if known else ""
        return name(_dotted(segments)), f"unknown setting '{field.group(1)}'{hint}"
    if is_key and isinstance(info, inspect.DictType):
        key_type: Any = info.key_type
        info, got = key_type, _bad_key(got, key_type)
    return name(_dotted(segments)), _sentence(problem, info, got, table)


def _segments(path: str) -> list[str | int]:
    return [
        str(key) if key else ANY_KEY if index == "..." else int(index)
        for key, index in _SEGMENT.findall(path.removeprefix("$"))
    ]


def _dotted(segments: list[str | int]) -> str:
    text = ""
    for segment in segments:
        if segment == ANY_KEY:
            text += ANY_KEY
        else:
            text += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return text.lstrip(".")


def _walk(info: Any, value: Any, segments: list[str | int]) -> tuple[Any, Any]:
    for segment in segments:
        info = _unwrap(info, value)
        if isinstance(info, inspect.StructType):
            found = next((f for f in info.fields if f.encode_name == segment), None)
            info = found.type if found else None
        elif isinstance(info, inspect.ListType | inspect.SetType | inspect.VarTupleType):
            info = info.item_type
        elif isinstance(info, inspect.DictType):
            info = info.value_type
        try:
            value = value[segment]
        except (KeyError, IndexError, TypeError):
            value = None
    return _unwrap(info, value), value


def _unwrap(info: Any, value: Any) -> Any:
    """The member of an optional or union type that the value was meant for."""
    if isinstance(info, inspect.UnionType):
        members = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(members) == 1 or value is not None:
            return members[0]
    return info


def _field_names(info: Any) -> list[str]:
    if isinstance(info, inspect.StructType):
        return [f.encode_name for f in info.fields]
    return []


def _bad_key(mapping: Any, key_type: Any) -> Any:
    if not isinstance(mapping, dict):
        return None
    pattern = getattr(key_type, "pattern", None)
    for key in mapping:
        if not isinstance(key, str) or pattern is None or not re.search(pattern, key):
            return key
    return None


def _sentence(problem: str, info: Any, got: Any, table: Mapping[str, Accepts]) -> str:
    shown = f"got {got!r}; " if isinstance(got, str | int | float) and len(repr(got)) < 80 else ""
    if isinstance(info, inspect.LiteralType):
        return f"{shown}expected one of {', '.join(str(v) for v in info.values)}"
    if isinstance(info, inspect.StrType) and info.pattern is not None and info.pattern in table:
        accepts = table[info.pattern]
        hint = _did_you_mean(info.pattern, got)
        return f"{shown}expected {accepts.what}, for example {accepts.example}{hint}"
    if isinstance(info, inspect.StrType) and problem.startswith("Expected `str` of length"):
        return f"{shown}expected text of {_bounds(info.min_length, info.max_length)} characters"
    if isinstance(info, inspect.IntType):
        return f"{shown}expected a whole number {_range(info.ge, info.le)}".rstrip()
    if isinstance(info, inspect.DateTimeType):
        return f"{shown}expected a time in RFC 3339 with a zone, for example 2026-12-06T10:30:00Z"
    if isinstance(info, inspect.ListType | inspect.DictType) and "length" in problem:
        return f"{shown}expected {_bounds(info.min_length, info.max_length)} entries"
    if isinstance(info, inspect.BoolType):
        return f"{shown}expected true or false"
    return problem


def _did_you_mean(pattern: str, got: Any) -> str:
    if pattern == AREA_CODE_PATTERN and isinstance(got, str) and re.fullmatch(r"[0-9]{2,5}", got):
        return f". Did you mean fips:{got}?"
    return ""


def _bounds(low: int | None, high: int | None) -> str:
    if low and high:
        return f"{low} to {high}"
    return f"at most {high}" if high is not None else f"at least {low or 0}"


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"of at least {low}"
    return f"of at most {high}" if high is not None else ""
