"""The SQLite account store: what it keeps, what it refuses, and that it persists."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from relaychat.accounts.store import Account, AccountStore, AccountStoreError, normalize_certfp
from tests.unit.accounts_support import CREDS, HASH

FP1, FP2 = "11" * 32, "22" * 32


def account(
    name: str, nick: str | None = None, *, email: str | None = None, certfps: tuple[str, ...] = ()
) -> Account:
    return Account(
        name=name,
        nick=nick or name,
        password_hash=HASH,
        scram=CREDS,
        email=email,
        created=5.0,
        certfps=certfps,
    )


def test_create_and_get(tmp_path: Path) -> None:
    store = AccountStore.open(tmp_path / "accounts.db")
    assert store.create(account("Alice", email="a@example.org", certfps=(FP1,)))
    got = store.get("ALICE")
    assert got == account("Alice", email="a@example.org", certfps=(FP1,))
    assert store.owner_of_nick("alice") == "Alice"
    assert store.owner_of_nick("bob") is None
    assert store.by_certfp(FP1) == got
    assert store.by_certfp(FP2) is None
    assert len(store) == 1


def test_no_password_is_stored(tmp_path: Path) -> None:
    store = AccountStore.open(tmp_path / "accounts.db")
    store.create(account("alice"))
    store.close()
    raw = (tmp_path / "accounts.db").read_bytes()
    assert b"correct-horse" not in raw and b"$argon2id$" in raw


def test_names_and_nicks_are_unique_in_any_case(tmp_path: Path) -> None:
    store = AccountStore.open(tmp_path / "accounts.db")
    assert store.create(account("alice", nick="ali"))
    assert not store.create(account("ALICE", nick="other"))  # same name
    assert not store.create(account("bob", nick="ALI"))  # same nick
    assert not store.create(account("Ali"))  # a name that is someone's nick
    assert store.get("bob") is None and len(store) == 1


def test_rfc1459_casefolding(tmp_path: Path) -> None:
    store = AccountStore.open(tmp_path / "accounts.db")
    store.create(account("nick[a]"))
    assert store.get("NICK{A}") is not None
    assert store.owner_of_nick("nick{a}") == "nick[a]"


def test_file_is_made_on_first_registration_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "accounts.db"
    store = AccountStore.open(path)
    assert store.get("alice") is None and store.by_certfp(FP1) is None
    assert not path.exists()
    store.create(account("alice"))
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_accounts_persist(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    store = AccountStore.open(path)
    store.create(account("alice", certfps=(FP1,)))
    assert store.add_certfp("alice", FP2, 6.0) is None
    store.close()
    again = AccountStore.open(path)
    got = again.get("alice")
    assert got is not None and got.certfps == (FP1, FP2) and got.scram == CREDS
    assert again.owner_of_nick("ALICE") == "alice"


def test_certificates(tmp_path: Path) -> None:
    store = AccountStore.open(":memory:")
    store.create(account("alice"))
    store.create(account("bob"))
    assert store.add_certfp("alice", FP1, 1.0) is None
    assert store.add_certfp("alice", FP1, 2.0) == "alice"
    assert store.add_certfp("bob", FP1, 2.0) == "alice"
    by = store.by_certfp(FP1)
    assert by is not None and by.name == "alice"
    assert not store.remove_certfp("bob", FP1)
    assert store.remove_certfp("alice", FP1)
    assert store.by_certfp(FP1) is None


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AccountStoreError) as err:
        AccountStore.open(path)
    assert str(path) in str(err.value) and "not a database" in str(err.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(AccountStoreError, match="newer relaychat"):
        AccountStore.open(path)


def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = AccountStore.open(blocker / "accounts.db")
    with pytest.raises(AccountStoreError, match=r"accounts\.db"):
        store.create(account("alice"))


@pytest.mark.parametrize(
    ("text", "fp"),
    [
        ("AB" * 32, "ab" * 32),
        (":".join(["Ab"] * 32), "ab" * 32),
        (" " + "0f" * 32 + " ", "0f" * 32),
        ("ab" * 31, None),
        ("zz" * 32, None),
        ("", None),
    ],
)
def test_normalize_certfp(text: str, fp: str | None) -> None:
    assert normalize_certfp(text) == fp


def test_metadata_keys(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    store = AccountStore.open(path)
    assert store.metadata("jilles") == {}  # no file yet: nothing, and no error
    store.create(account("jilles"))
    store.set_metadata("Jilles", "avatar", "a.png")
    store.set_metadata("jilles", "pronouns", "he/him")
    store.set_metadata("jilles", "avatar", "b.png")
    store.set_metadata("jilles", "pronouns", None)
    store.close()
    again = AccountStore.open(path)
    assert again.metadata("JILLES") == {"avatar": "b.png"}
    again.clear_metadata("jilles")
    assert again.metadata("jilles") == {}


def test_version_1_file_gains_the_metadata_table(tmp_path: Path) -> None:
    """Schema step 3 runs on a file made by the first schema, and keeps its accounts."""
    path = tmp_path / "accounts.db"
    store = AccountStore.open(path)
    store.create(account("old"))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE account_metadata")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    upgraded = AccountStore.open(path)
    assert upgraded.get("old") is not None
    upgraded.set_metadata("old", "k", "v")
    assert upgraded.metadata("old") == {"k": "v"}
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == 3
