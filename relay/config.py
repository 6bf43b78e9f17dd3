"""``avisa.toml``: one typed msgspec decode, then semantic checks.

The decode rejects unknown keys and wrong types anywhere in the file; its
error names the setting (``policy.max_age``). Semantic checks that types
cannot express (a listen address that parses, durations that make sense
together) raise ``ConfigError`` with the same kind of path. The result is
immutable; the running node builds its ``Policy`` from it plus the peers the
operator trusted (kept in the store, managed by ``avisa trust``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from relay.errors import ConfigError
from relay.model import CERTAINTIES, NETWORK_PATTERN, Certainty
from relay.timeutil import parse_duration

CONFIG_NAME = "avisa.toml"
KEY_NAME = "node.key"
TOKEN_NAME = "operator.token"  # noqa: S105 - a file name, not a secret
DB_NAME = "avisa.db"

Duration = Annotated[str, Meta(pattern=r"^[0-9]{1,6}[smhd]$")]


class NodeSection(Struct, forbid_unknown_fields=True, frozen=True):
    network: Annotated[str, Meta(pattern=NETWORK_PATTERN)]
    listen: str = "127.0.0.1:8470"
    url: str = ""
    passphrase_file: str = ""


class PolicySection(Struct, forbid_unknown_fields=True, frozen=True):
    max_age: Duration = "6h"
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


class Config(Struct, forbid_unknown_fields=True, frozen=True):
    node: NodeSection
    policy: PolicySection = PolicySection()
    store: StoreSection = StoreSection()

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


_PATH_IN_MESSAGE = re.compile(r"at `\$\.?([^`]*)`")
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def parse(text: bytes | str, source: str = CONFIG_NAME) -> Config:
    """Decode and check a config; ``ConfigError`` names the bad setting."""
    try:
        config = msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        match = _PATH_IN_MESSAGE.search(str(exc))
        path = match.group(1) if match else source
        message = _PATH_IN_MESSAGE.sub("", str(exc)).rstrip(" -")
        raise ConfigError(path, message) from None
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


def load(data_dir: Path) -> Config:
    path = data_dir / CONFIG_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "no config here; run 'avisa init' first") from None
    return parse(text, str(path))


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
max_age = "6h"                 # refuse alerts signed longer ago than this
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
"""
