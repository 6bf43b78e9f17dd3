"""Who a request comes from: trusted proxies, ``X-Forwarded-For``, client buckets.

Pure rules (no sockets): the HTTP edge passes in the connection's peer
address and the ``X-Forwarded-For`` values, and gets back the client's
*bucket*, the name every per-client limit and the public form's reporter
count use (DESIGN §17).

- ``X-Forwarded-For`` is read only when the connection comes from a proxy in
  ``[node] trusted_proxies``. Anyone can write the header; only the hop a
  trusted proxy appended is known to be true. So the list is read right to
  left, skipping hops that are themselves trusted proxies, and the first
  other address is the client. Whatever a client wrote to the left of that is
  never looked at, so rotating a forged header changes nothing.
- A hop that is not an IP address (a misconfigured proxy, or garbage) ends
  the walk at the last trusted hop: the request counts against the proxy,
  never against a name the request chose.
- A bucket is an IPv4 address, or the /64 of an IPv6 address (one household
  or phone gets a /64 and can pick any address inside it). An IPv4-mapped
  IPv6 address is its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, Final

from relay.core.errors import ConfigError

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_PROXIES: Final = 32
MAX_HOPS: Final = 32  # X-Forwarded-For entries walked at most
UNKNOWN: Final = "unknown"


def parse_proxy(text: str) -> Net:
    """One ``trusted_proxies`` entry: an address or a CIDR (ValueError if neither)."""
    net = ipaddress.ip_network(text.strip(), strict=False)
    mapped = getattr(net.network_address, "ipv4_mapped", None)
    if mapped is not None:
        net = ipaddress.ip_network(f"{mapped}/{max(net.prefixlen - 96, 0)}")
    return net


def parse_proxies(entries: Iterable[str]) -> tuple[Net, ...]:
    return tuple(parse_proxy(entry) for entry in entries)


def check_proxies(entries: Sequence[str], where: str) -> None:
    """Each entry parses as an address or a CIDR (``ConfigError`` naming the one that does not)."""
    for index, entry in enumerate(entries):
        try:
            parse_proxy(entry)
        except ValueError:
            raise ConfigError(
                f"{where}[{index}]",
                f"got {entry!r}; expected an IP address or a CIDR, for example 127.0.0.1"
                " or 10.0.0.0/8",
            ) from None


# Settings that named the client or the proxy before [node] trusted_proxies existed.
MOVED: Final = {
    ("desk", "client_header"): "was removed: any client could write that header and pick its"
    " own name, so limits could be dodged or turned on others. List the address of your"
    " proxy in [node] trusted_proxies instead (docs/config.md)",
    ("desk_web", "trusted_proxies"): "moved to [node] trusted_proxies, which now also names"
    " the client behind the proxy (docs/config.md)",
}


def check_moved(raw: Any) -> None:
    """A readable ``ConfigError`` for a setting in ``MOVED`` (``raw``: the decoded TOML)."""
    if not isinstance(raw, dict):
        return
    for (section, name), sentence in MOVED.items():
        table = raw.get(section)
        if isinstance(table, dict) and name in table:
            raise ConfigError(f"{section}.{name}", sentence)


def address(text: str | None) -> Address | None:
    """An IP address as a hop or a socket names it, else None (never raises)."""
    if not text or len(text) > 64 or not text.isascii():
        return None
    text = text.strip().removeprefix("[").split("]")[0]
    try:
        found = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def trusted(hop: Address, proxies: Sequence[Net]) -> bool:
    return any(hop.version == net.version and hop in net for net in proxies)


def hops(values: Iterable[str]) -> list[str]:
    """The entries of every ``X-Forwarded-For`` value, in order (left to right)."""
    return [entry.strip() for value in values for entry in value.split(",")]


def client(peer: str | None, forwarded: Sequence[str], proxies: Sequence[Net]) -> str:
    """The client's bucket for a request from ``peer`` carrying ``forwarded`` hops."""
    current = address(peer)
    if current is None:
        return UNKNOWN
    for hop in reversed(forwarded[-MAX_HOPS:]):
        if not trusted(current, proxies):
            break
        found = address(hop)
        if found is None:
            break
        current = found
    return bucket(current)


def bucket(found: Address) -> str:
    """IPv4: the address; IPv6: its /64."""
    if isinstance(found, ipaddress.IPv4Address):
        return str(found)
    return str(ipaddress.ip_network(f"{found}/64", strict=False))
