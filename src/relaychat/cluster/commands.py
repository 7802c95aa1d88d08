"""The cluster's layer over the command table: what must ask the network first, or tell it after.

The handlers in ``server/commands`` know nothing of clusters. On a core with a cluster node,
the table's entries are wrapped (once per process; a core without a node runs the handlers
unchanged):

- ``NICK`` claims the nick network-wide before the handler takes it (``sync.py`` rule 2); the
  user's next commands wait meanwhile (``ServerCore.hold``), and the reply comes when the
  claim is decided: the handler's, or 433 when another node's user has the nick.
- ``JOIN`` first makes sure each channel has its record (the first joiner anywhere creates it
  and becomes its operator), that this node follows the channel's traffic, and that its
  history is loaded for the replay on join.
- ``CHATHISTORY`` and ``REDACT`` first load what the streams hold beyond the node's index.
- ``KILL`` of a user of another node asks that node to disconnect it.
- ``PRIVMSG``, ``NOTICE``, ``TAGMSG`` and the ``BATCH -`` closing a multiline batch with an
  idempotency key first claim the key in the network's bucket (``idem.py``): relayed once,
  whichever node a repeat reaches.
- ``RENAME`` (channel renaming) is refused: a channel's name is its key in every node's state.
- Every other command except the hot ones (``PRIVMSG``...) is followed by a sync of what it may
  have changed: the user's record and memberships, and the channels it names.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace

from relaychat.cluster.base import Claim, Node
from relaychat.cluster.peer import RemotePeer
from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.message import Message
from relaychat.server.commands.params import valid_nick
from relaychat.server.core import COMMANDS, Handler, Replies, ServerCore
from relaychat.server.idempotency import CAP as IDEM_CAP
from relaychat.server.idempotency import TAG, sender_of, valid_key
from relaychat.server.state import User
from relaychat.store.base import conversation_key

__all__ = ["ORIGINAL", "guest_nick", "install", "register", "unregister"]

log = logging.getLogger("relaychat.cluster")

#: Commands that change nothing shared: no sync after them. (PRIVMSG, NOTICE, TAGMSG, BATCH and
#: CHATHISTORY, the hot ones, are in ``_SPECIAL``, whose wrappers never sync either.)
QUIET = frozenset({"PING", "PONG"})

#: The handlers as registered, before wrapping.
ORIGINAL: dict[str, Handler] = {}

_NODES: weakref.WeakKeyDictionary[ServerCore, Node] = weakref.WeakKeyDictionary()


def register(core: ServerCore, node: Node) -> None:
    """Make ``core``'s commands go through ``node`` (and wrap the table, once)."""
    install()
    _NODES[core] = node


def unregister(core: ServerCore) -> None:
    _NODES.pop(core, None)


def install() -> None:
    """Wrap every command of the table (idempotent)."""
    for name, cmd in list(COMMANDS.items()):
        if name in ORIGINAL:
            continue
        ORIGINAL[name] = cmd.handler
        special = _SPECIAL.get(name)
        if special is not None:
            handler = special(cmd.handler)
        elif name in QUIET:
            continue
        else:
            handler = _after(cmd.handler)
        COMMANDS[name] = replace(cmd, handler=handler)


def _node(core: ServerCore, user: User) -> Node | None:
    node = _NODES.get(core)
    return node if node is not None and user.server is None else None


