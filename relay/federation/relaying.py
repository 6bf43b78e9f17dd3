"""Other origins' checkpoints, cosigned and passed on with what this node relays.

DESIGN §16, docs/protocol.md §9.5. When ``relay.federation.repair`` has taken a
checkpoint of origin X from a peer, ``CheckpointRelay.pass_on`` sends it on to
the peers that get X's messages from this node (the one forwarding rule,
``relay.core.forwarding.should_forward``, with the cosigners counted as
signers: never back to X, to the peer it came from, or to a network that
cosigned it), so a node that does not hear from X directly still learns X's
head and can repair what a relay withheld. If this node's chain of X reached
the checkpoint's ``seq`` with the same head, it adds its own cosignature
(``relay.core.cosign``); a checkpoint it cannot vouch for goes on with the
cosignatures it came with (the origin's signature is what makes it one).

Bounds: only a checkpoint this node *took* is passed on (one newer than the
newest it held of X), so a checkpoint crosses each link at most once per
path and floods end where it was already seen; pushes go through the
checkpointer's per-peer queue (one in flight per peer and origin, only the
newest waiting); at most ``MAX_COSIGNATURES`` travel with it.
"""

from __future__ import annotations

from collections import Counter

from relay.core.checkpoints import Checkpoint
from relay.core.cosign import Cosignature, cosign, encode_relayed, witnesses
from relay.core.envelope import open_envelope
from relay.core.forwarding import should_forward
from relay.federation.checkpointing import Checkpointer
from relay.federation.host import FederationHost


class CheckpointRelay:
    """Passes taken checkpoints on; counts what it cosigned and relayed for ``/metrics``."""

    def __init__(self, host: FederationHost, checkpointer: Checkpointer) -> None:
        self.host = host
        self._checkpointer = checkpointer
        self.cosigned = 0
        self.relayed: Counter[str] = Counter()  # per origin: checkpoints passed on

    def targets(self, origin: str, from_peer: str, cosigners: list[str]) -> list[str]:
        """The peers that get ``origin``'s checkpoint from this node."""
        peers = self.host.trust.peers
        trusted = origin in peers
        return [
            name
            for name, record in peers.items()
            if record.policy.forward
            and name != self.host.network
            and should_forward(name, origin, from_peer, cosigners, record.policy.relay, trusted)
        ]

    def pass_on(
        self,
        checkpoint: Checkpoint,
        envelope: bytes,
        cosignatures: list[Cosignature],
        from_peer: str,
        agrees: bool,
    ) -> list[Cosignature]:
        """Send ``checkpoint`` on (cosigned by this node if ``agrees``); the cosignatures
        it went with."""
        host = self.host
        if agrees:
            _, payload = open_envelope(envelope)
            mine = cosign(payload, host.key, host.clock())
            others = [item for item in cosignatures if item.witness != mine.witness]
            cosignatures = [*others, mine]
            self.cosigned += 1
        cosigners = witnesses(cosignatures, host.trust.keyring)
        to = self.targets(checkpoint.network, from_peer, cosigners)
        if to:
            body = encode_relayed(envelope, cosignatures)
            self._checkpointer.push(body, checkpoint.network, to)
            self.relayed[checkpoint.network] += 1
        return cosignatures
