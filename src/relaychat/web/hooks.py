"""Incoming webhooks: ``POST /hooks/<token>`` posts text to a channel as a named bot.

Rules:
1. Hooks live in ``hooks.json`` in the data directory, written by ``relaychat hooks`` (atomic
   replace, mode 0600). A token is shown once, when made; only its SHA-256 is stored (a token
   is 32 random bytes, so a fast hash is safe). The server looks at the file's modification
   time on every post and reloads it when it changed: no restart is needed.
2. The body is Slack-compatible JSON ``{"text": "..."}`` (``application/json``; ``curl -d``'s
   form type is read as JSON too when the body is an object), a form with ``payload=<json>``
   or ``text=``, or ``text/plain``. Each line of the text is one message; long lines are split
   to fit an IRC line; at most ``http.hook_max_lines`` messages per post.
3. Every check comes before anything is posted: bad token 401, bad body 400 (one-line reason),
   too many lines 400, over the hook's rate 429 with Retry-After, channel gone 409. A post that
   passes them all is posted whole.
4. The bot is not a user: its nick is ``<name>/hook`` (a ``/`` cannot be in a user's nick, so
   nobody can take it or be mistaken for it), its user mode ``+B`` (bot mode), its host the
   server's name. It is in no channel and cannot be messaged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from relaychat.errors import RelaychatError
from relaychat.protocol.bucket import TokenBucket
from relaychat.protocol.text import split_text, text_budget
from relaychat.server.core import ServerCore
from relaychat.server.state import User

__all__ = [
    "BOT_SUFFIX",
    "Hook",
    "HookError",
    "HookStore",
    "Webhooks",
    "bot_user",
    "hash_token",
    "parse_body",
]

FILENAME = "hooks.json"
#: Appended to a hook's name to make its bot's nick (rule 4).
BOT_SUFFIX = "/hook"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,23}\Z")
_CHANNEL = re.compile(r"#[^\s,:\x00\x07]{1,63}\Z")


class HookError(RelaychatError):
    """A hook cannot be added, removed or read (bad name, bad channel, unreadable file)."""


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook.

    Attributes:
        name: its bot's name (the nick is ``name`` + :data:`BOT_SUFFIX`).
        channel: where it posts.
        token_sha256: the SHA-256 of its token, hex.
        created: when it was made (epoch seconds).
    """

    name: str
    channel: str
    token_sha256: str
    created: float