def _after(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        real(core, user, msg, out)
        node = _node(core, user)
        if node is not None:
            node.after_command(user, msg)

    handler.__doc__ = real.__doc__
    return handler


def _later(
    node: Node,
    user: User,
    out: Replies,
    work: Callable[[], Awaitable[bool]],
    then: Callable[[Replies], None],
) -> None:
    """Hold ``user``, run ``work`` on the loop, then ``then`` with fresh replies (the command's
    label carried over) unless ``work`` returned ``False``; release the user in any case."""
    core = node.core
    core.hold(user)
    label, out.label = out.label, None

    async def run() -> None:
        go = False
        try:
            go = await work()
        except Exception:
            log.exception("cluster: a held command of connection #%d failed", user.id)
            go = True  # answer from local state rather than not at all
        finally:
            now = time.time()
            core.now = now
            if not user.quitting:
                replies = Replies(core, user, label)
                try:
                    if go:
                        then(replies)
                finally:
                    replies.flush()
                    core.release(user, now)

    asyncio.get_running_loop().create_task(run())


# --- NICK ----------------------------------------------------------------------------------------


def _nick(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """NICK <nickname>"""
        node = _node(core, user)
        new = msg.param(0)
        key = irc_lower(new) if new else ""
        holder = core.users.get(key) if key else None
        if (
            node is None
            or not valid_nick(new, core.config.limits.nicklen)
            or key == user.key
            or (holder is not None and holder is not user)
        ):
            real(core, user, msg, out)
            if node is not None:
                node.after_command(user, msg)
            return
        if node.isolated:
            node.cut_off(user, out)
            return
        claimed: list[int] = []

        async def work() -> bool:
            revision = await node.sync.claim(user, key)
            if revision is None:
                return True
            claimed.append(revision)
            return True

        def then(replies: Replies) -> None:
            if not claimed:
                if node.isolated and not user.registered:
                    node.cut_off(user, replies)
                else:
                    replies.numeric(N.ERR_NICKNAMEINUSE, new)
                return
            old = node.sync.claims.get(user.id)
            try:
                real(core, user, msg, replies)
            finally:
                if user.key == key and not user.quitting:
                    node.sync.claims[user.id] = (key, claimed[0])
                    if old is not None and old[0] != key:
                        node.sync.release(*old)
                else:
                    node.sync.release(key, claimed[0])
                node.after_command(user, msg)

        _later(node, user, out, work, then)

    handler.__doc__ = real.__doc__
    return handler


def guest_nick(core: ServerCore) -> str:
    """A ``Guest<digits>`` nick that nobody here holds (for a user whose nick was lost)."""
    digits = max(1, min(5, core.config.limits.nicklen - 5))
    while True:
        nick = f"Guest{secrets.randbelow(10**digits):0{digits}d}"
        if irc_lower(nick) not in core.users:
            return nick


# --- JOIN ----------------------------------------------------------------------------------------


def _join(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """JOIN <channel>{,<channel>} [<key>{,<key>}] | JOIN 0"""
        node = _node(core, user)
        if node is None or not user.registered or not msg.params or msg.params[0] == "0":
            real(core, user, msg, out)
            if node is not None:
                node.after_command(user, msg)
            return
        names = [n for n in msg.params[0].split(",") if n[:1] == "#"]
        missing = [n for n in names if irc_lower(n) not in core.channels]
        feeds = [irc_lower(n) for n in names if irc_lower(n) not in node.feeds.subs]
        history = node.history
        replay = (
            history is not None
            and core.config.history.replay_lines > 0
            and "draft/chathistory" not in user.caps
        )
        load = [k for k in feeds if replay and history is not None and not history.ready(k)]
        if node.isolated or not (missing or feeds or load):
            real(core, user, msg, out)
            node.after_command(user, msg)
            return

        async def work() -> bool:
            for name in missing[: core.config.limits.chanlimit]:
                await node.sync.ensure_channel(irc_lower(name), name, user)
            for chan_key in feeds:
                await node.feeds.ensure(chan_key)
            for chan_key in load:
                assert history is not None
                await history.refresh(chan_key)
            return True

        def then(replies: Replies) -> None:
            real(core, user, msg, replies)
            node.after_command(user, msg)
            for chan_key in feeds:
                node.feeds.check(chan_key)  # a refused JOIN leaves nothing to follow

        _later(node, user, out, work, then)

    handler.__doc__ = real.__doc__
    return handler


# --- CHATHISTORY ---------------------------------------------------------------------------------


def _chathistory(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """CHATHISTORY <subcommand> <target> <ref> [<ref>] <limit>"""
        node = _node(core, user)
        history = node.history if node is not None else None
        if node is None or history is None or node.isolated or len(msg.params) < 2:
            real(core, user, msg, out)
            return
        sub = msg.params[0].upper()
        keys: list[str] = []
        if sub == "TARGETS":
            keys = list(user.channels)
        else:
            target = msg.params[1]
            if target[:1] == "#":
                keys = [irc_lower(target)] if irc_lower(target) in user.channels else []
            elif user.nick != "*":
                keys = [conversation_key(user.nick, target)]
        stale = [k for k in keys if not history.ready(k)]
        if not stale and sub != "TARGETS":
            for key in keys:
                history.touch(key)
            real(core, user, msg, out)
            return

        async def work() -> bool:
            wanted = list(stale)
            if sub == "TARGETS":
                wanted += await node.private_keys_of(user.key)
            for key in wanted:
                await history.refresh(key)
            return True

        _later(node, user, out, work, lambda replies: real(core, user, msg, replies))

    handler.__doc__ = real.__doc__
    return handler


# --- PRIVMSG, NOTICE, TAGMSG with an idempotency key ---------------------------------------------


def _keyed(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """PRIVMSG|NOTICE|TAGMSG <target>{,<target>} [<text>]"""
        tags = msg.tags
        if not tags or TAG not in tags or core.keys is None or IDEM_CAP not in user.caps:
            real(core, user, msg, out)  # the hot path: no key
            return
        if not msg.params or "batch" in tags or not user.registered:
            real(core, user, msg, out)  # (a line of a multiline batch: its BATCH - claims)
            return
        _claim_first(core, user, msg, out, real, tags[TAG], msg.params[0], msg.command)

    handler.__doc__ = real.__doc__
    return handler


def _keyed_batch(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """BATCH +<ref> draft/multiline <target> | BATCH -<ref>"""
        batch = user.batch
        ref = msg.params[0] if msg.params else ""
        if (
            batch is None
            or ref != f"-{batch.ref}"
            or batch.failed
            or not batch.lines
            or not batch.tags
            or TAG not in batch.tags
            or core.keys is None
            or IDEM_CAP not in user.caps
        ):
            real(core, user, msg, out)
            return

        def abandon() -> None:  # refused: the batch is closed, its label answered
            user.batch = None
            if batch.label is not None and out.label is None:
                out.label = batch.label

        _claim_first(core, user, msg, out, real, batch.tags[TAG], batch.target, "BATCH", abandon)

    handler.__doc__ = real.__doc__
    return handler


def _claim_first(
    core: ServerCore,
    user: User,
    msg: Message,
    out: Replies,
    real: Handler,
    key: str,
    target: str,
    verb: str,
    abandon: Callable[[], None] = lambda: None,
) -> None:
    """Run ``real`` for a message with idempotency ``key`` once the key is claimed in the
    network's bucket (``idem.py``): relayed if new, answered from the first relay if not."""
    node = _node(core, user)
    keys = node.keys if node is not None else None
    if node is None or keys is None or not valid_key(key):
        real(core, user, msg, out)  # (a bad key: the handler refuses it as on one process)
        return
    sender = sender_of(user)
    if keys.known(sender, key, core.now):  # a repeat on this node: answered from memory
        real(core, user, msg, out)
        return
    if node.isolated or not node.jet.connected:
        abandon()
        out.standard(
            "FAIL",
            verb,
            "TEMPORARILY_UNAVAILABLE",
            target,
            text="This server is cut off from the network: messages with an idempotency "
            "key wait until it is back",
        )
        return
    outcome: list[Claim] = []

    async def work() -> bool:
        found = await keys.claim(sender, key, user.prefix, target)
        outcome.append(found)
        if found is Claim.NEW and user.quitting:
            keys.release(sender, key)  # gone meanwhile: nothing will be relayed
        return True

    def then(replies: Replies) -> None:
        found = outcome[0] if outcome else Claim.UNAVAILABLE
        if found is Claim.UNAVAILABLE:
            abandon()
            if replies.label is None and out.label is not None:
                replies.label = out.label
            replies.standard(
                "FAIL",
                verb,
                "TEMPORARILY_UNAVAILABLE",
                target,
                text="The network could not be asked whether this message was sent before",
            )
            return
        if found is Claim.KNOWN:
            record = keys.recall_key(sender, key, core.now - keys.window)
            if record is not None and core.keys is not None:
                core.keys.learn(record, core.now)
            real(core, user, msg, replies)
            return
        try:
            real(core, user, msg, replies)
        finally:
            keys.release(sender, key)  # still claimed: nothing was relayed

    _later(node, user, out, work, then)


# --- REDACT --------------------------------------------------------------------------------------


def _redact(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """REDACT <target> <msgid> [<reason>]"""
        node = _node(core, user)
        history = node.history if node is not None else None
        if node is None or history is None or node.isolated or len(msg.params) < 2:
            real(core, user, msg, out)
            return
        target = msg.params[0]
        if target[:1] == "#":
            key = irc_lower(target)
        elif user.nick != "*":
            key = conversation_key(user.nick, target)
        else:
            real(core, user, msg, out)
            return
        if history.ready(key):  # the message to redact is looked up in the index
            real(core, user, msg, out)
            return

        async def work() -> bool:
            await history.refresh(key)
            return True

        _later(node, user, out, work, lambda replies: real(core, user, msg, replies))

    handler.__doc__ = real.__doc__
    return handler


# --- KILL and RENAME -----------------------------------------------------------------------------


def _kill(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """KILL <nick> <reason>"""
        node = _node(core, user)
        target = core.find_user(msg.params[0]) if msg.params else None
        if node is None or target is None or target.server is None or not user.is_oper:
            real(core, user, msg, out)
            return
        peer = target.peer
        assert isinstance(peer, RemotePeer)
        reason = msg.param(1)
        peer.link.request({"kill": peer.uid, "reason": f"Killed ({user.nick} ({reason}))"})

    handler.__doc__ = real.__doc__
    return handler


def _rename(real: Handler) -> Handler:
    def handler(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
        """RENAME <channel> <new name> [<reason>]"""
        if _node(core, user) is None:
            real(core, user, msg, out)
            return
        out.standard(
            "FAIL",
            "RENAME",
            "CANNOT_RENAME",
            msg.param(0),
            msg.param(1),
            text="Channels cannot be renamed on a clustered network",
        )

    handler.__doc__ = real.__doc__
    return handler


_SPECIAL: dict[str, Callable[[Handler], Handler]] = {
    "PRIVMSG": _keyed,
    "NOTICE": _keyed,
    "TAGMSG": _keyed,
    "BATCH": _keyed_batch,
    "NICK": _nick,
    "JOIN": _join,
    "CHATHISTORY": _chathistory,
    "REDACT": _redact,
    "KILL": _kill,
    "RENAME": _rename,
}
