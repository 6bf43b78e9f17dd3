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
from datetime import timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from relay.core import clients, readable
from relay.core.bridgeconfig import (
    ROOM_PATTERN,
    ROUTE_AREA_PATTERN,
    USER_ID_PATTERN,
    BridgesSection,
    RoomRef,
    UserId,
    check_cap,
    check_matrix,
    check_sms,
    data_relative,
)
from relay.core.errors import ConfigError
from relay.core.language import DEFAULT_LANGUAGES
from relay.core.model import CERTAINTIES, AreaCode, Certainty, LangTag, Network, valid_node_url
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
    # Signature-verification worker processes; 0: one per core. Fewer lets many
    # nodes share one machine (bench.coalition runs 40 with 1 each).
    verify_workers: Annotated[int, Meta(ge=0, le=64)] = 0
    # Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (relay.core.clients).
    trusted_proxies: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=32)] = []
    metrics_public: bool = False  # /metrics without a token (desk activity never shown)
    # This network's counties: peers trust it there; the desk's start; warned outside.
    home_codes: Annotated[list[AreaCode], Meta(max_length=16)] = []
    # The languages people are answered in, first the default (relay.core.language):
    # each needs a catalogue, shipped (es, en) or an <lang>/LC_MESSAGES/avisa.po in locale_dir.
    languages: Annotated[list[LangTag], Meta(min_length=1, max_length=16)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_LANGUAGES)
    )
    locale_dir: str = ""  # more catalogues, inside the data directory (docs/translating.md)


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


# What the config's own patterns accept, for readable errors (``relay.core.readable``).
_ACCEPTS = {
    ROUTE_AREA_PATTERN: readable.Accepts(
        "an area code (fips:, zip:, iso:) or a geohash prefix of 1 to 9 characters",
        "fips:06111 or 9q4g",
    ),
    ROOM_PATTERN: readable.Accepts("a room alias or id", "#avisa-alerts:example.org"),
    USER_ID_PATTERN: readable.Accepts("a Matrix user id", "@avisa-bot:example.org"),
}


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
    # Public form: posts per client per hour (clients as [node] trusted_proxies names them).
    report_per_hour: Annotated[int, Meta(ge=1, le=1000)] = 10
    # Tips one sender (a phone, a form client, a CAP source) may file per hour and per day.
    tips_per_sender_hour: Annotated[int, Meta(ge=1, le=100_000)] = 3
    tips_per_sender_day: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    matrix: DeskMatrix | None = None


class DeskWebSection(Struct, forbid_unknown_fields=True, frozen=True):
    """The web desk (DESIGN §13): the map's tiles, sessions, the TLS proxy."""

    # Empty: no tiles at all, so looking at the map tells no tile server where.
    tile_url: Annotated[str, Meta(max_length=300)] = ""
    tile_attribution: Annotated[str, Meta(max_length=300)] = ""
    # A PMTiles archive in the data directory, served by the node at /desk/tiles/.
    tiles: Annotated[str, Meta(max_length=200)] = ""
    session_ttl: Duration = "12h"
    # Failed sign-ins per client per hour (the client named as for the public form).
    login_failures_per_hour: Annotated[int, Meta(ge=1, le=1000)] = 10


class TrustListsSection(Struct, forbid_unknown_fields=True, frozen=True):
    # How often a running node checks the trust lists it subscribes to (docs/keys.md).
    refresh: Duration = "1h"


class FederationSection(Struct, forbid_unknown_fields=True, frozen=True):
    """Peers (DESIGN §5, §16): how often this node signs its checkpoint, and how long an
    origin may go without a fresh one before it is ``silent``."""

    checkpoint_every: Duration = "60s"
    # Unset: 5 min, or 2 × checkpoint_every if that is longer (``Config.stale_after``).
    stale_after: Duration | None = None


