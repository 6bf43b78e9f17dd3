"""Envelopes opened and verified in worker processes (``relay.runtime.verify_worker``).

Why processes: PyNaCl releases the GIL while it verifies, but each call has
to take the GIL back when it returns, and under load it waits for whichever
thread holds it (the database writer, the event loop, the parse stage).
Profiling a loaded node on two cores showed its verification threads
spending about as long waiting for the GIL as verifying. A worker process
has a GIL of its own. Workers also do the strict reading of each envelope
(JSON, canonical base64), which the node's process would otherwise do under
its GIL; the node frames the raw envelopes and the public keys (``run``, on
the event loop) and reads the answers back (``read_answer``).

The pool is an optimisation with a fallback, never a dependency: until its
workers have answered a first request (they start in the background, after
the node is up) and after a worker fails, ``run`` returns None and the
pipeline verifies in its thread pool exactly as it always did. Workers get
public keys and envelopes, nothing secret. An answer is read under bounds
(one result per envelope, every length inside the answer); one that does not
parse raises ``WorkerGone`` and the batch is verified in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from keys.core.keyring import Keyring
from relay.core.envelope import Opened, Refusal
from relay.core.model import ALERT_PAYLOAD_TYPE, Envelope, Signature
from relay.runtime.verify_worker import HEADER, OPENED, REFUSALS, SIG_B64_LEN, U8, U16, U32

START_TIMEOUT_S = 30.0
_log = structlog.get_logger("avisa.verifier")
_REFUSED_BY: dict[int, Refusal] = {byte: refusal for refusal, byte in REFUSALS.items()}


def encode_keys(keyring: Keyring) -> bytes:
    """The public keys a request lets the workers use, in their framing."""
    entries = [(entry.keyid.encode("ascii"), entry.public_key) for entry in keyring]
    return U16.pack(len(entries)) + b"".join(
        U8.pack(len(keyid)) + keyid + public_key for keyid, public_key in entries
    )


def encode_envelopes(raws: Sequence[bytes]) -> bytes:
    return U16.pack(len(raws)) + b"".join(U32.pack(len(raw)) + raw for raw in raws)


class WorkerGone(Exception):
    """A worker exited or answered out of turn; its batches go back to the threads."""


def read_answer(answer: bytes, count: int) -> list[Opened | Refusal]:
    """``count`` results, each what ``envelope.open_and_check`` gave in the worker.
    Raises ``WorkerGone``."""
    try:
        results, offset = [], 0
        for _ in range(count):
            result, offset = _read_result(answer, offset)
            results.append(result)
    except (struct.error, UnicodeDecodeError, KeyError, ValueError):
        raise WorkerGone("an answer that does not parse") from None
    if offset != len(answer):
        raise WorkerGone("an answer longer than its results")
    return results


def _take(answer: bytes, offset: int, size: int) -> tuple[bytes, int]:
    end = offset + size
    if end > len(answer):
        raise ValueError("past the end")
    return answer[offset:end], end


def _read_result(answer: bytes, offset: int) -> tuple[Opened | Refusal, int]:
    (status,) = U8.unpack_from(answer, offset)
    offset += 1
    if status != OPENED:
        return _REFUSED_BY[status], offset
    (size,) = U32.unpack_from(answer, offset)
    payload_b64, offset = _take(answer, offset + 4, size)
    (size,) = U32.unpack_from(answer, offset)
    payload, offset = _take(answer, offset + 4, size)
    (count,) = U8.unpack_from(answer, offset)
    offset += 1
    signatures = []
    for _ in range(count):
        (size,) = U8.unpack_from(answer, offset)
        keyid, offset = _take(answer, offset + 1, size)
        sig, offset = _take(answer, offset, SIG_B64_LEN)
        signatures.append(Signature(keyid.decode("ascii"), sig.decode("ascii")))
    (checked,) = U8.unpack_from(answer, offset)
    flags, offset = _take(answer, offset + 1, checked)
    if checked > count:
        raise ValueError("more checks than signatures")
    envelope = Envelope(ALERT_PAYLOAD_TYPE, payload_b64.decode("ascii"), signatures)
    return Opened(envelope, payload, [flag == 1 for flag in flags]), offset


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    outstanding: int = 0  # envelopes asked about and not yet answered
    alive: bool = True
    reader: asyncio.Task[None] | None = None

    async def ask(self, ident: int, body: bytes, envelopes: int) -> bytes:
        """Send one request and read its answer; the caller has added ``envelopes`` to
        ``outstanding`` already (so the next choice of worker sees this one busy)."""
        assert self.process.stdin is not None
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        try:
            self.process.stdin.write(HEADER.pack(ident, len(body)) + body)
            await self.process.stdin.drain()
            answer = await future
        except (ConnectionError, BrokenPipeError, RuntimeError) as exc:
            self.fail()
            raise WorkerGone(str(exc)) from None
        finally:
            self.pending.pop(ident, None)
            self.outstanding -= envelopes
        return answer

    async def read_answers(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                ident, size = HEADER.unpack(await stdout.readexactly(HEADER.size))
                future = self.pending.get(ident)
                if future is None or size > 16 * 1024 * 1024:
                    self.fail()  # out of turn: nothing it says can be trusted now
                    return
                answer = await stdout.readexactly(size)
                if not future.done():
                    future.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.fail(exited=True)

    def fail(self, exited: bool = False) -> None:
        """Stop using this worker, and stop it unless it ``exited`` already (killing an
        exited child would reap it under asyncio's child watcher)."""
        if self.alive:
            self.alive = False
            _log.warning("verification worker stopped; verifying in threads")
            if not exited and self.process.returncode is None:
                self.process.kill()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerGone("worker stopped"))


