"""Starting the bridges a node's config asks for.

Kept apart from the adapters so that importing it costs nothing: matrix-nio
is imported only when a ``[[bridges.matrix]]`` section or a ``[desk.matrix]``
section (the desk room) exists (and, in an environment that lacks it, the
operator is told what to install), the CAP importer only when
``[[bridges.cap.sources]]`` lists a source (the CAP export has no running
part: ``relay.http.cap`` serves it). Secret files are read here, before
anything is started, so a missing or world-readable secret stops
``avisa run`` with a ``ConfigError`` that names the setting:
``check_bridges`` does that before the node creates anything,
``start_bridges`` again when it builds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bridges.base import Bridge, BridgeNode, Sleep, secret_file
from relay.core.config import Config
from relay.core.errors import ConfigError

NIO_REQUIREMENT = "matrix-nio[e2e]>=0.26,<0.27"


@contextlib.contextmanager
def _needs_nio(setting: str) -> Iterator[None]:
    """An environment without matrix-nio is told what to install, not shown a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "nio":
            raise
        raise ConfigError(
            setting,
            f"needs matrix-nio, which this Python lacks: pip install '{NIO_REQUIREMENT}'"
            " into Avisa's environment (or reinstall Avisa)",
        ) from None


def check_bridges(data_dir: Path, config: Config) -> None:
    """What the configured bridges need before they can start, checked before the node
    creates anything: the SMS line's secret files, and for each Matrix login that
    matrix-nio is installed and its secret file is usable."""
    sms = config.bridges.sms
    if sms is not None:
        secret_file(data_dir, sms.password_file, "bridges.sms.password_file", "password")
        secret_file(data_dir, sms.inbound_secret_file, "bridges.sms.inbound_secret_file")
    logins = [
        (bridge, f"bridges.matrix[{index}]") for index, bridge in enumerate(config.bridges.matrix)
    ]
    if not logins and config.desk.matrix is None:
        return
    with _needs_nio("bridges.matrix" if logins else "desk.matrix"):
        from bridges.matrix.deskroom import desk_login
        from bridges.matrix.session import read_secret
    if config.desk.matrix is not None:
        logins.append((desk_login(config.desk.matrix), "desk.matrix"))
    for login, where in logins:
        read_secret(data_dir, login, where)


def start_bridges(
    node: BridgeNode, *, sleep: Sleep | None = None, idle_wait: float = 30.0
) -> list[Bridge]:
    """Build every configured bridge (and the desk room), then start them; returns them running.

    Each waits on the node's clock unless a test gives its own ``sleep``."""
    sleep = sleep or node.clock.sleep
    bridges: list[Bridge] = []
    configs = node.config.bridges.matrix
    if configs:
        with _needs_nio("bridges.matrix"):
            from bridges.matrix.bridge import MatrixBridgeRunner

        bridges += [
            MatrixBridgeRunner(node, config, index, sleep=sleep, idle_wait=idle_wait)
            for index, config in enumerate(configs)
        ]
    if node.config.desk.matrix is not None:
        with _needs_nio("desk.matrix"):
            from bridges.matrix.deskroom import DeskRoom

        bridges.append(DeskRoom(node, node.config.desk.matrix, sleep=sleep))
    if node.config.bridges.cap.sources:
        from bridges.cap.importer import CapImporter

        importer = CapImporter(node, node.desk, sleep=sleep)
        node.metrics.collectors.append(importer.metrics_lines)
        bridges.append(importer)
    if node.config.bridges.sms is not None:
        from bridges.sms.bridge import SmsBridgeRunner

        bridges.append(
            SmsBridgeRunner(node, node.config.bridges.sms, sleep=sleep, idle_wait=idle_wait)
        )
    for bridge in bridges:
        bridge.start()  # type: ignore[attr-defined]
    return bridges
