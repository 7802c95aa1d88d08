"""Several relaychat processes as one network, over NATS JetStream (``relaychat serve --cluster``).

The single process with SQLite stays the default; this package is used only when
``cluster.url`` is set. See docs/cluster.md for operating it, and the modules for the rules:

- ``node.py``: a node's life (join, heartbeats, failures, resynchronisation) and the
  ``Backplane`` its core uses;
- ``jet.py``: the NATS connection, the ordered outbox and the durability barrier;
- ``mirror.py`` / ``sync.py``: the shared state (KV) read into the core, and written from it;
- ``feeds.py``: channel traffic, once per node, in one order everywhere;
- ``peer.py``: users of other nodes, and the bytes sent to them;
- ``history.py``: history in JetStream streams behind the ``HistoryStore`` interface;
- ``commands.py``: the few commands that ask the network first (NICK, JOIN, CHATHISTORY...);
- ``status.py``: ``relaychat cluster status``.
"""

from __future__ import annotations

__all__: list[str] = []
