"""draft/metadata-2: METADATA on users and channels (https://ircv3.net/specs/extensions/metadata).

Rules:
1. Where values live: a user's keys in ``user.meta.values`` (the connection's own), mirrored to
   its account in the account store while it is logged in, so that they come back at its next
   login (keys set before logging in win over the stored ones, and are saved); a channel's keys
   in ``channel.metadata``, set by its operators, gone when the channel ends.
2. Bounds: keys are 1-32 characters of ``a-z 0-9 _ . / -`` (the spec's key set; the length keeps
   every reply in one line); values are UTF-8 (other bytes are refused when read: UTF8ONLY) of
   at most ``metadata.max_value_bytes``; at most ``metadata.max_keys`` keys per user or channel
   and ``metadata.max_subs`` subscriptions per client; SET and CLEAR spend a token of a bucket
   (``metadata.set_burst``, refilled at ``metadata.set_rate`` per second), else
   ``FAIL METADATA RATE_LIMITED`` with the seconds to wait.
3. Who may: anyone reads a user's keys; a channel's are for its members (and everyone when it
   is not secret; to others it does not exist); a user sets its own keys (an IRC operator
   anyone's); a channel's operators set the channel's.
4. Who hears: a user's change goes to the clients with the cap subscribed to the key that share
   a channel with it or monitor it with extended-monitor (``ServerCore.watchers``), and to the
   user itself when someone else made it; a channel's change to its members with the cap and
   the subscription. Never to the client that made the change: it has the 761/766 reply.
5. When else: a client joining a channel gets the channel's keys and its members' (those it
   subscribed to) in a ``metadata`` batch, or 774 (sync later, with ``SYNC``) when the channel
   has more than ``metadata.sync_members`` members; the members get the joiner's keys. At
   registration (and when the cap is enabled later) a client gets its own keys in a
   ``metadata`` batch, empty when it has none. A user monitored with extended-monitor sends its
   keys to the watcher when it comes online or is added (``commands/monitor.py``).
6. before-connect: with ``metadata.before_connect`` an unregistered client may use METADATA on
   ``*`` (itself); its replies name it ``*``.
7. One account, one set of keys: a change of a logged-in user's keys (SET, CLEAR, the keys it
   brings at login) is made on every connection logged in to the same account at once, and
   each of them tells who hears of it (rule 4: its subscribed self, its channels' members and
   monitors) under its own nick (https://ircv3.net/specs/extensions/metadata: "clients
   automatically receive metadata updates for themselves").
"""

from __future__ import annotations

import logging
import math
import re

from relaychat.accounts.store import AccountStoreError
from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.accounts import service_of
from relaychat.server.commands.params import pack
from relaychat.server.core import ACCOUNT_HOOKS, Replies, ServerCore, add_tag, command
from relaychat.server.state import Channel, MetaState, User

__all__ = ["CAP", "on_cap_enabled", "on_join", "on_registered", "user_keys_for", "valid_key"]

log = logging.getLogger("relaychat.server")

CAP = "draft/metadata-2"
_KEY_RE = re.compile(r"[a-z0-9_./-]{1,32}\Z")
_EMPTY: dict[str, str] = {}


def valid_key(key: str) -> bool:
    """Whether ``key`` is a metadata key this server accepts (rule 2)."""
    return _KEY_RE.match(key) is not None


def _state(core: ServerCore, user: User) -> MetaState:
    if user.meta is None:
        user.meta = MetaState(float(core.config.metadata.set_burst), core.now)
    return user.meta


def _values(user: User) -> dict[str, str]:
    return user.meta.values if user.meta is not None else _EMPTY


def _subscribed(user: User, key: str) -> bool:
    return user.meta is not None and key in user.meta.subs and CAP in user.caps


def _line(core: ServerCore, target: str, key: str, value: str | None) -> bytes:
    """``METADATA <target> <key> * [:<value>]``: a value, or (without one) its removal."""
    params = (target, key, "*") if value is None else (target, key, "*", value)
    return Message("METADATA", params, core.name).to_bytes()


