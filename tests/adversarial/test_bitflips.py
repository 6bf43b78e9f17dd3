"""Bit flips of 1,000 signed envelopes: none is accepted (see ``bitflip`` for the method).

``make test`` runs a deterministic subset: for envelope i the bits b ≡ i
(mod 32) of payload, signature and keyid, plus every position not yet
covered, so each bit position of each field is flipped at least once
(148,291 flips). ``make bitflips`` runs every bit of every envelope
(4,744,808). A sample also goes through the real HTTP endpoint, as
federation transactions signed by the trusted peer: every flipped envelope is
answered ``rejected``, and no alert, feed or outbox row appears.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from relay.core.model import encode_envelope
from relay.runtime.clock import FakeClock
from tests.adversarial import bitflip
from tests.adversarial.kit import figure, table_rows, target_node

SUBSET_STRIDE = 32


def test_every_bit_position_is_covered_by_the_subset() -> None:
    items = bitflip.originals()
    flips = bitflip.plan(items, SUBSET_STRIDE)
    for field in bitflip.FIELDS:
        widest = max(item.bits(field) for item in items)
        assert {bit for _, f, bit in flips if f == field} == set(range(widest)), field
    assert len({i for i, _, _ in flips}) == bitflip.ENVELOPES


def test_no_flipped_envelope_is_accepted() -> None:
    report = bitflip.run(SUBSET_STRIDE)
    figure("bitflips_subset", **report.as_dict())
    assert report.controls_accepted == report.envelopes == 1000
    assert report.accepted == 0, report.outcomes
    assert all(field in report.by_field for field in bitflip.FIELDS)


async def test_flipped_envelopes_over_http_are_all_rejected(
    tmp_path: Path, clock: FakeClock
) -> None:
    items = bitflip.originals(20)
    sample = []
    for i, item in enumerate(items):
        for field in bitflip.FIELDS:
            step = max(1, item.bits(field) // 40)
            sample += [
                bitflip.flipped(item, field, b) for b in range(i % step, item.bits(field), step)
            ]
    async with target_node(tmp_path, clock) as target:
        path = target.node.db.path
        watched = ("alerts", "feed", "outbox", "tombstones", "origins")
        before = {table: table_rows(path, table) for table in watched}
        statuses: Counter[str] = Counter()
        started = time.monotonic()
        for n, start in enumerate(range(0, len(sample), 50)):
            body = b'{"envelopes":[' + b",".join(sample[start : start + 50]) + b"]}"
            status, reply = await target.fed("PUT", f"/federation/v1/send/flips{n}", body)
            assert status == 200, reply
            for result in json.loads(reply)["results"]:
                statuses[f"{result['status']}:{result['reason']}"] += 1
        seconds = time.monotonic() - started
        assert {table: table_rows(path, table) for table in watched} == before
        # The control: the same path accepts the unflipped envelope.
        control = b'{"envelopes":[' + encode_envelope(items[0].envelope) + b"]}"
        status, reply = await target.fed("PUT", "/federation/v1/send/control", control)
        assert json.loads(reply)["results"][0]["status"] == "accepted", reply
    figure(
        "bitflips_http",
        flipped_envelopes=len(sample),
        transactions=-(-len(sample) // 50),
        seconds=round(seconds, 1),
        outcomes=dict(statuses),
    )
    assert sum(statuses.values()) == len(sample)
    assert all(outcome.startswith("rejected:") for outcome in statuses), statuses
