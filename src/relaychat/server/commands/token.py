"""TOKEN: short-lived tokens for external services (IRCv3 ``draft/authtoken``, work in
progress: https://github.com/ircv3/ircv3-specifications/pull/602).

relaychat's one service is ``FILEHOST``, the upload URL of its own HTTP port (``web/uploads.py``
registers it when uploads are on): ``TOKEN GENERATE FILEHOST`` answers
``TOKEN GENERATE FILEHOST <url> :<token>``, and ``POST <url>`` with
``Authorization: Bearer <token>`` uploads as the session's account. The tokens are kept by
``server/authtokens.py`` (one use, ``uploads.token_ttl`` seconds).
"""

from __future__ import annotations

from relaychat.protocol.message import Message
from relaychat.server.authtokens import tokens_of
from relaychat.server.core import Replies, ServerCore, add_tag, command
from relaychat.server.state import User

__all__ = ["BATCH_TYPE", "token"]

#: The batch a TOKEN VALIDATE answer comes in.
BATCH_TYPE = "draft/authtoken"


def _fail(out: Replies, code: str, *context: str, text: str) -> None:
    out.standard("FAIL", "TOKEN", code, *context, text=text)


@command("TOKEN", min_params=1, pre_registration=True)
def token(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """TOKEN SERVICELIST | GENERATE <service> [<scope>] | VALIDATE <service> <url> <token>

    Tokens for services outside IRC (draft/authtoken). GENERATE FILEHOST gives a token that
    uploads a file to this server's HTTP port as your account (Authorization: Bearer), once,
    within minutes; SERVICELIST names the services; VALIDATE is for the service itself.
    """
    sub = msg.params[0].upper()
    tokens = tokens_of(core)
    services = tokens.services if tokens is not None else {}
    if sub == "SERVICELIST":
        for service in services.values():
            url = service.url_for(user)
            if url is not None:
                out.standard("NOTE", "TOKEN", "SERVICE", service.key, url, text=service.description)
        out.standard("NOTE", "TOKEN", "END_OF_LIST", text="End of service list")
    elif sub == "GENERATE":
        if len(msg.params) < 2:
            _fail(out, "INVALID_PARAMS", text="Usage: TOKEN GENERATE <service> [<scope>]")
            return
        name = msg.params[1]
        wanted = services.get(name.upper())
        url = wanted.url_for(user) if wanted is not None else None
        if tokens is None or wanted is None or url is None:
            _fail(out, "UNKNOWN_SERVICE", name, text=f"No external service named {name} is defined")
            return
        service = wanted
        if user.account is None:
            _fail(
                out,
                "ACCOUNT_REQUIRED",
                text=f"You must be logged into an account to generate a token for the "
                f"{service.key} service",
            )
            return
        secret = tokens.issue(user.account, user.nick, service.key, url, core.now)
        out.add(Message("TOKEN", ("GENERATE", service.key, url, secret), core.name))
    elif sub == "VALIDATE":
        if len(msg.params) < 4:
            _fail(out, "INVALID_PARAMS", text="Usage: TOKEN VALIDATE <service> <url> <token>")
            return
        if "batch" not in user.caps:
            _fail(
                out,
                "NEED_CAPABILITY",
                "batch",
                text="You must have the batch capability before using this command",
            )
            return
        name, url, secret = msg.params[1], msg.params[2], msg.params[3]
        grant = tokens.take(secret, core.now, service=name, url=url) if tokens is not None else None
        if grant is None:
            _fail(out, "INVALID_TOKEN", text="The provided token could not be validated")
            return
        ref = core.new_batch_id()
        tag = b"batch=" + ref
        head = Message("BATCH", ("+" + ref.decode(), BATCH_TYPE, grant.service, url), core.name)
        claims = [
            Message("TOKEN", ("CLAIM", "account", grant.account), core.name),
            Message("TOKEN", ("CLAIM", "name", grant.nick), core.name),
        ]
        tail = b":%s BATCH -%s\r\n" % (core.name.encode(), ref)
        out.raw(b"".join([head.to_bytes(), *(add_tag(c.to_bytes(), tag) for c in claims), tail]))
    else:
        _fail(out, "UNKNOWN_COMMAND", sub, text=f"No such subcommand TOKEN {sub}")
