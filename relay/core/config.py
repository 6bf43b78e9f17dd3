"""``avisa.toml``: one typed msgspec decode, then semantic checks.

The decode rejects unknown keys and wrong types anywhere in the file; its
error names the setting (``policy.max_age``, ``bridges.matrix[0].routes[1].room``).
Semantic checks that types
cannot express (a listen address that parses, durations that make sense
together) raise ``ConfigError`` with the same kind of path. The result is
immutable; the running node builds its ``Policy`` from it plus the peers the
operator trusted (kept in the store, managed by ``avisa trust``).

Pure: ``parse`` takes the file's bytes; ``relay.storage.configfile`` reads it.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from datetime import timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from relay.core import readable
from relay.core.errors import ConfigError
from relay.core.model import CERTAINTIES, Certainty, Kind, LangTag, Network
from relay.core.times import DURATION_PATTERN, parse_duration

CONFIG_NAME = "avisa.toml"
KEY_NAME = "node.key"
TOKEN_NAME = "operator.token"  # noqa: S105 - a file name, not a secret
DB_NAME = "avisa.db"

Duration = Annotated[str, Meta(pattern=DURATION_PATTERN)]


class NodeSection(Struct, forbid_unknown_fields=True, frozen=True):
    network: Network
    listen: str = "127.0.0.1:8470"
    url: str = ""
    passphrase_file: str = ""


class PolicySection(Struct, forbid_unknown_fields=True, frozen=True):
    max_age: Duration = "7d"
    rotation_grace: Duration = "1d"
    max_future_skew: Duration = "5m"
    max_lifetime: Duration = "7d"
    min_endorsements: Annotated[int, Meta(ge=0, le=8)] = 1
    max_signatures: Annotated[int, Meta(ge=1, le=16)] = 8
    on_fail: Literal["hold", "reject"] = "hold"
    hold_certainties: list[Certainty] = []
    bridge_certainties: list[Certainty] = msgspec.field(
        default_factory=lambda: ["confirmed", "false"]
    )


class StoreSection(Struct, forbid_unknown_fields=True, frozen=True):
    retention: Duration = "7d"
    purge_interval: Duration = "10m"
    decision_log_max: Annotated[int, Meta(ge=100, le=10_000_000)] = 100_000


# An area code as alerts carry them, or a geohash prefix (1-9 characters).
ROUTE_AREA_PATTERN = (
    r"^(fips:[0-9]{2,5}|zip:[0-9]{5}|iso:[a-z]{2}(-[a-z0-9]{1,3})?|[0-9b-hjkmnp-z]{1,9})$"
)
ROOM_PATTERN = r"^[#!][^:\s]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}$"
USER_ID_PATTERN = r"^@[a-z0-9._=/+-]{1,200}:[A-Za-z0-9.:\[\]-]{1,255}$"
RouteArea = Annotated[str, Meta(pattern=ROUTE_AREA_PATTERN)]
RoomRef = Annotated[str, Meta(pattern=ROOM_PATTERN)]
UserId = Annotated[str, Meta(pattern=USER_ID_PATTERN)]
# What the config's own patterns accept, for readable errors (``relay.core.readable``).
_ACCEPTS = {
    ROUTE_AREA_PATTERN: readable.Accepts(
        "an area code (fips:, zip:, iso:) or a geohash prefix of 1 to 9 characters",
        "fips:06111 or 9q4g",
    ),
    ROOM_PATTERN: readable.Accepts("a room alias or id", "#avisa-alerts:example.org"),
    USER_ID_PATTERN: readable.Accepts("a Matrix user id", "@avisa-bot:example.org"),
}


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
SmsLang = Annotated[str, Meta(pattern=r"^(es|en)$")]
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


class BridgesSection(Struct, forbid_unknown_fields=True, frozen=True):
    matrix: Annotated[list[MatrixBridge], Meta(max_length=8)] = []
    cap: CapBridge = CapBridge()
    sms: SmsBridge | None = None


class DeskMatrix(Struct, forbid_unknown_fields=True, frozen=True):
    """The desk room: new tips are posted there, listed verifiers act with ``!claim 12``."""

    homeserver: str
    user_id: UserId
    room: RoomRef
    verifiers: Annotated[list[UserId], Meta(max_length=256)] = []
    publishers: Annotated[list[UserId], Meta(max_length=256)] = []
    password_file: str = ""
    access_token_file: str = ""
    device_name: Annotated[str, Meta(max_length=100)] = "Avisa desk"
    encrypted: bool = False
    retry_max: Duration = "5m"


class DeskSection(Struct, forbid_unknown_fields=True, frozen=True):
    """Tips and the verification desk (DESIGN §10)."""

    tip_ttl: Duration = "12h"
    retention: Duration = "7d"
    cluster_window: Duration = "2h"
    # Geohash characters two tips must share to corroborate (5: about 5 km).
    cluster_precision: Annotated[int, Meta(ge=4, le=7)] = 5
    confirmations: Annotated[int, Meta(ge=1, le=5)] = 1
    max_open_tips: Annotated[int, Meta(ge=10, le=1_000_000)] = 10_000
    # Region for phone numbers written without +country (ISO 3166 code).
    phone_region: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] = "US"
    # Public form: posts per client per hour, and the header naming the client
    # when a proxy stands in front ("" = the connection's own address).
    report_per_hour: Annotated[int, Meta(ge=1, le=1000)] = 10
    client_header: Annotated[str, Meta(pattern=r"^([A-Za-z0-9-]{1,64})?$")] = ""
    # Tips one sender (a phone, a form client, a CAP source) may file per hour and per day.
    tips_per_sender_hour: Annotated[int, Meta(ge=1, le=100_000)] = 3
    tips_per_sender_day: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    matrix: DeskMatrix | None = None


class DeskWebSection(Struct, forbid_unknown_fields=True, frozen=True):
    """The web desk (DESIGN §13): the map's tiles, sessions, the TLS proxy."""

    # Empty: no tiles at all, so looking at the map tells no tile server where.
    tile_url: Annotated[str, Meta(max_length=300)] = ""
    tile_attribution: Annotated[str, Meta(max_length=300)] = ""
    session_ttl: Duration = "12h"
    # Proxies whose X-Forwarded-Proto is believed (the session cookie turns Secure).
    trusted_proxies: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=16)] = []
    # Failed sign-ins per client per hour (the client named as for the public form).
    login_failures_per_hour: Annotated[int, Meta(ge=1, le=1000)] = 10


