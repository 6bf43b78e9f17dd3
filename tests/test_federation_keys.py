"""Peers follow each other's key rotations over the key document, with no operator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keys.store import own_ops
from relay.runtime.clock import FakeClock
from tests.fedkit import members, pulled, trusts
from tests.helpers import wait_for


async def test_a_rotation_reaches_a_peer_through_the_key_document(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["net-a", "net-b"]) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(a, b)
        await trusts(b, a)
        await wait_for(lambda: pulled(a, "net-b"), what="a->b")
        first = await a.publish()
        await wait_for(lambda: b.alert(first["id"]), what="first alert at b")

        old_keyid = a.node.key.keyid
        rotated = await asyncio.to_thread(own_ops.rotate, a.data_dir, None, clock)
        await a.node.reload_trust()
        assert a.node.key.keyid == rotated.keyid != old_keyid

        # A now signs requests and alerts with a key B has never seen: B answers
        # 401 unknown key, fetches A's key document, and follows the rotation,
        # which is signed by both keys. A retries after its backoff.
        second = await a.publish()

        async def arrived() -> bool:
            if await b.alert(second["id"]):
                return True
            clock.advance("2s")
            return False

        await wait_for(arrived, timeout=30, what="alert signed by the new key at b")
        shown = await b.alert(second["id"])
        assert shown is not None and shown["state"] == "active"
        assert shown["envelope"]["signatures"][0]["keyid"] == rotated.keyid
        new_entry = b.node.trust.keyring.get(rotated.keyid)
        old_entry = b.node.trust.keyring.get(old_keyid)
        assert new_entry is not None and new_entry.network == "net-a"
        assert old_entry is not None and old_entry.valid_until is not None
