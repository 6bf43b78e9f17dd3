"""Who a request comes from (relay.core.clients), the form's tokens and per-token sessions.

The rules without a network: trusted proxies, X-Forwarded-For read right to
left, client buckets (IPv4, IPv6 /64), the settings that moved, the public
form's signed single-use tokens, and desk sessions capped per token.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from relay.core import clients
from relay.core.config import parse
from relay.core.errors import ConfigError
from relay.http.formtokens import FormTokens
from relay.http.webdesk.session import Sessions
from tests.helpers import T0

PROXIES = clients.parse_proxies(["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"])


def client(peer: str | None, *forwarded: str) -> str:
    return clients.client(peer, clients.hops(forwarded), PROXIES)


def test_forwarded_for_is_read_only_from_a_trusted_proxy() -> None:
    assert client("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # not a proxy: ignored
    assert client("127.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert client("127.0.0.1") == "127.0.0.1"  # the proxy's own request


def test_right_to_left_skipping_trusted_hops_so_forged_hops_change_nothing() -> None:
    real = client("127.0.0.1", "203.0.113.9")
    for forged in ("1.2.3.4", "garbage", "::1", "127.0.0.1", "10.1.1.1, 8.8.8.8"):
        assert client("127.0.0.1", f"{forged}, 203.0.113.9") == real, forged
    # two proxies: nginx at 127.0.0.1 behind a balancer at 10.0.0.5
    assert client("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.5") == "203.0.113.9"
    # several header lines are one list, in order
    assert client("127.0.0.1", "6.6.6.6", "203.0.113.9") == "203.0.113.9"


def test_a_hop_that_is_no_address_counts_against_the_proxy() -> None:
    for junk in ("unknown", "", "999.1.1.1", "é", "\udcff", "1.2.3.4:80:90", "x" * 500):
        assert client("127.0.0.1", f"203.0.113.9, {junk}") == "127.0.0.1", junk
    assert client("10.0.0.5", "203.0.113.9, garbage") == "10.0.0.5"
    assert client(None, "203.0.113.9") == clients.UNKNOWN
    assert client("not an address") == clients.UNKNOWN


def test_buckets_are_ipv4_addresses_and_ipv6_slash_64s() -> None:
    assert client("2001:db8:1:2:aaaa::1") == client("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client("2001:db8:1:3::1") != client("2001:db8:1:2::1")
    assert client("::ffff:203.0.113.9") == "203.0.113.9"  # a mapped IPv4 is that IPv4
    assert client("127.0.0.1", "[2001:db8:1:2::5]") == "2001:db8:1:2::/64"
    assert client("2001:db8:ffff:1::1", "203.0.113.9") == "203.0.113.9"  # an IPv6 proxy
    assert client("::ffff:127.0.0.1", "203.0.113.9") == "203.0.113.9"


def test_proxy_settings_read_as_sentences() -> None:
    base = '[node]\nnetwork = "ventura"\n'
    config = parse(base + 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]\n')
    assert config.node.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    assert not config.node.metrics_public
    with pytest.raises(ConfigError, match=r"node.trusted_proxies\[1\]: got 'nginx'; expected"):
        parse(base + 'trusted_proxies = ["127.0.0.1", "nginx"]\n')
    with pytest.raises(ConfigError, match=r"desk.client_header: was removed.*trusted_proxies"):
        parse(base + '[desk]\nclient_header = "X-Real-IP"\n')
    with pytest.raises(ConfigError, match=r"desk_web.trusted_proxies: moved to \[node\]"):
        parse(base + '[desk_web]\ntrusted_proxies = ["127.0.0.1"]\n')


def test_form_tokens_are_signed_time_bound_single_use_and_bounded() -> None:
    now = [100.0]
    tokens = FormTokens(lambda: now[0], ttl_s=3600, max_spent=3)
    first = tokens.issue()
    assert tokens.spend(first) == "ok"
    assert tokens.spend(first) == "spent"
    assert tokens.spend("ab" * 16) == "bad" and tokens.spend("") == "bad"
    forged = first[:-2] + ("AA" if first[-2:] != "AA" else "BA")
    assert tokens.spend(forged) == "bad"
    assert FormTokens(lambda: now[0]).spend(tokens.issue()) == "bad"  # another key: a restart
    late = tokens.issue()
    now[0] += 3601
    assert tokens.spend(late) == "stale"
    for _ in range(10):
        assert tokens.spend(tokens.issue()) == "ok"
    assert len(tokens) <= 3


def test_sessions_are_capped_per_token_and_never_evict_another_token() -> None:
    sessions = Sessions(timedelta(hours=1), limit=50, per_token=5)
    colleague = sessions.open("rosa", T0)
    flood = [sessions.open("token-holder", T0) for _ in range(1000)]
    assert sessions.find(colleague, T0) is not None  # still signed in
    alive = [s for s in flood if sessions.find(s, T0) is not None]
    assert alive == flood[-5:]  # the flooder's own oldest went
    assert len(sessions) == 6
    # past the table's bound, the token holding the most sessions gives way
    small = Sessions(timedelta(hours=1), limit=6, per_token=5)
    kept = [small.open(f"t{n}", T0) for n in range(2)]
    heavy = [small.open("heavy", T0) for _ in range(5)]
    assert all(small.find(s, T0) for s in kept) and small.find(heavy[0], T0) is None
    assert len(small) == 6
