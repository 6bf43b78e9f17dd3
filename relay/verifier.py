"""Ed25519 verification in worker processes (``relay.verify_worker``).

Why processes: PyNaCl releases the GIL while it verifies, but each call has
to take the GIL back when it returns, and under load it waits for whichever
thread holds it (the database writer, the event loop, the other verifier).
Profiling a loaded node on two cores showed its verification threads
spending about as long waiting for the GIL as verifying. A worker process
has a GIL of its own; the node only frames the work and reads the answers
(``run``), on the event loop, without blocking it.

The pool is an optimisation with a fallback, never a dependency: until its
workers have answered a first request (they start in the background, after
the node is up) and after a worker fails, ``run`` returns None and the
pipeline verifies in its thread pool exactly as it always did. Workers get
public keys, signatures and signed bytes, nothing secret, and answer one
byte per signature; their answers are read under the same size limits as
anything else (one per signature asked, in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from relay.envelope import Plan
from relay.verify_worker import GROUP, HEADER, INVALID, SKIPPED, VALID

START_TIMEOUT_S = 30.0
_log = structlog.get_logger("avisa.verifier")


def encode_group(plan: Plan) -> tuple[bytes, int]:
    """One envelope's checks in the worker's framing, and how many signatures it sends."""
    pairs = [
        entry.public_key + signature
        for entry, signature in zip(plan.entries, plan.signatures, strict=True)
        if entry is not None
    ]
    return GROUP.pack(len(plan.message), len(pairs)) + plan.message + b"".join(pairs), len(pairs)


def decode_group(plan: Plan, results: bytes) -> list[bool]:
    """The worker's answers as ``envelope.run_plan(plan, stop_at_forgery=True)`` gives them."""
    valid: list[bool] = []
    answers = iter(results)
    for entry in plan.entries:
        if entry is None:
            valid.append(False)
            continue
        answer = next(answers)
        if answer == SKIPPED:
            break
        valid.append(answer == VALID)
        if answer == INVALID:
            break
    return valid


class WorkerGone(Exception):
    """A worker exited or answered out of turn; its batches go back to the threads."""


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    outstanding: int = 0  # signatures asked and not yet answered
    alive: bool = True
    reader: asyncio.Task[None] | None = None

    async def ask(self, ident: int, body: bytes, signatures: int) -> bytes:
        """Send one request and wait for its answer; the caller has added ``signatures``
        to ``outstanding`` already (so the next choice of worker sees this one busy)."""
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
            self.outstanding -= signatures
        if len(answer) != signatures:
            self.fail()
            raise WorkerGone("answer of the wrong length")
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
                    "relay.verify_worker",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
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

    async def run(self, groups: Sequence[tuple[bytes, int]]) -> list[bytes] | None:
        """Each group's answers (``encode_group``'s output in, bytes out), or None to fall back."""
        live = [worker for worker in self._workers if worker.alive]
        if not self._ready or not live:
            return None
        parts = _split(groups, len(live))
        self.requests += 1
        asks = []
        for part in parts:
            worker = min(live, key=lambda w: w.outstanding)
            body = b"".join(group for group, _ in part)
            signatures = sum(count for _, count in part)
            worker.outstanding += signatures
            asks.append(asyncio.ensure_future(worker.ask(next(self._ids), body, signatures)))
        answers = await asyncio.gather(*asks, return_exceptions=True)
        if any(isinstance(answer, BaseException) for answer in answers):
            return None
        results: list[bytes] = []
        for part, answer in zip(parts, answers, strict=True):
            assert isinstance(answer, bytes)
            offset = 0
            for _, count in part:
                results.append(answer[offset : offset + count])
                offset += count
        return results


def _split(groups: Sequence[tuple[bytes, int]], ways: int) -> list[Sequence[tuple[bytes, int]]]:
    """Contiguous parts with about the same number of signatures each."""
    total = sum(count for _, count in groups)
    share = max(1, -(-total // ways))
    parts: list[Sequence[tuple[bytes, int]]] = []
    start = taken = 0
    for index, (_, count) in enumerate(groups):
        taken += count
        if taken >= share and len(parts) < ways - 1:
            parts.append(groups[start : index + 1])
            start, taken = index + 1, 0
    if start < len(groups) or not parts:
        parts.append(groups[start:])
    return parts
