"""Where everything lives in NATS: stream, bucket, subject and key names of one network.

Rules:
1. Every name starts with ``cluster.prefix``, so several networks can share one NATS system.
2. IRC names (channels, nicks, accounts) appear in subjects and keys as the lower-case hex of
   their folded UTF-8 (``hexname``): any channel name is then a valid subject token and KV key.
3. A node is named by ``cluster.node_name`` in keys, and by name and incarnation (a random token
   per process start) where a message must reach one process, never a successor of that name.

Layout (``P`` is the prefix)::

    stream P-channels   P.c.<chan>.m  messages kept as history     republished (after storage)
                        P.c.<chan>.e  other channel events          to P.r.<chan>.m|e
    stream P-private    P.p.<nick a>.<nick b>.<node>  private messages (a < b) for a user of
                        <node> ("_": none)     that node, republished to P.q.<a>.<b>.<node>
    KV P-state          u.<node>.<uid>          a user (its record)
                        n.<nick>                who holds a nick: "<node>/<incarnation>/<uid>"
                        c.<chan>                a channel: modes, topic, bans, key, limit, ops
                        m.<chan>.<node>.<uid>   a membership
                        r.<owner>.<target>      a read marker (draft/read-marker)
                        s.idem                  the secret signing IDEM TOKEN tokens
    KV P-nodes          <node>                  heartbeats (bucket TTL)
    KV P-accounts       <account>               registered accounts
    KV P-idem           <sender>.<key>          idempotency keys (bucket TTL: the window;
                                                ``idem.py``)
    subject P.n.<node>.<incarnation>            bytes for one node's users, and requests to it
"""

from __future__ import annotations

__all__ = ["Names", "hexname", "unhex"]


def hexname(name: str) -> str:
    """``name`` (already folded) as a subject token / KV key part (rule 2)."""
    return name.encode("utf-8").hex()


def unhex(token: str) -> str:
    """The inverse of :func:`hexname`.

    Raises:
        ValueError: ``token`` is not such a token.
    """
    return bytes.fromhex(token).decode("utf-8")


class Names:
    """Every name of one network (``cluster.prefix``) and one node in it."""

    def __init__(self, prefix: str, node: str, incarnation: str) -> None:
        self.prefix = prefix
        self.node = node
        self.incarnation = incarnation
        self.channels_stream = f"{prefix}-channels"
        self.private_stream = f"{prefix}-private"
        self.state_bucket = f"{prefix}-state"
        self.nodes_bucket = f"{prefix}-nodes"
        self.accounts_bucket = f"{prefix}-accounts"
        self.idem_bucket = f"{prefix}-idem"
        #: Where this node's JetStream acknowledgements arrive: ``<ack_prefix>.<n>``.
        self.ack_prefix = f"_{prefix}_ack.{node}.{incarnation}"

    # --- subjects ----------------------------------------------------------------------------

    def channel_subject(self, chan_key: str, kind: str) -> str:
        """``P.c.<chan>.m`` (history) or ``.e`` (other events) for the folded channel name."""
        return f"{self.prefix}.c.{hexname(chan_key)}.{kind}"

    def channel_feed(self, chan_key: str) -> str:
        """What a node subscribes to for a channel's traffic, after storage: ``P.r.<chan>.*``."""
        return f"{self.prefix}.r.{hexname(chan_key)}.*"

    def private_subject(self, conv_key: str, node: str = "*") -> str:
        """``P.p.<a>.<b>.<node>`` for a private conversation key (``store.base.conversation_key``)
        and the node its recipient is on (``"_"``: none; ``"*"``: any, to read it all)."""
        a, _, b = conv_key.partition(" ")
        return f"{self.prefix}.p.{hexname(a)}.{hexname(b)}.{node}"

    def private_feed(self) -> str:
        """What this node subscribes to for its users' private messages, after storage."""
        return f"{self.prefix}.q.*.*.{self.node}"

    def node_subject(self, node: str, incarnation: str) -> str:
        """The subject one node process listens on."""
        return f"{self.prefix}.n.{node}.{incarnation}"

    def kv_subject(self, bucket: str, key: str) -> str:
        """The subject a KV write to ``bucket``/``key`` is published on."""
        return f"$KV.{bucket}.{key}"

    # --- keys of the state bucket ------------------------------------------------------------

    @staticmethod
    def user_key(node: str, uid: int) -> str:
        return f"u.{node}.{uid}"

    @staticmethod
    def nick_key(nick_key: str) -> str:
        return f"n.{hexname(nick_key)}"

    @staticmethod
    def chan_key(chan_key: str) -> str:
        return f"c.{hexname(chan_key)}"

    @staticmethod
    def member_key(chan_key: str, node: str, uid: int) -> str:
        return f"m.{hexname(chan_key)}.{node}.{uid}"

    @staticmethod
    def marker_key(owner: str, target: str) -> str:
        return f"r.{hexname(owner)}.{hexname(target)}"