class VerifierPool:
    """``workers`` verification processes; ``run`` spreads a batch over them."""

    def __init__(self, workers: int) -> None:
        self._size = workers
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._ready = False
        self.requests = 0  # batches sent to the workers (tests see which path ran)
        # The Python around the checks (parsing, planning, decoding payloads) runs
        # here, on one thread: with the signatures in the workers it is all GIL-bound,
        # so a second thread would only contend with the database writer for the GIL.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="avisa-parse")

    @property
    def ready(self) -> bool:
        return self._ready and any(worker.alive for worker in self._workers)

    @property
    def alive(self) -> int:
        """Workers answering now (``avisa_verify_workers`` in /metrics)."""
        return sum(worker.alive for worker in self._workers) if self._ready else 0

    async def start(self) -> None:
        """Start the workers and wait until each has answered once."""
        try:
            for _ in range(self._size):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "relay.runtime.verify_worker",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    # Its own process group: a terminal's Ctrl-C reaches the node alone
                    # (which then closes the worker's stdin), never a worker still starting.
                    process_group=0,
                )
                worker = _Worker(process)
                worker.reader = asyncio.create_task(worker.read_answers())
                self._workers.append(worker)
            async with asyncio.timeout(START_TIMEOUT_S):
                for worker in self._workers:
                    await worker.ask(next(self._ids), b"", 0)  # answers once it runs
        except (OSError, WorkerGone, TimeoutError) as exc:
            _log.warning("verification workers unavailable; verifying in threads", error=str(exc))
            await self.stop()
            return
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.alive = False  # a deliberate stop, not a failure to report
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in workers:
            try:
                async with asyncio.timeout(5):
                    await worker.process.wait()
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                worker.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader

    async def run(self, raws: Sequence[bytes], keys: bytes) -> list[tuple[bytes, int]] | None:
        """The workers' answers about ``raws``: (answer, how many envelopes it covers) per
        part, in order, for ``read_answers``; or None to fall back. ``keys`` is
        ``encode_keys`` of the trust snapshot the batch is judged by."""
        live = [worker for worker in self._workers if worker.alive]
        if not self._ready or not live:
            return None
        self.requests += 1
        asks, sizes = [], []
        for part in parts(len(raws), len(live)):
            worker = min(live, key=lambda w: w.outstanding)
            size = part.stop - part.start
            worker.outstanding += size
            body = keys + encode_envelopes(raws[part])
            asks.append(asyncio.ensure_future(worker.ask(next(self._ids), body, size)))
            sizes.append(size)
        answers = await asyncio.gather(*asks, return_exceptions=True)
        if any(isinstance(answer, BaseException) for answer in answers):
            return None
        return [
            (answer, size)
            for answer, size in zip(answers, sizes, strict=True)
            if isinstance(answer, bytes)
        ]

    def distrust(self) -> None:
        """An answer did not parse: stop every worker (the node verifies in threads)."""
        _log.error("a verification worker answered nonsense; stopping the workers")
        for worker in self._workers:
            worker.fail()


def read_answers(answers: Sequence[tuple[bytes, int]]) -> list[Opened | Refusal]:
    """Every part's results, in order (off the event loop). Raises ``WorkerGone``."""
    results: list[Opened | Refusal] = []
    for answer, count in answers:
        results.extend(read_answer(answer, count))
    return results


def parts(count: int, ways: int) -> list[slice]:
    """``count`` envelopes in at most ``ways`` contiguous parts of about the same size."""
    share = max(1, -(-count // max(ways, 1)))
    return [slice(start, min(start + share, count)) for start in range(0, count, share)]
