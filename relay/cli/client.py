"""A small synchronous client for the local API, used by the CLI.

It reads the node's address from ``avisa.toml`` (or the port a running node
announced in ``run.json``) and the operator token from ``operator.token`` in
the data directory, so an operator never types either. Before the first call
it asks the node answering there who it is (``/healthz``): a ``run.json``
copied with a data directory, or another node on the same port, must not
receive this directory's commands. A copy of the data directory has the same
network and keys, so the node also names its directory
(``relay.storage.runlock.directory_id``), which must be this one. Errors come
back as ``ClientError`` with the node's own ``errcode`` and text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from keys.core.keyring import keyid_for
from keys.store import nodekey, ownkeys
from relay.core import config as config_mod
from relay.core.errors import AvisaError
from relay.storage import configfile, db, runlock

TIMEOUT_S = 30


class ClientError(AvisaError):
    def __init__(self, message: str, errcode: str = "AVISA_CLIENT") -> None:
        super().__init__(message)
        self.errcode = errcode


def _running_port(data_dir: Path) -> int | None:
    """The port a running node announced in ``run.json`` (it may have bound port 0)."""
    try:
        port = json.loads((data_dir / "run.json").read_bytes())["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return port if isinstance(port, int) else None


def own_keyids(data_dir: Path) -> set[str]:
    """Every key id this data directory's node has signed with (current and past)."""
    keyids = {keyid_for(nodekey.read_public(data_dir / config_mod.KEY_NAME))}
    try:
        conn = db.open_readonly(data_dir / config_mod.DB_NAME)
    except AvisaError:
        return keyids
    try:
        network = configfile.load(data_dir).node.network
        keyids |= {entry.keyid for entry in ownkeys.history(conn, network)}
    finally:
        conn.close()
    return keyids


class NodeClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        token_source: str = "the token given",  # noqa: S107 - a description, not a token
        expect: tuple[str, set[str], Path] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.token_source = token_source
        self.expect = expect  # (network, key ids, data dir) the answering node must match
        self.data_dir = expect[2] if expect else None
        # The language the command speaks: the API says its warnings in it too.
        self.language = ""

    @classmethod
    def for_data_dir(cls, data_dir: Path, token: str | None = None) -> NodeClient:
        config = configfile.load(data_dir)
        host = config.listen_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached locally
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        port = _running_port(data_dir) or config.listen_port
        token_path = data_dir / config_mod.TOKEN_NAME
        source = "the new token" if token else str(token_path)
        try:
            token = token or token_path.read_text().strip()
        except OSError:
            raise ClientError(
                f"cannot read {token_path}; is this a node's data directory?"
            ) from None
        expect = (config.node.network, own_keyids(data_dir), data_dir)
        return cls(f"http://{host}:{port}", token, source, expect)

    def _check_identity(self) -> None:
        """Refuse to talk to a node that is not the one of this data directory."""
        if self.expect is None:
            return
        network, keyids, data_dir = self.expect
        self.expect = None
        health = self._request("GET", "/healthz", None)
        if not isinstance(health, dict):
            return
        answering_dir = health.get("dir")
        if (
            health.get("network") == network
            and health.get("keyid") in keyids
            and answering_dir is not None
            and answering_dir != runlock.directory_id(data_dir)
        ):
            raise ClientError(
                f"the node answering at {self.base_url} is {network}'s node of another data"
                f" directory: {data_dir} is a copy; give the --data of the directory that node"
                " runs on (a copy holds the same key: never run two nodes with it)",
                "AVISA_WRONG_NODE",
            )
        if health.get("network") != network or health.get("keyid") not in keyids:
            raise ClientError(
                f"the node answering at {self.base_url} is {health.get('network')}"
                f" ({health.get('keyid')}), not the node of {data_dir} ({network});"
                f" its run.json is stale or another node took the port: start this one with"
                f" 'avisa run --data {data_dir}'",
                "AVISA_WRONG_NODE",
            )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self._check_identity()
        try:
            return self._request(method, path, body)
        except ClientError as exc:
            if exc.errcode == "AVISA_UNAUTHORIZED":
                raise ClientError(f"{exc} (read from {self.token_source})", exc.errcode) from None
            raise

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if self.language:
            headers["Accept-Language"] = self.language
        return headers

    def _request(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the node's own
            self.base_url + path,
            data=data,
            method=method,
            headers=self._headers(),
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                problem = json.loads(exc.read())
                raise ClientError(problem["error"], problem["errcode"]) from None
            except (ValueError, KeyError, TypeError):
                raise ClientError(f"HTTP {exc.code} from the node") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            why = getattr(reason, "strerror", None) or str(reason)
            run = f"avisa run --data {self.data_dir}" if self.data_dir else "avisa run"
            raise ClientError(
                f"cannot reach the node at {self.base_url} ({why.lower()}); is '{run}' running?"
            ) from None
