"""The demo's coalition step: a trust list vouches for its members once.

Ventura and Los Angeles, as the maintainers of ``socal`` (any two sign: here
both), draft version 1 naming the three networks each for its own county, sign
it on their own nodes and Los Angeles publishes it. Orange subscribes with the
maintainer-set fingerprint, read aloud once by a maintainer, and Ventura
subscribes too (members hear each other directly). Orange never
exchanged cards with Ventura: from then on it trusts Ventura through the list
(its ``/api/v1/peers`` says so), accepts Ventura's next alert for Ventura County
on Ventura's own word, and ``avisa policy explain`` names list socal version 1
as the rule that made the origin trusted.

Everything is typed as an operator would (``relay.demo.run.cli``) against the
running nodes' data directories, and printed as typed (files by name, without
``--data``). Each command runs in a thread, since ``subscribe`` runs its own
event loop; the story awaits it, so nothing else prints while ``cli`` holds
stdout. A command that fails fails the step with its one-line message.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any

from relay.cli.words import plural
from relay.core.errors import AvisaError
from relay.demo.run import DemoNode, cli
from relay.demo.story import StepFailed, Story, draft
from relay.runtime.clock import system_clock

MAINTAINERS = ("ventura", "la")
LIST = "socal"
SCOPE = "fips:06"  # the widest Orange lets any member of the list speak for: California


class Coalition:
    """The step, played by ``Scenario.run``; one method per moment of it."""

    def __init__(self, story: Story) -> None:
        self.story = story
        self.federation = story.federation
        self.ventura, self.la, self.orange = (
            self.federation[name] for name in ("ventura", "la", "orange")
        )
        self.file = self.federation.workdir / f"{LIST}-1.json"

    async def avisa(self, node: DemoNode, *argv: str, into: Path | None = None) -> str:
        """``avisa ARGV --data NODE`` at ``node``, printed as the operator types it (files
        by name, in the demo's directory; ``into``: its output redirected to that file),
        without blocking the story's loop."""
        typed = shlex.join(argv).replace(f"{self.federation.workdir}/", "")
        print(f"  {node.name + '$':8} avisa {typed}" + (f" > {into.name}" if into else ""))
        try:
            said = await asyncio.to_thread(cli, *argv, "--data", str(node.data))
        except AvisaError as exc:
            raise StepFailed(str(exc)) from None
        if into is not None:
            into.write_text(said)
        return said

    async def play(self) -> None:
        fingerprint = await self.draft()
        await self.sign()
        t0 = system_clock.monotonic()
        url = await self.publish()
        await self.subscribe(url, fingerprint, t0)
        await self.vouched()

    async def draft(self) -> str:
        """Ventura drafts version 1: the maintainers first (a list's maintainers are its
        members), then each member again with its own county (``--edit``)."""
        workdir, out = self.federation.workdir, str(self.file)
        cards = {name: str(workdir / f"{name}.card.json") for name in self.federation.nodes}
        said = await self.avisa(
            self.ventura, "trustlist", "draft", "--out", out, "--list", LIST,
            "--maintainers", *MAINTAINERS, "--threshold", "2",
            "--add-card", cards["ventura"], "--add-card", cards["la"],
            "--speaks-for", self.ventura.region.code,
        )  # fmt: skip
        for node in (self.la, self.orange):
            said = await self.avisa(
                self.ventura, "trustlist", "draft", "--edit", out, "--out", out, "--force",
                "--add-card", cards[node.name], "--speaks-for", node.region.code,
            )  # fmt: skip
        fingerprint = _after(said, "maintainer-set fingerprint: ")
        print(
            f"  ✓ version 1 names ventura, la and orange, each for its own county;"
            f" maintainer-set fingerprint {fingerprint}"
        )
        return fingerprint

    async def sign(self) -> None:
        """Each maintainer signs on its own node; the file travels between them."""
        for node in (self.ventura, self.la):
            said = await self.avisa(node, "trustlist", "sign", str(self.file))
            needed = int(_after(said, "still needed: ").split()[0])
            print(f"  ✓ signed by {node.name}; {plural(needed, 'more signature')} needed")
        if needed:
            raise StepFailed(f"both maintainers signed, and {plural(needed, 'signature')} missing")

    async def publish(self) -> str:
        said = await self.avisa(self.la, "trustlist", "publish", str(self.file))
        url = _after(said, "served at ")
        print(f"  ✓ la serves it at {url}")
        return url

    async def subscribe(self, url: str, fingerprint: str, t0: float) -> None:
        """Orange follows the list with the fingerprint a maintainer read aloud to it once;
        its running node takes the members as peers. Ventura follows it too, as every
        member does: members hear each other directly, which needs both sides."""
        for node in (self.orange, self.ventura):
            await self.avisa(
                node, "trustlist", "subscribe", url,
                "--fingerprint", fingerprint, "--max-speaks-for", SCOPE,
            )  # fmt: skip
            if node is self.orange:
                print("           (a maintainer read that fingerprint aloud to orange, once)")
        peer, ms = await self.peer_via_list(self.orange, "ventura", t0)
        await self.peer_via_list(self.ventura, "orange", t0)
        (source,) = peer["lists"]
        print(
            f"  ✓ {ms:.0f} ms after la published, orange's /api/v1/peers shows ventura trusted"
            f" via list {source['list']} v{source['version']} for"
            f" {', '.join(peer['speaks_for'])}, and linked both ways:"
            " orange never exchanged cards with ventura"
        )

    async def peer_via_list(
        self, node: DemoNode, network: str, since: float
    ) -> tuple[dict[str, Any], float]:
        """``network`` among ``node``'s peers through the list, once the running node
        reloaded its trust and its link to it answered; and the milliseconds ``since``."""
        found: dict[str, Any] = {}

        async def check() -> bool:
            reply = await self.story.call(node, "GET", "/api/v1/peers")
            for peer in reply["peers"]:
                linked = peer.get("last_success") is not None
                if peer["network"] == network and peer["trusted_via"] == "list" and linked:
                    found.update(peer)
            return bool(found)

        ms = await self.story.until(check, f"{network} linked as a list peer of {node.name}", since)
        return found, ms

    async def vouched(self) -> None:
        """Ventura's next alert: accepted at orange on ventura's word, through the list."""
        story = self.story
        alert_id, t0 = await story.publish(
            self.ventura,
            draft(
                "checkpoint",
                "confirmed",
                "Thousand Oaks Blvd",
                "9q56ru",
                "fips:06111",
                "Retén confirmado en Thousand Oaks Blvd",
                "Checkpoint confirmed on Thousand Oaks Blvd",
            ),
        )
        print(f"  ventura signed {alert_id}")
        ms = await story.decided(self.orange, alert_id, "authoritative", t0)
        envelope = self.federation.workdir / "vouched.envelope.json"
        await self.avisa(self.orange, "alert", "show", alert_id, "--envelope", into=envelope)
        said = await self.avisa(self.orange, "policy", "explain", str(envelope), "--json")
        explained = json.loads(said)
        trusted, accepted = str(explained["origin_trusted"]), explained.get("accepted_here")
        if not trusted.startswith(f"through list {LIST} version 1") or not accepted:
            raise StepFailed(f"orange's policy explain says origin_trusted: {trusted}")
        print(
            f"  ✓ orange accepted it after {ms:.0f} ms (it came from {accepted['from_peer']}):"
            f" {accepted['reason']}, on ventura's own word now, no endorsement needed"
        )
        print(f"  ✓ origin_trusted: {trusted}")


def _after(out: str, label: str) -> str:
    """The rest of the first line of a command's output that contains ``label``."""
    for line in out.splitlines():
        if label in line:
            return line.split(label, 1)[1].strip()
    raise StepFailed(f"the command printed no {label.strip()!r}: {out.strip()}")