def _batch(core: ServerCore, user: User, kind: str, param: str, lines: list[bytes]) -> list[bytes]:
    """``lines`` as one ``kind`` batch for ``user`` (one item), or as they are without ``batch``.

    As one item of a ``Replies``: a labeled reply tags its ``BATCH +`` line, or nests it in a
    labeled-response batch (its two ``BATCH`` lines tagged, ``replies.py``).
    """
    if "batch" not in user.caps:
        return lines
    ref = core.new_batch_id()
    tag = b"batch=" + ref
    head = Message("BATCH", ("+" + ref.decode(), kind, param), core.name).to_bytes()
    tail = b":%s BATCH -%s\r\n" % (core.name.encode(), ref)
    return [b"".join([head, *(add_tag(line, tag) for line in lines), tail])]


def _fail(out: Replies, code: str, *context: str, text: str) -> None:
    out.standard("FAIL", "METADATA", code, *context, text=text)


def _store_write(core: ServerCore, user: User, key: str | None, value: str | None) -> None:
    """Mirror a change of ``user``'s keys to its account (``key`` None: all were cleared)."""
    svc = service_of(core)
    if user.account is None or svc is None:
        return
    try:
        if key is None:
            svc.store.clear_metadata(user.account)
        else:
            svc.store.set_metadata(user.account, key, value)
    except AccountStoreError as exc:
        log.error("metadata of account %s not saved: %s", user.account, exc)


def _notify_user(core: ServerCore, sender: User, target: User, key: str, value: str | None) -> None:
    """Tell who hears of ``target``'s keys (rule 4) that ``key`` changed."""
    if not target.registered:
        return
    line = _line(core, target.nick, key, value)
    for other in core.watchers(target, CAP):
        if other is not sender and _subscribed(other, key):
            other.send(line)
    if target is not sender and _subscribed(target, key):
        target.send(line)


def _same_account(
    core: ServerCore, sender: User, target: User, key: str | None, value: str | None
) -> None:
    """Rule 7: ``target``'s change of ``key`` (``None``: every key cleared) made on the other
    connections of its account, each telling who hears of it (but ``sender``)."""
    if target.account is None:
        return
    max_keys = core.config.metadata.max_keys
    for other in list(core.sessions.get(target.account, ())):
        if other is target:
            continue
        values = _state(core, other).values
        changes: list[tuple[str, str | None]] = []
        if key is None:
            changes = [(k, None) for k in sorted(values)]
            values.clear()
        elif value is None:
            if values.pop(key, None) is not None:
                changes.append((key, None))
        elif values.get(key) != value and (key in values or len(values) < max_keys):
            values[key] = value
            changes.append((key, value))
        for k, v in changes:
            _notify_user(core, sender, other, k, v)


def _notify_channel(
    core: ServerCore, sender: User, channel: Channel, key: str, value: str | None
) -> None:
    line = _line(core, channel.name, key, value)
    for member in channel.members:
        if member is not sender and _subscribed(member, key):
            member.send(line)


def _take_token(core: ServerCore, user: User) -> int:
    """Spend one SET/CLEAR token; 0 when allowed, else the seconds until one is back."""
    cfg = core.config.metadata
    state = _state(core, user)
    state.tokens = min(
        float(cfg.set_burst), state.tokens + (core.now - state.refilled) * cfg.set_rate
    )
    state.refilled = core.now
    if state.tokens >= 1.0:
        state.tokens -= 1.0
        return 0
    return max(1, math.ceil((1.0 - state.tokens) / cfg.set_rate))


# --- targets ---------------------------------------------------------------------------------


def _target(core: ServerCore, user: User, raw: str, out: Replies) -> User | Channel | None:
    """The user or channel ``raw`` names for ``user`` (rule 3), or ``None`` after a FAIL."""
    if raw == "*" or (user.registered and raw == user.nick):
        return user
    if user.registered:
        if raw[:1] == "#":
            channel = core.find_channel(raw)
            if channel is not None and ("s" not in channel.modes or user in channel.members):
                return channel
        else:
            found = core.find_user(raw)
            if found is not None:
                return found
    _fail(out, "INVALID_TARGET", raw, text="No such nick or channel (before registration: *)")
    return None


