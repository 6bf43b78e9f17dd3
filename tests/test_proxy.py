"""The shipped deploy/nginx.conf, run by Debian's nginx-light in front of a real node.

Issue 25, hole 2: behind a proxy every client used to share the proxy's
bucket (one client locked every coordinator out), and a header the proxy
never set let a client pick a new name per request. Here nginx runs the very
file in deploy/ (only certificate paths, ports and the upstream address
changed), as a foreground process with a temporary prefix, TLS with a
throw-away certificate, on loopback. The node trusts 127.0.0.1, where nginx
connects from. Clients connect to nginx from 127.0.0.2 and 127.0.0.3, two
real source addresses, so nginx itself writes what X-Forwarded-For says.

Skipped, with the reason, when nginx or openssl is not installed (``make
test`` installs nginx-light when it runs as root).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.conftest import start_node
from tests.helpers import wait_for

NGINX = Path("/usr/sbin/nginx")
SHIPPED = Path(__file__).parent.parent / "deploy" / "nginx.conf"
pytestmark = pytest.mark.skipif(
    not NGINX.exists() or shutil.which("openssl") is None,
    reason="needs nginx and openssl: apt-get install -y nginx-light (make test does, as root)",
)
FORM = {"text": "Dos camionetas sin placas", "place": "Calle 5 y Cooper", "zip": "93030"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_conf(prefix: Path, tls_port: int, plain_port: int, upstream: int) -> Path:
    """deploy/nginx.conf with this test's ports and certificate, inside a minimal main file."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=avisa.example.org",
         "-keyout", str(prefix / "key.pem"), "-out", str(prefix / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site = SHIPPED.read_text()
    for old, new in (
        ("listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl"),
        ("listen 80;", f"listen 127.0.0.1:{plain_port};"),
        ("/etc/letsencrypt/live/avisa.example.org/fullchain.pem", str(prefix / "cert.pem")),
        ("/etc/letsencrypt/live/avisa.example.org/privkey.pem", str(prefix / "key.pem")),
        ("http://127.0.0.1:8470", f"http://127.0.0.1:{upstream}"),
    ):
        assert old in site, old
        site = site.replace(old, new)
    (prefix / "avisa.conf").write_text(site)
    main = prefix / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main.write_text(
        f"daemon off; master_process off; pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\nevents {{}}\n"
        f"http {{ {temp} uwsgi_temp_path {prefix / 'uwsgi'}; scgi_temp_path {prefix / 'scgi'};\n"
        f"  include {prefix / 'avisa.conf'}; }}\n"
    )
    return main


@dataclass
class Proxied:
    node: Node
    url: str  # nginx, over TLS
    token: str

    def client(self, source: str) -> aiohttp.ClientSession:
        """A client whose connections to nginx come from ``source`` (a loopback address)."""
        connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=False, force_close=True)
        return aiohttp.ClientSession(connector=connector)


@pytest.fixture
def nginx_prefix(tmp_path: Path) -> Iterator[Path]:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    yield prefix


@pytest.fixture
async def proxied(tmp_path: Path, clock: FakeClock, nginx_prefix: Path) -> AsyncIterator[Proxied]:
    node, runner, url, token = await start_node(
        tmp_path,
        clock,
        config_extra="\n[desk_web]\nlogin_failures_per_hour = 3\n",
        node_extra='trusted_proxies = ["127.0.0.1"]\n',
    )
    upstream = int(url.rsplit(":", 1)[1])
    tls_port = free_port()
    main = nginx_conf(nginx_prefix, tls_port, free_port(), upstream)
    process = subprocess.Popen(
        [str(NGINX), "-p", str(nginx_prefix), "-c", str(main), "-e", str(nginx_prefix / "e.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def listening() -> bool:
        assert process.poll() is None, process.stderr and process.stderr.read()
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", tls_port)) == 0

    try:
        await wait_for(listening, timeout=20, what="nginx listening")
        yield Proxied(node, f"https://127.0.0.1:{tls_port}", token)
    finally:
        process.terminate()
        process.wait(timeout=10)
        await runner.cleanup()
        await node.stop()


async def report(http: aiohttp.ClientSession, url: str, **headers: str) -> int:
    async with http.get(url + "/report") as reply:
        page = await reply.text()
    match = re.search(r'name="t" value="([^"]+)"', page)
    assert match is not None, page[:300]
    data = {**FORM, "t": match.group(1)}
    async with http.post(url + "/report", data=data, headers=headers) as reply:
        await reply.read()
        return reply.status


async def sign_in(http: aiohttp.ClientSession, url: str, token: str, **headers: str) -> int:
    async with http.post(
        url + "/desk/login", data={"token": token}, headers=headers, allow_redirects=False
    ) as reply:
        await reply.read()
        return reply.status


async def test_each_client_behind_nginx_has_its_own_report_limit(proxied: Proxied) -> None:
    # A client may post report_per_hour forms, and file tips_per_sender_hour of them (a
    # client is one sender): past the smaller, 429. A forged header that moved the client
    # to another bucket would escape both.
    desk = proxied.node.config.desk
    allowed = min(desk.report_per_hour, desk.tips_per_sender_hour)
    async with proxied.client("127.0.0.2") as two, proxied.client("127.0.0.3") as three:
        statuses = [await report(two, proxied.url) for _ in range(allowed)]
        assert statuses == [200] * allowed
        assert await report(two, proxied.url) == 429
        # rotating a forged X-Forwarded-For: nginx appends the real address, the node reads that
        for n in range(5):
            forged = {"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"198.51.100.{n}"}
            assert await report(two, proxied.url, **forged) == 429
        # another client behind the same proxy is not touched by the first one's flood
        assert await report(three, proxied.url) == 200
    found = await proxied.node.desk.listing(cluster=True)
    assert len(found) == allowed + 1
    # tips from one place, two clients: two reporters, whatever the forms said
    assert {tip.cluster.reporters for tip in found if tip.cluster} == {2}


async def test_one_clients_failures_never_lock_out_another_behind_nginx(proxied: Proxied) -> None:
    async with proxied.client("127.0.0.2") as two, proxied.client("127.0.0.3") as three:
        assert [await sign_in(two, proxied.url, "avisa_guess") for _ in range(3)] == [401] * 3
        assert await sign_in(two, proxied.url, "avisa_guess") == 429
        rotated = {"X-Forwarded-For": "192.0.2.77"}
        assert await sign_in(two, proxied.url, "avisa_guess", **rotated) == 429
        # the right token signs in from the other client, and even from the guesser's address
        assert await sign_in(three, proxied.url, proxied.token) == 303
        assert await sign_in(two, proxied.url, proxied.token) == 303
        assert await sign_in(three, proxied.url, "avisa_typo") == 401  # its own tries
        async with three.post(
            proxied.url + "/desk/login", data={"token": proxied.token}, allow_redirects=False
        ) as reply:
            cookie = reply.cookies["avisa_desk"]
            assert cookie["secure"]  # nginx said X-Forwarded-Proto: https, and it is trusted