def hash_token(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class HookStore:
    """The hooks in ``<data_dir>/hooks.json`` (rule 1).

    Args:
        data_dir: the server's data directory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILENAME
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Hook] = {}

    def hooks(self) -> list[Hook]:
        """Every hook, as the file says now.

        Raises:
            HookError: the file exists but cannot be read or is not a hook list.
        """
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HookError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            items = json.loads(raw)["hooks"]
            return [Hook(**item) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise HookError(f"{self.path} is not a hook list: {exc}") from None

    def find(self, token: str) -> Hook | None:
        """The hook whose token is ``token`` (reloading the file if it changed), or ``None``.

        Raises:
            HookError: the file changed and cannot be read.
        """
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._by_hash = {h.token_sha256: h for h in self.hooks()}
            self._stamp = stamp
        return self._by_hash.get(hash_token(token))

    def add(self, channel: str, name: str, now: float) -> str:
        """Make a hook; return its token (shown once, never stored).

        Raises:
            HookError: a bad name or channel, a name in use, or the file cannot be written.
        """
        if not _NAME.match(name):
            raise HookError(
                f"bad name {name!r}: a letter, then letters, digits, - or _ (24 at most)"
            )
        if not _CHANNEL.match(channel):
            raise HookError(f"bad channel {channel!r}: it starts with # and has no spaces")
        hooks = self.hooks()
        if any(h.name.lower() == name.lower() for h in hooks):
            raise HookError(f"a hook called {name!r} exists already")
        token = secrets.token_urlsafe(32)
        hooks.append(Hook(name, channel, hash_token(token), round(now, 3)))
        self._write(hooks)
        return token

    def remove(self, name: str) -> bool:
        """Remove the hook called ``name``; whether there was one.

        Raises:
            HookError: the file cannot be read or written.
        """
        hooks = self.hooks()
        kept = [h for h in hooks if h.name.lower() != name.lower()]
        if len(kept) == len(hooks):
            return False
        self._write(kept)
        return True

    def _write(self, hooks: list[Hook]) -> None:
        data = {"hooks": [_asdict(h) for h in hooks]}
        tmp = self.path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise HookError(f"cannot write {self.path}: {exc.strerror}") from None


def _asdict(hook: Hook) -> dict[str, Any]:
    return {
        "name": hook.name,
        "channel": hook.channel,
        "token_sha256": hook.token_sha256,
        "created": hook.created,
    }


class BadBody(ValueError):
    """The request body is not a webhook post; the message is the one-line reason."""


def parse_body(content_type: str, body: bytes) -> str:
    """The text of a webhook post (rule 2).

    Raises:
        BadBody: why the body cannot be read.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8") from None
    if ctype == "text/plain":
        return text
    if ctype == "application/x-www-form-urlencoded" and not text.lstrip().startswith("{"):
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            return _json_text(form["payload"][0])
        if "text" in form:
            return form["text"][0]
        raise BadBody("a form post needs a payload= (JSON) or text= field")
    if ctype in ("application/json", "application/x-www-form-urlencoded", "") or ctype.endswith(
        "+json"
    ):
        return _json_text(text)
    raise BadBody(f"unsupported content type {ctype!r}: send JSON or text/plain")


def _json_text(raw: str) -> str:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadBody(f"bad JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadBody('expected a JSON object like {"text": "..."}')
    text = data.get("text")
    if not isinstance(text, str):
        raise BadBody('the JSON object needs a "text" string')
    return text


class _Nowhere:
    """The peer of a bot: it receives nothing (the core sends it nothing: it is in no table)."""

    def send(self, data: bytes) -> None:
        return None

    def close(self, error: str) -> None:
        return None


def bot_user(core: ServerCore, name: str, now: float) -> User:
    """The sender of a hook's messages (rule 4): a user in no table, with mode ``+B``."""
    user = User(0, _Nowhere(), "127.0.0.1", now)
    user.username = "hook"
    user.host = core.name
    user.realname = f"webhook {name}"
    user.set_mode("B", True)
    user.registered = True
    user.set_nick(name + BOT_SUFFIX)
    return user


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a post came to: an HTTP status, a one-line reason, Retry-After, msgids posted."""

    status: int
    reason: str
    retry_after: int | None = None
    msgids: tuple[str, ...] = ()


class Webhooks:
    """Checks and carries out posts (rule 3); one per server.

    Args:
        store: where the hooks are.
        core: the server core to post through.
        post: ``(core, sender, channel, text) -> msgid or None`` (the core's internal sender).
        max_lines, rate, burst: the ``http.hook_*`` settings.
    """

    def __init__(
        self,
        store: HookStore,
        core: ServerCore,
        post: Any,
        *,
        max_lines: int,
        rate: float,
        burst: int,
    ) -> None:
        self.store = store
        self.core = core
        self.post_fn = post
        self.max_lines = max_lines
        self.rate = rate
        self.burst = burst
        self.buckets: dict[str, TokenBucket] = {}
        #: Messages posted, by hook name (for /metrics).
        self.posted: dict[str, int] = {}

    def post(self, token: str, content_type: str, body: bytes, now: float) -> Outcome:
        """Check and carry out one post (rule 3)."""
        try:
            hook = self.store.find(token)
        except HookError as exc:
            return Outcome(503, f"hooks unavailable: {exc}")
        if hook is None:
            return Outcome(401, "unknown or revoked webhook token")
        try:
            text = parse_body(content_type, body)
        except BadBody as exc:
            return Outcome(400, str(exc))
        core = self.core
        budget = text_budget(
            "PRIVMSG",
            hook.channel,
            nick_len=len(hook.name) + len(BOT_SUFFIX),
            user_len=4,
            host_len=len(core.name),
        )
        lines = [line for line in split_text(text, budget) if line.strip()]
        if not lines:
            return Outcome(400, "no text to post")
        if len(lines) > self.max_lines:
            return Outcome(400, f"{len(lines)} lines; at most {self.max_lines} per post")
        bucket = self.buckets.get(hook.name)
        if bucket is None:
            bucket = self.buckets[hook.name] = TokenBucket(self.rate, self.burst, now)
        if self.rate > 0:
            bucket.ready(now)  # refills
            if bucket.tokens < len(lines):
                wait = (len(lines) - bucket.tokens) / self.rate
                return Outcome(429, "too many posts; slow down", retry_after=math.ceil(wait))
        if core.find_channel(hook.channel) is None:
            return Outcome(409, f"channel {hook.channel} does not exist (nobody is in it)")
        core.now = time.time()
        sender = bot_user(core, hook.name, core.now)
        msgids = []
        for line in lines:
            msgid = self.post_fn(core, sender, hook.channel, line)
            if msgid is not None:
                msgids.append(msgid)
        if self.rate > 0:
            bucket.tokens -= len(lines)
        self.posted[hook.name] = self.posted.get(hook.name, 0) + len(msgids)
        return Outcome(200, "ok", msgids=tuple(msgids))
