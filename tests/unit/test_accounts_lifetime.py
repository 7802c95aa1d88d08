"""A core with accounts attached is freed once nothing uses it (the accounts glue keeps no
strong reference to it from a module-level table)."""

from __future__ import annotations

import gc
import weakref

from relaychat.accounts.store import AccountStore
from relaychat.accounts.worker import InlineWorker
from relaychat.server.accounts import AccountService, service_of
from relaychat.server.authtokens import attach_tokens
from relaychat.server.core import ServerCore
from tests.harness import memory_config


def test_a_core_with_accounts_is_collected() -> None:
    core = ServerCore(memory_config(), 1_000_000.0)
    store = AccountStore.open(":memory:")
    svc = AccountService(core, store, InlineWorker(lambda: 1_000_000.0), external=False)
    svc.attach()
    attach_tokens(core, ttl=60.0)
    assert service_of(core) is svc
    core_ref, svc_ref = weakref.ref(core), weakref.ref(svc)
    store.close()
    del core, svc
    gc.collect()
    assert core_ref() is None
    assert svc_ref() is None
