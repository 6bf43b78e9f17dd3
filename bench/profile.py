"""Profile the node under the ingest or flood load with py-spy (a developer tool).

    pip install py-spy
    python -m bench.profile ingest --seconds 20 --out /tmp/ingest.txt
    python -m bench.profile flood --seconds 10 --out /tmp/flood.txt

Runs the phase's load against one ``avisa run`` process while ``py-spy
record --format raw`` samples every thread of that process (``--idle``
off, so waiting threads do not count), then prints the heaviest frames:
self time and total time, as a share of all samples. The raw file (one
collapsed stack per line) feeds any flame-graph tool.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench import alerts, flood
from bench.harness import FakePeer, NodeProcess, PeerStub, stopping
from bench.ingest import drive, report


def top_frames(raw: Path, count: int) -> dict[str, list[tuple[str, float]]]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not weight.isdigit():
            continue
        n = int(weight)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    share = 100.0 / max(samples, 1)
    return {
        "self_pct": [(f, round(n * share, 1)) for f, n in own.most_common(count)],
        "total_pct": [(f, round(n * share, 1)) for f, n in total.most_common(count)],
    }


GIL_ONLY: list[str] = []


def spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    tool = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [tool, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--threads", "--nonblocking", *GIL_ONLY, "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def ingest(root: Path, seconds: float, out: Path) -> dict[str, object]:
    origin, relay = FakePeer("bench-origin"), FakePeer("bench-relay")
    count = 20_000 * int(seconds)
    envelopes = alerts.signed_envelopes(origin.key, origin.network, relay.key, count)
    bodies = list(alerts.transactions(envelopes, 50))
    async with PeerStub() as stub, aiohttp.ClientSession() as http:
        origin.url = relay.url = stub.url
        node = NodeProcess(root, "bench-ingest")
        node.trust(origin.trusted(), relay.trusted())
        with stopping([node]):
            node.start()
            await node.ready(http)
            sampler = spy(node.pid, seconds, out)
            tally = await drive(node, relay, bodies, 50, 4, 0, seconds)
            sampler.wait()
    return report(tally, 50, 4)


async def flooded(root: Path, seconds: float, out: Path) -> dict[str, object]:
    async with PeerStub() as stub:
        # The flood phase profiles its flooded node F (the second process it starts).
        original = NodeProcess.start

        def start(self: NodeProcess) -> float:
            launched = original(self)
            if self.network == "flood-f":
                spy_later.append(self)
            return launched

        spy_later: list[NodeProcess] = []
        NodeProcess.start = start  # type: ignore[method-assign]
        task = asyncio.create_task(flood.run(root, stub, 20_000, 400, 50, int(seconds * 20), 20.0))
        while not spy_later:
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)
        sampler = spy(spy_later[0].pid, seconds, out)
        result = await task
        sampler.wait()
        NodeProcess.start = original  # type: ignore[method-assign]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["ingest", "flood"])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    args = parser.parse_args()
    if args.gil:
        GIL_ONLY.append("--gil")
    with tempfile.TemporaryDirectory(prefix="avisa-profile-") as tmp:
        run = ingest if args.phase == "ingest" else flooded
        figures = asyncio.run(run(Path(tmp), args.seconds, args.out))
    print(json.dumps(figures))
    for kind, frames in top_frames(args.out, args.top).items():
        print(kind)
        for frame, pct in frames:
            print(f"  {pct:5.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