class Config(Struct, forbid_unknown_fields=True, frozen=True):
    node: NodeSection
    policy: PolicySection = PolicySection()
    store: StoreSection = StoreSection()
    federation: FederationSection = FederationSection()
    bridges: BridgesSection = BridgesSection()
    desk: DeskSection = DeskSection()
    desk_web: DeskWebSection = DeskWebSection()
    trustlists: TrustListsSection = TrustListsSection()

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

    def stale_after(self) -> timedelta:
        """``[federation] stale_after``, or its default: 5 min, at least 2 intervals."""
        configured = self.federation.stale_after
        if configured is not None:
            return parse_duration(configured)
        return max(timedelta(minutes=5), 2 * self.duration("federation", "checkpoint_every"))


_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def parse(text: bytes | str, source: str = CONFIG_NAME) -> Config:
    """Decode and check a config; ``ConfigError`` names the bad setting."""
    try:
        raw = msgspec.toml.decode(text)
        clients.check_moved(raw)
        config = readable.convert(raw, Config, accepts=_ACCEPTS)
    except readable.Invalid as exc:
        raise ConfigError(exc.path or source, exc.sentence) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from None
    check(config)
    return config


def check(config: Config) -> None:
    _check_languages(config.node)
    listen = _LISTEN.match(config.node.listen)
    if listen is None or not 0 <= int(listen.group(2)) <= 65535:
        raise ConfigError("node.listen", "must be HOST:PORT, for example 127.0.0.1:8470")
    if config.node.url and not valid_node_url(config.node.url):
        raise ConfigError(
            "node.url", "must be http:// or https://, a host, an optional :port and /path"
        )
    _check_url_matches_listen(config)
    clients.check_proxies(config.node.trusted_proxies, "node.trusted_proxies")
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
    if not timedelta(minutes=5) <= config.duration("trustlists", "refresh") <= timedelta(days=1):
        raise ConfigError("trustlists.refresh", "must be 5m to 24h (a list expires in days)")
    every = config.duration("federation", "checkpoint_every")
    if not timedelta(seconds=1) <= every <= timedelta(hours=1):
        raise ConfigError("federation.checkpoint_every", "must be from 1s to 1h")
    if not 2 * every <= config.stale_after() <= timedelta(days=1):
        raise ConfigError("federation.stale_after", "must be from 2 × checkpoint_every to 24h")
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
        check_sms(config.bridges.sms, config.node.languages)


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
    if section.tiles and not (data_relative(section.tiles) and section.tiles.endswith(".pmtiles")):
        raise ConfigError(
            "desk_web.tiles",
            "must be a .pmtiles file inside the data directory, such as maps/ventura.pmtiles",
        )
    if section.tiles and section.tile_url:
        raise ConfigError(
            "desk_web.tiles",
            "give tiles (the node's own archive) or tile_url, not both: with tiles,"
            " no tile comes from another host",
        )
    if parse_duration(section.session_ttl) <= timedelta(0):
        raise ConfigError("desk_web.session_ttl", "must be more than zero")
    if parse_duration(section.session_ttl) > timedelta(days=7):
        raise ConfigError("desk_web.session_ttl", "at most 7d: a lost laptop stays signed in")


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
    if not data_relative(getattr(room, secrets[0])):
        raise ConfigError(f"desk.matrix.{secrets[0]}", "must be a path inside the data directory")
    if not room.verifiers:
        raise ConfigError("desk.matrix.verifiers", "list the Matrix ids of the verifiers")


def render(network: str, listen: str, url: str) -> str:
    """The commented ``avisa.toml`` that ``avisa init`` writes."""
    return f"""\
# Avisa node configuration. Every setting is documented in docs/config.md.

[node]
network = "{network}"          # this coalition's network id (in every alert id)
listen = "{listen}"     # where the API and federation endpoints listen
url = "{url}"  # how peers reach this node (put a TLS proxy in front)
# passphrase_file = "passphrase"   # if node.key is passphrase-protected
# home_codes = ["fips:06111"]   # this network's counties: peers trust it there (speaks_for)

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


def _check_languages(node: NodeSection) -> None:
    if len(set(node.languages)) != len(node.languages):
        raise ConfigError("node.languages", "lists a language twice")
    if node.locale_dir and not data_relative(node.locale_dir):
        raise ConfigError("node.locale_dir", "must be a folder inside the data directory")
