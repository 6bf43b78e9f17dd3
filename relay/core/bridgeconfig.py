"""``avisa.toml``'s bridges: Matrix rooms, CAP sources, the SMS line (pure).

Their sections (``[[bridges.matrix]]``, ``[bridges.cap]``, ``[bridges.sms]``) and
the checks types cannot express, cut from ``relay.core.config`` (which decodes the
whole file and calls these checks) so that each module stays one screenful of
rules. The same conventions: a ``ConfigError`` names the setting's path.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from relay.core.errors import ConfigError
from relay.core.model import Certainty, Kind, LangTag
from relay.core.times import DURATION_PATTERN, parse_duration

Duration = Annotated[str, Meta(pattern=DURATION_PATTERN)]


def data_relative(value: str) -> bool:
    """A file setting names a path inside the data directory (no absolute path, no ..)."""
    return bool(value) and not value.startswith("/") and ".." not in value.split("/")


# An area code as alerts carry them, or a geohash prefix (1-9 characters).
ROUTE_AREA_PATTERN = (
    r"^(fips:[0-9]{2,5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?|[0-9b-hjkmnp-z]{1,9})$"
)
ROOM_PATTERN = r"^[#!][^:\s]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}$"
USER_ID_PATTERN = r"^@[a-z0-9._=/+-]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}$"
RouteArea = Annotated[str, Meta(pattern=ROUTE_AREA_PATTERN)]
RoomRef = Annotated[str, Meta(pattern=ROOM_PATTERN)]
UserId = Annotated[str, Meta(pattern=USER_ID_PATTERN)]


class MatrixRoute(Struct, forbid_unknown_fields=True, frozen=True):
    """One room and what reaches it; empty lists mean "all"."""

    room: RoomRef
    areas: Annotated[list[RouteArea], Meta(max_length=256)] = []
    kinds: list[Kind] = []
    languages: Annotated[list[LangTag], Meta(max_length=8)] = []
    # None: the node's policy.bridge_certainties.
    certainties: list[Certainty] | None = None
    encrypted: bool = False
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"
    msgtype: Literal["m.notice", "m.text"] = "m.notice"


class MatrixBridge(Struct, forbid_unknown_fields=True, frozen=True):
    homeserver: str
    user_id: UserId
    routes: Annotated[list[MatrixRoute], Meta(max_length=64)]
    password_file: str = ""
    access_token_file: str = ""
    device_name: Annotated[str, Meta(max_length=100)] = "Avisa relay"
    expiry_check: Duration = "1m"
    retry_max: Duration = "5m"


class CapSource(Struct, forbid_unknown_fields=True, frozen=True):
    """A CAP message or an Atom/RSS index of them, polled for tips (DESIGN §12)."""

    url: Annotated[str, Meta(max_length=2000)]
    every: Duration = "2m"
    # Shown in status instead of the URL (which may carry a key in its query).
    name: Annotated[str, Meta(max_length=100)] = ""


class CapBridge(Struct, forbid_unknown_fields=True, frozen=True):
    """``[bridges.cap]``: the CAP 1.2 / Atom export, and CAP sources read as tips."""

    public: bool = False
    # None: the node's policy.bridge_certainties (by default confirmed and false).
    certainties: list[Certainty] | None = None
    max_entries: Annotated[int, Meta(ge=1, le=5000)] = 1000
    max_document_bytes: Annotated[int, Meta(ge=4096, le=16 * 1024 * 1024)] = 2 * 1024 * 1024
    sources: Annotated[list[CapSource], Meta(max_length=32)] = []


KeywordWord = Annotated[str, Meta(pattern=r"^[^\W_]{2,20}$")]
SmsLang = LangTag  # one of [node] languages (checked with the node section)
Zip = Annotated[str, Meta(pattern=r"^[0-9]{5}$")]
HelpText = Annotated[str, Meta(min_length=1, max_length=300)]


class SmsKeyword(Struct, forbid_unknown_fields=True, frozen=True):
    """A word that subscribes its sender, in ``lang``, to alerts for ``areas``."""

    word: KeywordWord
    lang: SmsLang
    areas: Annotated[list[RouteArea], Meta(min_length=1, max_length=64)]


class SmsBridge(Struct, forbid_unknown_fields=True, frozen=True):
    """``[bridges.sms]``: one text line through Kannel or a Twilio-compatible API (§11)."""

    sender: Annotated[str, Meta(pattern=r"^\+?[0-9A-Za-z]{3,16}$")]
    keywords: Annotated[list[SmsKeyword], Meta(min_length=1, max_length=16)]
    gateway: Literal["kannel", "twilio"] = "kannel"
    sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    username: Annotated[str, Meta(max_length=100)] = "avisa"
    password_file: str = "sms.pass"  # noqa: S105 - a file name
    inbound_secret_file: str = "sms-inbound.secret"  # noqa: S105 - a file name
    # Twilio: the account the Messages API is called for (username is not used).
    account_sid: Annotated[str, Meta(pattern=r"^(AC[0-9a-f]{32})?$")] = ""
    throughput: Annotated[int, Meta(ge=0, le=1000)] = 30  # messages per second; 0: unpaced
    certainties: list[Certainty] = msgspec.field(default_factory=lambda: ["confirmed", "false"])
    tips: bool = True
    # Spanish accents are not GSM-7: "ucs2" keeps them (70 characters a segment),
    # "transliterate" writes a e i o u (160 a segment). See docs/sms.md.
    accents: Literal["ucs2", "transliterate"] = "ucs2"
    max_segments: Annotated[int, Meta(ge=1, le=10)] = 4
    region: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "US"
    zips: Annotated[
        dict[Zip, Annotated[list[RouteArea], Meta(min_length=1, max_length=16)]],
        Meta(max_length=5000),
    ] = {}
    help: dict[SmsLang, HelpText] = {}
    retry_max: Duration = "5m"
    # A message whose send was cut short by a crash waits this long for its
    # delivery report before it is sent again (docs/sms.md, "exactly once").
    in_doubt_grace: Duration = "10m"
    max_replies_per_hour: Annotated[int, Meta(ge=0, le=100_000)] = 500  # answers, in total


class BridgesSection(Struct, forbid_unknown_fields=True, frozen=True):
    matrix: Annotated[list[MatrixBridge], Meta(max_length=8)] = []
    cap: CapBridge = CapBridge()
    sms: SmsBridge | None = None


def check_matrix(bridge: MatrixBridge, where: str, allowed: list[Certainty]) -> None:
    if not re.match(r"^https?://[^\s/?#]+/?$", bridge.homeserver):
        raise ConfigError(f"{where}.homeserver", "must be http(s)://HOST[:PORT], no path")
    secrets = [name for name in ("password_file", "access_token_file") if getattr(bridge, name)]
    if len(secrets) != 1:
        raise ConfigError(where, "give exactly one of password_file or access_token_file")
    if not data_relative(getattr(bridge, secrets[0])):
        raise ConfigError(f"{where}.{secrets[0]}", "must be a path inside the data directory")
    for name in ("expiry_check", "retry_max"):
        if parse_duration(getattr(bridge, name)) < timedelta(seconds=1):
            raise ConfigError(f"{where}.{name}", "must be at least 1s")
    if not bridge.routes:
        raise ConfigError(f"{where}.routes", "a bridge needs at least one route")
    rooms = [route.room for route in bridge.routes]
    for index, route in enumerate(bridge.routes):
        _check_route(route, f"{where}.routes[{index}]", allowed)
        if route.room in rooms[:index]:
            raise ConfigError(
                f"{where}.routes[{index}].room", "another route of this bridge has it"
            )


_SOURCE_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s#]*)?$")


def check_cap(cap: CapBridge, allowed: list[Certainty]) -> None:
    values = cap.certainties or []
    if len(set(values)) != len(values):
        raise ConfigError("bridges.cap.certainties", "lists a value twice")
    outside = set(values) - set(allowed)
    if outside:
        raise ConfigError(
            "bridges.cap.certainties",
            f"{sorted(outside)} not in policy.bridge_certainties {allowed}",
        )
    urls: list[str] = []
    for index, source in enumerate(cap.sources):
        where = f"bridges.cap.sources[{index}]"
        if not _SOURCE_URL.match(source.url):
            raise ConfigError(f"{where}.url", "must be an http:// or https:// URL (no user@)")
        if source.url in urls:
            raise ConfigError(f"{where}.url", "another source has it")
        urls.append(source.url)
        if parse_duration(source.every) < timedelta(seconds=5):
            raise ConfigError(f"{where}.every", "must be at least 5s")


# Words the line itself answers (DESIGN §11); a keyword may not take one of them.
SMS_STOP_WORDS = ("STOP", "ALTO", "STOPALL", "END", "CANCEL", "UNSUBSCRIBE", "QUIT", "BAJA")
SMS_RESERVED = frozenset((*SMS_STOP_WORDS, "START", "UNSTOP", "YES", "HELP", "AYUDA", "INFO"))


def fold_word(word: str) -> str:
    """Upper case without accents: how keywords are compared (``Ayúda`` → ``AYUDA``)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def check_sms(sms: SmsBridge, languages: Sequence[str]) -> None:
    """``languages``: the node's (``[node] languages``): a keyword's and a help text's
    language must be one of them, or its subscribers would be answered in another."""
    where = "bridges.sms"
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", sms.sendsms_url):
        raise ConfigError(f"{where}.sendsms_url", "must be an http(s):// URL without a query")
    for name in ("password_file", "inbound_secret_file"):
        if not data_relative(getattr(sms, name)):
            raise ConfigError(f"{where}.{name}", "must be a path inside the data directory")
    if sms.gateway == "twilio" and not sms.account_sid:
        raise ConfigError(f"{where}.account_sid", "the twilio gateway needs an account_sid")
    if len(set(sms.certainties)) != len(sms.certainties):
        raise ConfigError(f"{where}.certainties", "lists a certainty twice")
    words: list[str] = []
    for index, keyword in enumerate(sms.keywords):
        folded = fold_word(keyword.word)
        if folded in SMS_RESERVED:
            raise ConfigError(f"{where}.keywords[{index}].word", "is a reserved word (STOP, HELP…)")
        if folded in words:
            raise ConfigError(f"{where}.keywords[{index}].word", "another keyword has it")
        words.append(folded)
        if keyword.lang not in languages:
            raise ConfigError(f"{where}.keywords[{index}].lang", _unserved(keyword.lang))
    for lang in sms.help:
        if lang not in languages:
            raise ConfigError(f"{where}.help.{lang}", _unserved(lang))
    for name in ("retry_max", "in_doubt_grace"):
        if parse_duration(getattr(sms, name)) < timedelta(seconds=1):
            raise ConfigError(f"{where}.{name}", "must be at least 1s")


def _unserved(lang: str) -> str:
    return f"{lang!r} is not one of [node] languages (add it there, with its catalogue)"


def _check_route(route: MatrixRoute, where: str, allowed: list[Certainty]) -> None:
    for name in ("areas", "kinds", "languages", "certainties"):
        values = getattr(route, name) or []
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}.{name}", "lists a value twice")
    outside = set(route.certainties or ()) - set(allowed)
    if outside:
        raise ConfigError(
            f"{where}.certainties",
            f"{sorted(outside)} not in policy.bridge_certainties {allowed}",
        )
    if route.timezone != "UTC":
        try:
            zoneinfo.ZoneInfo(route.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}.timezone", "not an IANA time zone name") from None
