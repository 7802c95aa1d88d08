"""IDEM: the sender identity behind idempotency keys (``relaychat.dev/idempotency``).

A client not logged in to an account needs an identity that outlives its connection, so that a
message it sends again after a reconnect is recognised (``server/idempotency.py`` rule 1). It
asks for one with ``IDEM TOKEN`` and presents it again on every later connection with
``IDEM TOKEN <token>``, before registering; the server answers ``IDEM TOKEN <token>`` with the
token in force on this connection.
"""

from __future__ import annotations

from relaychat.protocol.message import Message
from relaychat.server.core import Replies, ServerCore, command
from relaychat.server.idempotency import CAP
from relaychat.server.state import User

__all__: list[str] = []


@command("IDEM", min_params=1, pre_registration=True)
def idem(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """IDEM TOKEN [<token>]

    Get the identity behind your messages' idempotency keys, or present it again after a
    reconnect (relaychat.dev/idempotency; docs/delivery.md).
    """
    keys = core.keys
    sub = msg.params[0].upper()
    if keys is None:
        out.standard("FAIL", "IDEM", "DISABLED", text="Idempotency keys are off on this server")
        return
    if CAP not in user.caps:
        out.standard("FAIL", "IDEM", "NEED_CAP", CAP, text=f"Request the {CAP} capability first")
        return
    if sub != "TOKEN":
        out.standard("FAIL", "IDEM", "UNKNOWN_SUBCOMMAND", sub, text="Only IDEM TOKEN exists")
        return
    presented = msg.param(1)
    sender = keys.redeem(presented) if presented else None
    if sender is not None:
        token = presented
    else:
        if presented:
            out.standard(
                "WARN",
                "IDEM",
                "INVALID_TOKEN",
                text="That token was not issued by this server (or has been forgotten); "
                "messages sent under it are not recognised: here is a new one",
            )
        sender, token = keys.issue()
    user.idem_id = sender
    out.add(Message("IDEM", ("TOKEN", token), core.name))