def _name(target: User | Channel) -> str:
    return target.name if isinstance(target, Channel) else target.nick


def _may_set(user: User, target: User | Channel) -> bool:
    if isinstance(target, Channel):
        member = target.members.get(user)
        return member is not None and member.op
    return target is user or user.is_oper


def _target_values(core: ServerCore, target: User | Channel) -> dict[str, str]:
    return target.metadata if isinstance(target, Channel) else _values(target)


# --- the command -----------------------------------------------------------------------------


@command("METADATA", min_params=2, pre_registration=True)
def metadata(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """METADATA <target> <GET|LIST|SET|CLEAR|SUB|UNSUB|SUBS|SYNC> [<key>...] [:<value>]

    Keys and values on users and channels, and subscriptions to changes (draft/metadata-2).
    """
    if not user.registered and not core.config.metadata.before_connect:
        out.numeric(N.ERR_NOTREGISTERED)
        return
    sub = msg.params[1].upper()
    handler = _SUBCOMMANDS.get(sub)
    if handler is None:
        _fail(out, "SUBCOMMAND_INVALID", msg.params[1], text="Unknown METADATA subcommand")
        return
    handler(core, user, msg, out)


def _get(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    keys = msg.params[2:]
    if not keys:
        out.numeric(N.ERR_NEEDMOREPARAMS, "METADATA")
        return
    target = _target(core, user, msg.params[0], out)
    if target is None:
        return
    name, values = _name(target), _target_values(core, target)
    lines: list[bytes] = []
    for key in keys:
        if not valid_key(key):
            params = ("METADATA", "KEY_INVALID", N.safe_param(key), "Invalid key")
            lines.append(Message("FAIL", params, core.name).to_bytes())
        elif key in values:
            reply = N.reply(core.name, user.nick, N.RPL_KEYVALUE, name, key, "*", text=values[key])
            lines.append(reply.to_bytes())
        else:
            lines.append(N.reply(core.name, user.nick, N.RPL_KEYNOTSET, name, key).to_bytes())
    for item in _batch(core, user, "metadata", name, lines):
        out.raw(item)


def _list(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    target = _target(core, user, msg.params[0], out)
    if target is None:
        return
    name, values = _name(target), _target_values(core, target)
    lines = [
        N.reply(core.name, user.nick, N.RPL_KEYVALUE, name, k, "*", text=v).to_bytes()
        for k, v in sorted(values.items())
    ]
    for item in _batch(core, user, "metadata", name, lines):
        out.raw(item)


def _set(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    if len(msg.params) < 3:
        out.numeric(N.ERR_NEEDMOREPARAMS, "METADATA")
        return
    target = _target(core, user, msg.params[0], out)
    if target is None:
        return
    key = msg.params[2]
    value = msg.params[3] if len(msg.params) > 3 else None
    name = _name(target)
    cfg = core.config.metadata
    if not valid_key(key):
        _fail(out, "KEY_INVALID", key, text="Keys are 1-32 characters of a-z 0-9 _ . / -")
        return
    if not _may_set(user, target):
        _fail(out, "KEY_NO_PERMISSION", name, key, text="You may not change this target's keys")
        return
    values = target.metadata if isinstance(target, Channel) else _state(core, target).values
    if value is None and key not in values:
        _fail(out, "KEY_NOT_SET", name, key, text="That key is not set")
        return
    if value is not None:
        if len(value.encode()) > cfg.max_value_bytes:
            _fail(
                out,
                "VALUE_INVALID",
                text=f"Value is too long (at most {cfg.max_value_bytes} bytes)",
            )
            return
        if key not in values and len(values) >= cfg.max_keys:
            _fail(out, "LIMIT_REACHED", name, text=f"At most {cfg.max_keys} keys may be set")
            return
    wait = _take_token(core, user)
    if wait:
        _fail(
            out, "RATE_LIMITED", name, key, str(wait), text=f"Too many changes; retry in {wait} s"
        )
        return
    if value is None:
        del values[key]
        out.numeric(N.RPL_KEYNOTSET, name, key)
    else:
        if values.get(key) == value:  # no change: nothing to tell anyone
            out.numeric(N.RPL_KEYVALUE, name, key, "*", text=value)
            return
        values[key] = value
        out.numeric(N.RPL_KEYVALUE, name, key, "*", text=value)
    if isinstance(target, Channel):
        _notify_channel(core, user, target, key, value)
    else:
        _store_write(core, target, key, value)
        _notify_user(core, user, target, key, value)
        _same_account(core, user, target, key, value)


def _clear(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    target = _target(core, user, msg.params[0], out)
    if target is None:
        return
    name = _name(target)
    if not _may_set(user, target):
        _fail(out, "KEY_NO_PERMISSION", name, "*", text="You may not change this target's keys")
        return
    wait = _take_token(core, user)
    if wait:
        _fail(
            out, "RATE_LIMITED", name, "*", str(wait), text=f"Too many changes; retry in {wait} s"
        )
        return
    values = target.metadata if isinstance(target, Channel) else _state(core, target).values
    cleared = sorted(values)
    values.clear()
    lines = [N.reply(core.name, user.nick, N.RPL_KEYNOTSET, name, k).to_bytes() for k in cleared]
    for item in _batch(core, user, "metadata", name, lines):
        out.raw(item)
    if isinstance(target, User) and cleared:
        _store_write(core, target, None, None)
        _same_account(core, user, target, None, None)
    for key in cleared:
        if isinstance(target, Channel):
            _notify_channel(core, user, target, key, None)
        else:
            _notify_user(core, user, target, key, None)


def _sub(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    keys = msg.params[2:]
    if not keys:
        out.numeric(N.ERR_NEEDMOREPARAMS, "METADATA")
        return
    state = _state(core, user)
    limit = core.config.metadata.max_subs
    done: dict[str, None] = {}
    new: list[str] = []
    for key in keys:
        if not valid_key(key):
            _fail(out, "KEY_INVALID", key, text="Keys are 1-32 characters of a-z 0-9 _ . / -")
            continue
        if key not in state.subs:
            if len(state.subs) >= limit:
                # The spec: processing stops at the first key that did not fit.
                _fail(out, "TOO_MANY_SUBS", key, text=f"At most {limit} subscriptions")
                break
            state.subs.add(key)
            new.append(key)
        done[key] = None
    _ok_lines(core, user, out, N.RPL_METADATASUBOK, list(done))
    if new and user.registered and CAP in user.caps:
        _send_current(core, user, set(new), out)


def _unsub(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    keys = msg.params[2:]
    if not keys:
        out.numeric(N.ERR_NEEDMOREPARAMS, "METADATA")
        return
    state = _state(core, user)
    done: dict[str, None] = {}
    for key in keys:
        if not valid_key(key):
            _fail(out, "KEY_INVALID", key, text="Keys are 1-32 characters of a-z 0-9 _ . / -")
            continue
        state.subs.discard(key)
        done[key] = None
    _ok_lines(core, user, out, N.RPL_METADATAUNSUBOK, list(done))


def _subs(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    keys = sorted(user.meta.subs) if user.meta is not None else []
    lines = [
        N.reply(core.name, user.nick, N.RPL_METADATASUBS, *chunk.split()).to_bytes()
        for chunk in pack(keys, 400, " ")
    ]
    for item in _batch(core, user, "metadata-subs", user.nick, lines):
        out.raw(item)


def _sync(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    target = _target(core, user, msg.params[0], out)
    if target is None:
        return
    subs = user.meta.subs if user.meta is not None else set()
    if isinstance(target, Channel):
        lines = _channel_lines(core, target, subs, skip=None)
    else:
        lines = _user_lines(core, target, subs)
    for item in _batch(core, user, "metadata", _name(target), lines):
        out.raw(item)


def _ok_lines(
    core: ServerCore, user: User, out: Replies, numeric: N.Numeric, keys: list[str]
) -> None:
    for chunk in pack(keys, 400, " "):
        out.numeric(numeric, *chunk.split())


_SUBCOMMANDS = {
    "GET": _get,
    "LIST": _list,
    "SET": _set,
    "CLEAR": _clear,
    "SUB": _sub,
    "UNSUB": _unsub,
    "SUBS": _subs,
    "SYNC": _sync,
}


# --- what other parts call -------------------------------------------------------------------


def _user_lines(core: ServerCore, target: User, keys: set[str] | None) -> list[bytes]:
    """METADATA lines for ``target``'s keys (only ``keys`` unless ``None``)."""
    return [
        _line(core, target.nick, k, v)
        for k, v in sorted(_values(target).items())
        if keys is None or k in keys
    ]


def _channel_lines(
    core: ServerCore, channel: Channel, keys: set[str], skip: User | None
) -> list[bytes]:
    """METADATA lines for a channel's subscribed keys and its members' (but ``skip``'s)."""
    lines = [
        _line(core, channel.name, k, v) for k, v in sorted(channel.metadata.items()) if k in keys
    ]
    for member in channel.members:
        if member is not skip and member.meta is not None and member.meta.values:
            lines += _user_lines(core, member, keys)
    return lines


def _send_current(core: ServerCore, user: User, keys: set[str], out: Replies) -> None:
    """After SUB: the current values of newly subscribed ``keys`` of ``user``'s channels and of
    the users sharing one (the spec's SHOULD)."""
    lines: list[bytes] = []
    for channel in user.channels.values():
        lines += [
            _line(core, channel.name, k, v)
            for k, v in sorted(channel.metadata.items())
            if k in keys
        ]
    for other in core.neighbours(user):
        if other.meta is not None and other.meta.values:
            lines += _user_lines(core, other, keys)
    for line in lines:
        out.raw(line)


def user_keys_for(core: ServerCore, watcher: User, target: User) -> bytes:
    """METADATA lines of the keys of ``target`` that ``watcher`` subscribed to (MONITOR,
    rule 5); ``b""`` when none or when ``watcher`` lacks the cap."""
    if CAP not in watcher.caps or watcher.meta is None or target.meta is None:
        return b""
    return b"".join(_user_lines(core, target, watcher.meta.subs))


def on_join(core: ServerCore, user: User, channel: Channel, out: Replies) -> None:
    """After JOIN: the channel's keys and members' to the joiner; the joiner's to the members."""
    if CAP in user.caps and user.meta is not None and user.meta.subs:
        if len(channel.members) > core.config.metadata.sync_members:
            out.numeric(N.ERR_METADATASYNCLATER, channel.name)
        else:
            lines = _channel_lines(core, channel, user.meta.subs, skip=user)
            if lines:
                for item in _batch(core, user, "metadata", channel.name, lines):
                    out.raw(item)
    own = _values(user)
    if own:
        for member in channel.members:
            if member is not user and CAP in member.caps and member.meta is not None:
                lines = _user_lines(core, user, member.meta.subs)
                if lines:
                    member.send(b"".join(lines))


def on_registered(core: ServerCore, user: User, out: Replies) -> None:
    """At registration: the client's own keys in a ``metadata`` batch (empty when none)."""
    if CAP in user.caps:
        for item in _batch(core, user, "metadata", user.nick, _user_lines(core, user, None)):
            out.raw(item)


def on_cap_enabled(core: ServerCore, user: User, out: Replies) -> None:
    """The cap was enabled after registration: as at registration."""
    if user.registered:
        on_registered(core, user, out)


def _on_account(core: ServerCore, user: User) -> None:
    """Logged in: the account's stored keys join the connection's (rule 1)."""
    svc = service_of(core)
    if user.account is None or svc is None:
        return
    try:
        stored = svc.store.metadata(user.account)
    except AccountStoreError as exc:
        log.error("metadata of account %s not loaded: %s", user.account, exc)
        return
    state = _state(core, user)
    before = dict(state.values)
    merged = dict(before)  # set on this connection before logging in: these win
    for key, value in stored.items():
        if key not in merged and len(merged) < core.config.metadata.max_keys:
            merged[key] = value
    state.values = merged
    for key, value in before.items():
        if stored.get(key) != value:
            _store_write(core, user, key, value)
            _same_account(core, user, user, key, value)
    if user.registered:
        for key, value in merged.items():
            if key not in before:
                _notify_user(core, user, user, key, value)


ACCOUNT_HOOKS.append(_on_account)