class Config(Struct, forbid_unknown_fields=True, frozen=True):
    node: NodeSection
    policy: PolicySection = PolicySection()
    store: StoreSection = StoreSection()
    bridges: BridgesSection = BridgesSection()
    desk: DeskSection = DeskSection()
    desk_web: DeskWebSection = DeskWebSection()

    @property
    def listen_host(self) -> str:
        return self.node.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.node.listen.rpartition(":")[2])

    @property
    def public_url(self) -> str:
        return self.node.url or f"http://{self.node.listen}"

    def duration(self, section: str, name: str) -> timedelta:
        return parse_duration(str(getattr(getattr(self, section), name)))


_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def parse(text: bytes | str, source: str = CONFIG_NAME) -> Config:
    """Decode and check a config; ``ConfigError`` names the bad setting."""
    try:
        raw = msgspec.toml.decode(text)
        config = readable.convert(raw, Config, accepts=_ACCEPTS)
    except readable.Invalid as exc:
        raise ConfigError(exc.path or source, exc.sentence) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    check(config)
    return config


def check(config: Config) -> None:
    listen = _LISTEN.match(config.node.listen)
    if listen is None or not 0 <= int(listen.group(2)) <= 65535:
        raise ConfigError("node.listen", "must be HOST:PORT, for example 127.0.0.1:8470")
    if config.node.url and not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", config.node.url):
        raise ConfigError("node.url", "must be an http:// or https:// URL")
    _check_url_matches_listen(config)
    policy = config.policy
    if config.duration("policy", "max_future_skew") > timedelta(hours=1):
        raise ConfigError("policy.max_future_skew", "more than 1h lets stale clocks in")
    if config.duration("policy", "max_age") > config.duration("policy", "max_lifetime"):
        raise ConfigError("policy.max_age", "must not exceed policy.max_lifetime")
    for name in ("hold_certainties", "bridge_certainties"):
        values = getattr(policy, name)
        if len(set(values)) != len(values) or not set(values) <= set(CERTAINTIES):
            raise ConfigError(f"policy.{name}", "lists a certainty twice")
    for section, name in (("policy", "max_age"), ("store", "retention")):
        if config.duration(section, name) <= timedelta(0):
            raise ConfigError(f"{section}.{name}", "must be more than zero")
    check_desk(config.desk)
    check_desk_web(config.desk_web)
    users = [bridge.user_id for bridge in config.bridges.matrix]
    if config.desk.matrix is not None and config.desk.matrix.user_id in users:
        raise ConfigError("desk.matrix.user_id", "give the desk room its own Matrix user")
    if len(set(users)) != len(users):
        raise ConfigError("bridges.matrix", "two bridges log in as the same user_id")
    for index, bridge in enumerate(config.bridges.matrix):
        check_matrix(bridge, f"bridges.matrix[{index}]", policy.bridge_certainties)
    check_cap(config.bridges.cap, policy.bridge_certainties)
    if config.bridges.sms is not None:
        check_sms(config.bridges.sms)


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_URL_HOST_PORT = re.compile(r"^(https?)://(\[[^\]]+\]|[^:/]+)(?::([0-9]{1,5}))?")


