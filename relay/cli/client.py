"""A small synchronous client for the local API, used by the CLI.

It reads the node's address from ``avisa.toml`` and the operator token from
``operator.token`` in the data directory, so an operator never types either.
Errors come back as ``ClientError`` with the node's own ``errcode`` and text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from relay.core import config as config_mod
from relay.core.errors import AvisaError
from relay.storage import configfile

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


class NodeClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> NodeClient:
        config = configfile.load(data_dir)
        host = config.listen_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached locally
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        port = _running_port(data_dir) or config.listen_port
        token_path = data_dir / config_mod.TOKEN_NAME
        try:
            token = token_path.read_text().strip()
        except OSError:
            raise ClientError(
                f"cannot read {token_path}; is this a node's data directory?"
            ) from None
        return cls(f"http://{host}:{port}", token)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the node's own
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
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
            raise ClientError(
                f"cannot reach the node at {self.base_url} ({exc}); is 'avisa run' running?"
            ) from None
