"""Who gets an accepted message, in which order, and in what envelope (pure).

The same rules serve the outbox (push) and catch-up (pull), so a peer sees
the same thing whichever way it arrives:

- a message goes to a peer whose entry says ``forward``, never to a network
  that already signed it (its keyid is that network's in our keyring), never
  to its origin and never back to the peer we got it from; a peer whose entry
  says ``relay = "own"`` gets only this node's own messages (in a cluster where
  everyone trusts everyone, each origin already reaches each neighbour, and a
  neighbour relaying it again is a copy per pair), and one that says
  ``relay = "peers"`` gets ours and those whose origin we trust directly, not
  what we accepted on others' endorsements (hubs of a coalition, each passing
  its own region's news to the others: docs/federation.md, "At coalition scale");
- what goes out is the stored envelope exactly as verified, with this
  node's endorsement appended when the peer's entry says ``endorse``, unless
  that would pass ``max_signatures`` (then it goes as it came); an envelope
  already over the cap (the cap was lowered) is not forwarded at all;
- cancels go before updates, updates before new alerts.

Nothing here reads a clock or a store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from keys.core.keyring import Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import endorse, payload_bytes
from relay.core.model import Envelope, encode_envelope
from relay.core.policy import Relay

#: Outbox order: lower goes first.
PRIORITY: Final = {"cancel": 0, "update": 1, "alert": 2}


def should_forward(
    peer: str,
    origin: str,
    from_peer: str | None,
    signers: Iterable[str],
    relay: Relay = "all",
    origin_trusted: bool = False,
) -> bool:
    """Whether a message from ``origin``, received from ``from_peer``, may go to ``peer``,
    whose entry says ``relay``; ``origin_trusted``: ``origin`` is one of our peers."""
    relayed = from_peer is not None
    if relayed and (relay == "own" or (relay == "peers" and not origin_trusted)):
        return False
    return peer not in (origin, from_peer) and peer not in set(signers)


def signer_networks(envelope: Envelope, keyring: Keyring) -> set[str]:
    """Networks whose keys (per our keyring) appear among the signatures."""
    found = set()
    for signature in envelope.signatures:
        entry = keyring.get(signature.keyid)
        if entry is not None:
            found.add(entry.network)
    return found


def outgoing(
    stored: bytes, envelope: Envelope, key: NodeKey, endorse_it: bool, max_signatures: int
) -> bytes | None:
    """The bytes to send for a stored envelope (``envelope`` is it decoded), or None."""
    count = len(envelope.signatures)
    if count > max_signatures:
        return None
    if not endorse_it or count >= max_signatures:
        return stored
    return encode_envelope(endorse(envelope, payload_bytes(envelope), key))
