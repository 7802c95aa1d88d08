"""Durable state: message history (and, later, accounts) behind small interfaces.

``base.py`` is the interface and its meaning; ``sqlite.py`` the server's store (imported on
demand: ``relaychat.store.sqlite``; its file layout and migrations are in ``sqlite_schema.py``,
its retention in ``sqlite_retention.py``); ``memory.py`` a store for tests.
"""

from relaychat.store.base import (
    Conversation,
    Entry,
    HistoryStore,
    Position,
    Reader,
    StoredMessage,
    StoreError,
    conversation_key,
)
from relaychat.store.memory import MemoryHistory

__all__ = [
    "Conversation",
    "Entry",
    "HistoryStore",
    "MemoryHistory",
    "Position",
    "Reader",
    "StoreError",
    "StoredMessage",
    "conversation_key",
]
