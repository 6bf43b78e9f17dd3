"""Verification in worker processes says exactly what verification in threads says."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from keys.core.keyring import KeyEntry, Keyring
from relay.core.model import MAX_ENVELOPE_BYTES, Envelope, Signature, encode_envelope
from relay.core.policy import Policy
from relay.runtime import pipeline
from relay.runtime.pipeline import INLINE_ENVELOPES, Prepared, Rejected, finish, prepare
from relay.runtime.verifier import (
    VerifierPool,
    WorkerGone,
    encode_envelopes,
    encode_keys,
    read_answer,
    read_answers,
)
from relay.runtime.verify_worker import check_body
from relay.storage.trust import TrustSnapshot
from tests.helpers import envelope_for, key, make_alert
from tests.test_pipeline_batch import mixed, tables, twin

KNOWN = Keyring([KeyEntry("a", key(1).public_key), KeyEntry("b", key(2).public_key)])


def spoiled(envelope: Envelope, index: int) -> Envelope:
    """The same envelope with signature ``index`` altered (a forgery of a known key)."""
    signatures = list(envelope.signatures)
    keyid, sig = signatures[index].keyid, signatures[index].sig
    signatures[index] = Signature(keyid, ("B" if sig[0] == "A" else "A") + sig[1:])
    return Envelope(envelope.payloadType, envelope.payload, signatures)


def cases() -> list[Envelope]:
    alert = make_alert("a")
    three = envelope_for(alert, key(1), key(2), key(3))  # key 3 is unknown
    twice = Envelope(three.payloadType, three.payload, [*three.signatures, three.signatures[0]])
    return [
        three,
        twice,
        spoiled(three, 0),  # forged first: nothing after it is checked
        spoiled(three, 1),
        spoiled(three, 2),  # an unknown key's bad signature is not a forgery
        envelope_for(alert, key(3)),
        spoiled(envelope_for(alert, key(2), key(1)), 1),
    ]


SNAPSHOT = TrustSnapshot(policy=Policy("here"), keyring=KNOWN)


def raws() -> list[bytes]:
    """The signature cases, and envelopes refused before any signature is checked."""
    good = encode_envelope(cases()[0])
    other_type = Envelope("text/plain", cases()[0].payload, list(cases()[0].signatures))
    return [
        *(encode_envelope(envelope) for envelope in cases()),
        good.replace(b'"payloadType"', b'"payloadType" '),  # not canonical, still strict JSON
        b"{" + good,  # not JSON
        good[:-1] + b',"extra":1}',  # unknown field
        encode_envelope(other_type),
        b" " * (MAX_ENVELOPE_BYTES + 1),
    ]


def by_worker(raw: bytes) -> Prepared | Rejected:
    body = encode_keys(KNOWN) + encode_envelopes([raw])
    (result,) = read_answer(check_body(body), 1)
    return finish(result, SNAPSHOT)


@pytest.mark.parametrize("index", range(len(raws())))
def test_a_worker_prepares_what_the_node_prepares_itself(index: int) -> None:
    raw = raws()[index]
    assert by_worker(raw) == prepare(raw, SNAPSHOT)


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"\x07",
        b"\x00\xff\xff\xff\xff",
        check_body(encode_keys(KNOWN) + encode_envelopes([encode_envelope(cases()[0])])) + b"\x00",
    ],
)
def test_an_answer_that_does_not_parse_is_a_gone_worker(answer: bytes) -> None:
    with pytest.raises(WorkerGone):
        read_answer(answer, 1)


async def test_pool_verifies_in_processes_and_falls_back_when_a_worker_dies() -> None:
    pool = VerifierPool(2)
    await pool.start()
    try:
        assert pool.ready
        keys = encode_keys(KNOWN)
        answers = await pool.run(raws(), keys)
        assert answers is not None
        assert [finish(r, SNAPSHOT) for r in read_answers(answers)] == [
            prepare(raw, SNAPSHOT) for raw in raws()
        ]
        for worker in pool._workers:
            os.kill(worker.process.pid, signal.SIGKILL)
        for _ in range(200):
            if not pool.ready:
                break
            await asyncio.sleep(0.01)
        assert not pool.ready
        assert await pool.run(raws()[:1], keys) is None  # the caller verifies itself
    finally:
        await pool.stop()


@pytest.mark.parametrize(("rate_limit", "batch"), [(600, 50), (8, 50), (600, 3), (8, 4)])
async def test_pipeline_with_workers_decides_and_stores_the_same(
    tmp_path: Path, rate_limit: int, batch: int
) -> None:
    envelopes = mixed() + mixed()[:6]  # the repeats meet ids an earlier batch stored
    async with (
        twin(tmp_path, "workers", rate_limit) as workers,
        twin(tmp_path, "threads", rate_limit) as threads,
    ):
        await workers.verifier.start()
        assert workers.verifier.ready
        with_workers, in_threads = [], []
        for start in range(0, len(envelopes), batch):
            part = envelopes[start : start + batch]
            with_workers += await workers.pipeline.ingest(part, from_peer="relay")
            in_threads += await threads.pipeline.ingest(part, from_peer="relay")
        assert [(o.id, o.status, o.reason, o.pos) for o in with_workers] == [
            (o.id, o.status, o.reason, o.pos) for o in in_threads
        ]
        assert await tables(workers) == await tables(threads)


async def test_a_few_envelopes_are_verified_in_the_parse_thread(tmp_path: Path) -> None:
    """A small transaction skips the round trip to a worker process (latency on a busy
    host); a full one goes to the workers."""
    envelopes = mixed()
    assert len(envelopes) > INLINE_ENVELOPES
    async with twin(tmp_path, "workers", 600) as node:
        await node.verifier.start()
        await node.pipeline.ingest(envelopes[:INLINE_ENVELOPES], from_peer="relay")
        assert node.verifier.requests == 0
        await node.pipeline.ingest(envelopes[INLINE_ENVELOPES:], from_peer="relay")
        assert node.verifier.requests == 1


async def test_an_answer_that_does_not_parse_stops_the_workers_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nonsense(answers: object) -> list[object]:
        raise WorkerGone("an answer that does not parse")

    envelopes = mixed()
    async with (
        twin(tmp_path, "workers", 600) as workers,
        twin(tmp_path, "threads", 600) as threads,
    ):
        await workers.verifier.start()
        monkeypatch.setattr(pipeline, "read_answers", nonsense)
        with_workers = await workers.pipeline.ingest(envelopes, from_peer="relay")
        in_threads = await threads.pipeline.ingest(envelopes, from_peer="relay")
        assert workers.verifier.requests == 1
        assert not workers.verifier.ready
        assert with_workers == in_threads
        assert await tables(workers) == await tables(threads)