def _check_url_matches_listen(config: Config) -> None:
    """A url naming this very host must name the port it listens on: a second node set up
    by changing only ``listen`` would otherwise hand its peers the first node's address."""
    match = _URL_HOST_PORT.match(config.public_url)
    if match is None or config.listen_port == 0:
        return
    scheme, host, port = match.group(1), match.group(2).strip("[]"), match.group(3)
    url_port = int(port) if port else (443 if scheme == "https" else 80)
    same_host = host == config.listen_host or {host, config.listen_host} <= _LOOPBACK
    if same_host and url_port != config.listen_port:
        raise ConfigError(
            "node.url",
            f"names port {url_port} of this host but node.listen is {config.node.listen};"
            " peers would reach another program: give both the same port",
        )


_TILE_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+/[^\s\"'<>]*$")


def check_desk_web(section: DeskWebSection) -> None:
    if section.tile_url and not _TILE_URL.match(section.tile_url):
        raise ConfigError(
            "desk_web.tile_url",
            "must be an http(s) URL such as https://tiles.example/{z}/{x}/{y}.png",
        )
    if parse_duration(section.session_ttl) <= timedelta(0):
        raise ConfigError("desk_web.session_ttl", "must be more than zero")
    if parse_duration(section.session_ttl) > timedelta(days=7):
        raise ConfigError("desk_web.session_ttl", "at most 7d: a lost laptop stays signed in")


def _data_relative(value: str) -> bool:
    """A relative path that stays inside the data directory (no ``/`` start, no ``..``)."""
    return bool(value) and not value.startswith("/") and ".." not in value.split("/")


