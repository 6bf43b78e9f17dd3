"""A running node checks the lists it subscribes to every ``[trustlists] refresh`` (the
node clock is a ``FakeClock``): it takes a newer version the host publishes, and logs
and records a refusal. The node hosts the list itself and fetches it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from keys.cards.trustlist import set_fingerprint
from keys.store import trustlist_ops, trustsub_ops
from relay.core.config import parse
from relay.core.errors import ConfigError
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.conftest import start_node
from tests.helpers import wait_for
from tests.trustlist_helpers import MAINTAINERS, T, document, signed


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Node, str]]:
    running, runner, url, _ = await start_node(
        tmp_path, clock, config_extra='\n[trustlists]\nrefresh = "30m"\n'
    )
    yield running, url
    await runner.cleanup()
    await running.stop()


async def test_the_node_takes_a_new_version_within_one_refresh(
    node: tuple[Node, str], clock: FakeClock
) -> None:
    running, base = node
    data = running.data_dir
    v1 = signed(document(), MAINTAINERS[:2])
    trustlist_ops.publish(data, [v1.raw], clock)
    url = f"{base}/trustlists/v1/socal"
    trustsub_ops.subscribe(data, url, set_fingerprint(v1.document), [], [v1.raw], clock)
    v2 = signed(document(2, previous=v1, issued_at=T + timedelta(minutes=1)), MAINTAINERS[:2])
    clock.advance("2m")
    trustlist_ops.publish(data, [v2.raw], clock)

    def held() -> int:
        return int(trustsub_ops.listing(data, clock)[0]["version"])

    assert held() == 1
    clock.advance("28m")  # 30m after the node started: its first check
    await wait_for(lambda: held() == 2, what="version 2 held after one refresh")

    # Another version 2, signed by a maintainer alone: refused, logged, recorded.
    other = signed(document(2, extra=("x-net",), previous=v1), MAINTAINERS[:1])
    with structlog.testing.capture_logs() as logs:
        await running.db.write(
            lambda conn: conn.execute(
                "UPDATE trustlist_versions SET envelope = ? WHERE version = 2", (other.raw,)
            )
        )
        # The timed check that took version 2 may still be reloading trust (its members are
        # peers now) when the clock moves again, and then schedules the next one from its
        # end: check on demand, the same code as the timer.
        await running.federation.refresh_trustlists()  # type: ignore[union-attr]
        assert trustsub_ops.listing(data, clock)[0]["refusal"] is not None
    refused = [log for log in logs if log["event"] == "trustlist refused"]
    assert refused and refused[0]["list"] == "socal"
    assert refused[0]["reason"] == "below_threshold"
    assert held() == 2


def test_the_refresh_setting_is_bounded() -> None:
    base = '[node]\nnetwork = "ventura"\n'
    assert parse(base).trustlists.refresh == "1h"
    for bad in ("1m", "2d"):
        with pytest.raises(ConfigError, match=r"trustlists\.refresh"):
            parse(base + f'[trustlists]\nrefresh = "{bad}"\n')
