"""Durable state: message history (and, later, accounts) behind small interfaces."""

from relaychat.store.base import HistoryStore, StoredMessage, conversation_key

__all__ = ["HistoryStore", "StoredMessage", "conversation_key"]
