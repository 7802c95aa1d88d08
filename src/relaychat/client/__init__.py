"""relaychat.client: a persistent IRC connection that survives drops and loses nothing.

::

    from relaychat.client import Client, Message

    async with Client("127.0.0.1", 6667, nick="bot") as client:
        await client.join("#general")

        @client.on(Message)
        async def echo(event: Message) -> None:
            await client.send(event.reply_to, "you said: " + event.text)

        await client.send("#general", "hello")

Every message carries an idempotency key; against relaychat (``relaychat.dev/idempotency``) a
message whose confirmation was lost with the connection is written again and still arrives
exactly once (``Client(delivery=...)``, :attr:`Client.delivery`; docs/delivery.md).

Layers: :mod:`~relaychat.client.protocol` (sans I/O, the IRC logic), :mod:`.events` (what the
user sees), :mod:`.guarantee` (delivery guarantees), :mod:`.backoff` (reconnect delays),
:mod:`.connection` (asyncio glue), :mod:`.sync` (a blocking one-shot facade).
"""

from relaychat.client import handlers as _handlers  # fills protocol.HANDLERS
from relaychat.client.backoff import backoff
from relaychat.client.config import ClientConfig
from relaychat.client.connection import Client
from relaychat.client.delivery import Delivery, SlowConsumer
from relaychat.client.errors import (
    ClientClosed,
    ClientError,
    ConnectionClosed,
    GaveUpError,
    NotSent,
    OutboxFull,
    Rejected,
    RequestFailed,
    RequestTimeout,
)
from relaychat.client.events import (
    Connected,
    Ctcp,
    Disconnected,
    ErrorReply,
    Event,
    GaveUp,
    Join,
    Kick,
    Message,
    NickChange,
    Outgoing,
    Part,
    Quit,
    Reconnecting,
    Topic,
)
from relaychat.client.protocol import ClientProtocol
from relaychat.client.requests import Reply

_ = _handlers

__all__ = [
    "Client",
    "ClientClosed",
    "ClientConfig",
    "ClientError",
    "ClientProtocol",
    "Connected",
    "ConnectionClosed",
    "Ctcp",
    "Delivery",
    "Disconnected",
    "ErrorReply",
    "Event",
    "GaveUp",
    "GaveUpError",
    "Join",
    "Kick",
    "Message",
    "NickChange",
    "NotSent",
    "OutboxFull",
    "Outgoing",
    "Part",
    "Quit",
    "Reconnecting",
    "Rejected",
    "Reply",
    "RequestFailed",
    "RequestTimeout",
    "SlowConsumer",
    "Topic",
    "backoff",
]
