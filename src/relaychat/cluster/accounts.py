"""Accounts shared by every node: the accounts bucket, mirrored in memory.

Rules:
1. The accounts service (``server/accounts.py``) keeps its interface: this store answers
   every read from memory (a login never waits for NATS), fed by a watch of the bucket.
2. A write changes memory at once and goes to the bucket compare-and-set on the revision last
   read: creating an account is a create (revision 0), so two nodes registering one name at the
   same moment cannot both write it; the later one is logged and the bucket's record wins
   everywhere. A change to an existing account that loses a race is re-applied to the newer
   record and written again.
3. Keys are the hex of the folded account name (``names.hexname``); a record holds what the
   SQLite store keeps: the argon2 hash, the SCRAM keys, the protected nick, certificate
   fingerprints and metadata.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from relaychat.accounts.scram import ScramCredentials
from relaychat.accounts.store import Account, AccountStore, AccountStoreError
from relaychat.cluster.base import Node
from relaychat.cluster.jet import WRONG_LAST_SEQUENCE, Ack
from relaychat.cluster.names import hexname
from relaychat.cluster.wire import dumps
from relaychat.protocol.casemap import irc_lower

__all__ = ["ClusterAccounts"]

log = logging.getLogger("relaychat.cluster")

Record = dict[str, Any]


def _record(account: Account) -> Record:
    scram = account.scram
    return {
        "name": account.name,
        "nick": account.nick,
        "pw": account.password_hash,
        "salt": scram.salt.hex(),
        "iter": scram.iterations,
        "sk": scram.stored_key.hex(),
        "svk": scram.server_key.hex(),
        "email": account.email,
        "created": account.created,
        "fps": list(account.certfps),
        "meta": {},
    }


def _account(record: Record) -> Account:
    return Account(
        name=str(record["name"]),
        nick=str(record["nick"]),
        password_hash=str(record["pw"]),
        scram=ScramCredentials(
            salt=bytes.fromhex(record["salt"]),
            iterations=int(record["iter"]),
            stored_key=bytes.fromhex(record["sk"]),
            server_key=bytes.fromhex(record["svk"]),
        ),
        email=record.get("email"),
        created=float(record.get("created", 0.0)),
        certfps=tuple(record.get("fps") or ()),
    )


class ClusterAccounts(AccountStore):
    """The account store of a cluster node (see the module rules)."""

    def __init__(self, node: Node) -> None:
        super().__init__(":cluster:")
        self._node = node
        self._records: dict[str, tuple[Record, int]] = {}  # folded name -> (record, revision)
        self._fps: dict[str, str] = {}  # certificate fingerprint -> folded account name

    # --- the watch -----------------------------------------------------------------------------

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        """One entry of the accounts bucket."""
        try:
            name = bytes.fromhex(key).decode("utf-8")
        except ValueError:
            return
        old = self._records.get(name)
        if old is not None and old[1] > revision and value is not None:
            return
        self._forget(name)
        if value is None:
            return
        try:
            record = json.loads(value)
            _account(record)
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignoring a malformed account record %s", key)
            return
        self._remember(name, record, revision)

    def _forget(self, name: str) -> None:
        old = self._records.pop(name, None)
        if old is None:
            return
        self._nicks.pop(irc_lower(str(old[0].get("nick", ""))), None)
        for fp in old[0].get("fps") or ():
            if self._fps.get(fp) == name:
                del self._fps[fp]

    def _remember(self, name: str, record: Record, revision: int) -> None:
        self._records[name] = (record, revision)
        self._nicks[irc_lower(str(record["nick"]))] = str(record["name"])
        for fp in record.get("fps") or ():
            self._fps[fp] = name

    # --- reads (rule 1) ------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to close: the bucket is JetStream's."""

    def _connect(self) -> sqlite3.Connection:
        """Never: a cluster keeps its accounts in JetStream, not in a file."""
        raise AccountStoreError(self.path, "a cluster keeps its accounts in JetStream")

    def __len__(self) -> int:
        return len(self._records)

    def get(self, name: str) -> Account | None:
        found = self._records.get(irc_lower(name))
        return _account(found[0]) if found is not None else None

    def by_certfp(self, fp: str) -> Account | None:
        name = self._fps.get(fp)
        return self.get(name) if name is not None else None

    def metadata(self, name: str) -> dict[str, str]:
        found = self._records.get(irc_lower(name))
        return dict(found[0].get("meta") or {}) if found is not None else {}

    # --- writes (rule 2) -----------------------------------------------------------------------

    def create(self, account: Account) -> bool:
        key, nick_key = irc_lower(account.name), irc_lower(account.nick)
        if key in self._records or nick_key in self._nicks or key in self._nicks:
            return False
        if any(fp in self._fps for fp in account.certfps):
            return False
        record = _record(account)
        self._remember(key, record, 0)

        def done(ack: Ack) -> None:
            if ack.ok:
                current = self._records.get(key)
                if current is not None and current[1] < ack.seq:
                    self._records[key] = (current[0], ack.seq)
            elif ack.code == WRONG_LAST_SEQUENCE:
                log.warning("cluster: account %s was registered on another node at once", key)
            else:
                log.error("cluster: account %s not stored: %s", key, ack.error)

        self._write(key, record, 0, done)
        return True

    def add_certfp(self, name: str, fp: str, now: float) -> str | None:
        owner = self._fps.get(fp)
        if owner is not None:
            found = self._records.get(owner)
            return str(found[0]["name"]) if found is not None else owner
        self._change(irc_lower(name), lambda r: r.update(fps=[*(r.get("fps") or ()), fp]))
        return None

    def remove_certfp(self, name: str, fp: str) -> bool:
        key = irc_lower(name)
        found = self._records.get(key)
        if found is None or fp not in (found[0].get("fps") or ()):
            return False
        self._change(key, lambda r: r.update(fps=[f for f in r.get("fps") or () if f != fp]))
        return True

    def set_metadata(self, name: str, key: str, value: str | None) -> None:
        def edit(record: Record) -> None:
            meta = dict(record.get("meta") or {})
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
            record["meta"] = meta

        self._change(irc_lower(name), edit)

    def clear_metadata(self, name: str) -> None:
        self._change(irc_lower(name), lambda r: r.update(meta={}))

    def _change(self, key: str, edit: Callable[[Record], None]) -> None:
        """Apply ``edit`` to account ``key`` here now, and in the bucket (rule 2)."""
        found = self._records.get(key)
        if found is None:
            return
        record = json.loads(dumps(found[0]))
        edit(record)
        self._forget(key)
        self._remember(key, record, found[1])
        self._write(key, record, found[1], lambda ack: self._changed(key, edit, ack))

    def _changed(self, key: str, edit: Callable[[Record], None], ack: Ack) -> None:
        if ack.ok:
            current = self._records.get(key)
            if current is not None:
                self._records[key] = (current[0], max(current[1], ack.seq))
        elif ack.code == WRONG_LAST_SEQUENCE:
            asyncio.get_running_loop().create_task(self._again(key, edit))
        else:
            log.error("cluster: account %s not updated: %s", key, ack.error)

    async def _again(self, key: str, edit: Callable[[Record], None]) -> None:
        stored = await self._node.jet.kv_get(self._node.names.accounts_bucket, hexname(key))
        if stored is None or stored.value is None:
            return
        self.apply(hexname(key), stored.value, stored.revision)
        self._change(key, edit)

    def _write(self, key: str, record: Record, last: int, done: Callable[[Ack], None]) -> None:
        node = self._node
        node.jet.kv_put(
            node.names.accounts_bucket, hexname(key), dumps(record), last=last, done=done
        )
