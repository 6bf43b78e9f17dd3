"""``avisa demo``: three regional networks on this machine and the story they play.

Lives here: ``run`` (starting the nodes), ``story`` (the scenario, checked
against the nodes' APIs), ``matrix`` (``--matrix``: a local Synapse),
``command`` (the demo's arguments, registered by ``relay.entry``).

May import: every layer (it is the top one). Nothing imports it but
``relay.entry``.
"""