def check_desk(desk: DeskSection) -> None:
    for name in ("tip_ttl", "retention", "cluster_window"):
        if parse_duration(getattr(desk, name)) <= timedelta(0):
            raise ConfigError(f"desk.{name}", "must be more than zero")
    if parse_duration(desk.retention) < parse_duration(desk.tip_ttl):
        raise ConfigError("desk.retention", "must not be shorter than desk.tip_ttl")
    if desk.tips_per_sender_day < desk.tips_per_sender_hour:
        raise ConfigError(
            "desk.tips_per_sender_day", "must not be less than desk.tips_per_sender_hour"
        )
    room = desk.matrix
    if room is None:
        return
    if not re.match(r"^https?://[^\s/?#]+/?$", room.homeserver):
        raise ConfigError("desk.matrix.homeserver", "must be http(s)://HOST[:PORT], no path")
    secrets = [name for name in ("password_file", "access_token_file") if getattr(room, name)]
    if len(secrets) != 1:
        raise ConfigError("desk.matrix", "give exactly one of password_file or access_token_file")
    if not _data_relative(getattr(room, secrets[0])):
        raise ConfigError(f"desk.matrix.{secrets[0]}", "must be a path inside the data directory")
    if not room.verifiers:
        raise ConfigError("desk.matrix.verifiers", "list the Matrix ids of the verifiers")


def check_matrix(bridge: MatrixBridge, where: str, allowed: list[Certainty]) -> None:
    if not re.match(r"^https?://[^\s/?#]+/?$", bridge.homeserver):
        raise ConfigError(f"{where}.homeserver", "must be http(s)://HOST[:PORT], no path")
    secrets = [name for name in ("password_file", "access_token_file") if getattr(bridge, name)]
    if len(secrets) != 1:
        raise ConfigError(where, "give exactly one of password_file or access_token_file")
    if not _data_relative(getattr(bridge, secrets[0])):
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


def check_sms(sms: SmsBridge) -> None:
    where = "bridges.sms"
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", sms.sendsms_url):
        raise ConfigError(f"{where}.sendsms_url", "must be an http(s):// URL without a query")
    for name in ("password_file", "inbound_secret_file"):
        if not _data_relative(getattr(sms, name)):
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
    for name in ("retry_max", "in_doubt_grace"):
        if parse_duration(getattr(sms, name)) < timedelta(seconds=1):
            raise ConfigError(f"{where}.{name}", "must be at least 1s")


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


def render(network: str, listen: str, url: str) -> str:
    """The commented ``avisa.toml`` that ``avisa init`` writes."""
    return f"""\
# Avisa node configuration. Every setting is documented in docs/config.md.

[node]
network = "{network}"          # this coalition's network id (in every alert id)
listen = "{listen}"     # where the API and federation endpoints listen
url = "{url}"  # how peers reach this node (put a TLS proxy in front)
# passphrase_file = "passphrase"   # if node.key is passphrase-protected

[policy]
max_age = "7d"                 # refuse alerts signed longer ago (7d: whatever is unexpired)
rotation_grace = "1d"          # a rotated-out key still counts for what it signed before
max_future_skew = "5m"         # refuse alerts signed further in the future
max_lifetime = "7d"            # refuse alerts that would live longer
min_endorsements = 1           # for alerts from unknown origins or outside speaks_for
max_signatures = 8             # ends long relay chains
on_fail = "hold"               # "hold" for review, or "reject"
hold_certainties = []          # e.g. ["unconfirmed"]: always review these from peers
bridge_certainties = ["confirmed", "false"]   # what reaches Matrix/feeds

[store]
retention = "7d"               # delete alerts this long after they expire
purge_interval = "10m"
decision_log_max = 100000

[desk]
tip_ttl = "12h"                # an open tip nobody finished closes itself after this
retention = "7d"               # every tip and its history is deleted this long after it came in
cluster_window = "2h"          # tips this close in time and place corroborate each other
confirmations = 1              # distinct verifiers who must confirm before publishing
max_open_tips = 10000          # past this, the heaviest sender's oldest unclaimed tips expire first
tips_per_sender_hour = 3       # tips one phone, form client or CAP source may file per hour
tips_per_sender_day = 10       # ... and per day
"""
