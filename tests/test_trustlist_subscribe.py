"""``keys.store.trustsub_ops`` on a real data directory, with the node clock injected:
what a subscription holds after each check, and what it records when it refuses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from keys.cards.trustlist import TrustListRefused, set_fingerprint
from keys.store import trustsub_ops
from relay.cli import datadir
from relay.runtime.clock import FakeClock
from tests.trustlist_helpers import MAINTAINERS, T, chain, document, signed

URL = "https://host.example.org/trustlists/v1/socal"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    made = tmp_path / "pomona"
    datadir.initialize(made, "pomona", clock=FakeClock(T))
    return made


def test_a_refusal_keeps_nothing_and_a_later_check_walks_on(data: Path) -> None:
    clock = FakeClock(T + timedelta(days=2))
    v1, v2, v3 = chain(3)
    fp = set_fingerprint(v1.document)
    with pytest.raises(TrustListRefused, match="skipped_version"):
        trustsub_ops.subscribe(data, URL, fp, [], [v2.raw], clock)
    assert trustsub_ops.listing(data, clock) == []
    held = trustsub_ops.subscribe(data, URL, fp, ["fips:06"], [v1.raw], clock)
    assert held.version == 1
    result = trustsub_ops.refresh(data, "socal", [v3.raw], clock)
    assert result.refusal is not None and result.refusal[0] == "skipped_version"
    assert result.version == 1
    result = trustsub_ops.refresh(data, "socal", [v2.raw, v3.raw], clock)
    assert (result.version, result.accepted, result.refusal) == (3, (2, 3), None)
    (shown,) = trustsub_ops.listing(data, clock)
    assert shown["refusal"] is None and shown["version"] == 3  # a good check clears it


def test_an_expired_list_is_recorded_as_frozen_until_a_newer_version(data: Path) -> None:
    clock = FakeClock(T + timedelta(days=1))
    v1 = chain(1)[0]
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), [], [v1.raw], clock)
    clock.now = T + timedelta(days=31)
    result = trustsub_ops.refresh(data, "socal", [v1.raw], clock)
    assert result.refusal is not None and result.refusal[0] == "expired"
    (shown,) = trustsub_ops.listing(data, clock)
    assert shown["expired"] is True and shown["refusal"]["reason"] == "expired"
    fresh = signed(document(2, previous=v1, issued_at=clock.now), MAINTAINERS[:2])
    result = trustsub_ops.refresh(data, "socal", [fresh.raw], clock)
    assert (result.version, result.refusal) == (2, None)
    (shown,) = trustsub_ops.listing(data, clock)
    assert shown["expired"] is False


def test_a_fetch_that_failed_is_recorded_and_changes_nothing(data: Path) -> None:
    clock = FakeClock(T + timedelta(days=1))
    v1 = chain(1)[0]
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), [], [v1.raw], clock)
    unfetched = trustsub_ops.Unfetched("unreachable", "timeout")
    result = trustsub_ops.refresh(data, "socal", unfetched, clock)
    assert result.refusal == ("unreachable", "timeout") and result.version == 1
    with pytest.raises(Exception, match="not subscribed to norcal"):
        trustsub_ops.refresh(data, "norcal", [v1.raw], clock)
