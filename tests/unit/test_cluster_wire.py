"""The cluster's pure parts: record merging, history records, link batches, names, settings."""

from __future__ import annotations

import json

import pytest

from relaychat.cluster.names import Names, hexname, unhex
from relaychat.cluster.peer import Link, decode_batch
from relaychat.cluster.wire import (
    apply,
    channel_payload,
    diff,
    dumps,
    private_payload,
    read_channel,
    read_private,
    stored_from_json,
    stored_to_json,
)
from relaychat.config import load_config
from relaychat.errors import ConfigError
from relaychat.store.base import StoredMessage


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "#a",
        "created": 1,
        "modes": "nt",
        "key": None,
        "limit": None,
        "topic": "",
        "topic_by": "",
        "topic_time": 0,
        "bans": [],
        "invites": [],
        "ops": ["n1/1"],
        "voices": [],
    }
    base.update(changes)
    return base


def test_two_changes_made_at_once_both_survive_the_compare_and_set() -> None:
    base = record()
    mine = diff(base, record(modes="mnt", ops=["n1/1", "n2/7"]))
    theirs = record(topic="hello", topic_by="bob", topic_time=5, bans=[["x!*@*", "bob", 5]])
    merged = apply(theirs, mine)  # we lost the race: our delta goes on top of theirs
    assert merged["modes"] == "mnt"
    assert merged["ops"] == ["n1/1", "n2/7"]
    assert merged["topic"] == "hello" and merged["bans"] == [["x!*@*", "bob", 5]]


def test_set_deltas_add_and_remove_without_clobbering() -> None:
    base = record(ops=["a/1", "b/2"], bans=[["m1", "x", 1], ["m2", "x", 1]], invites=["bob"])
    now = record(ops=["a/1", "c/3"], bans=[["m2", "x", 1], ["m3", "y", 2]], invites=[])
    delta = diff(base, now)
    assert delta["ops"] == [["c/3"], ["b/2"]]
    assert delta["invites"] == [[], ["bob"]]
    other = record(ops=["a/1", "b/2", "d/4"], bans=[["m1", "x", 1], ["m2", "x", 1], ["m9", "z", 3]])
    out = apply(other, delta)
    assert out["ops"] == ["a/1", "c/3", "d/4"]
    assert [b[0] for b in out["bans"]] == ["m2", "m9", "m3"]
    assert diff(now, now) == {}


def test_stored_messages_round_trip() -> None:
    m = StoredMessage(
        msgid="abc",
        time=12.5,
        key="alice bob",
        source="alice!~a@h",
        account="alice",
        command="PRIVMSG",
        target="bob",
        text="hi\nthere",
        tags={"+draft/react": "x"},
        to_account="bob",
        multiline=(False, True),
        redacts=None,
        redacted=False,
    )
    assert stored_from_json(stored_to_json(m)) == m


def test_link_batches_carry_bytes_per_user_in_order() -> None:
    sent: list[tuple[str, bytes]] = []
    dirty: list[Link] = []
    link = Link("p.n.n2.x", lambda s, b: sent.append((s, b)), dirty.append)
    link.add(3, b":a PRIVMSG b :1\r\n")
    link.add(4, b":a PRIVMSG c :2\r\n")
    link.request({"kill": 3})
    assert dirty == [link]  # marked once
    link.flush(2)  # what the commit covered
    assert list(decode_batch(sent[0][1])) == [
        (3, b":a PRIVMSG b :1\r\n"),
        (4, b":a PRIVMSG c :2\r\n"),
    ]
    link.flush()
    assert list(decode_batch(sent[1][1])) == [(0, b'{"kill":3}')]
    assert list(decode_batch(sent[1][1][:-1])) == []  # a cut record is not delivered


def test_names_are_tokens() -> None:
    names = Names("rc", "n1", "abcd")
    assert unhex(hexname("#héllo.world*>")) == "#héllo.world*>"
    assert names.channel_subject("#a.b", "m") == "rc.c.23612e62.m"
    assert (
        names.private_subject("alice bob", "n2") == f"rc.p.{hexname('alice')}.{hexname('bob')}.n2"
    )
    assert names.private_feed() == "rc.q.*.*.n1"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"cluster.url": "http://x"}, "cluster.url"),
        ({"cluster.node_name": "a b"}, "cluster.node_name"),
        ({"cluster.prefix": "a.b"}, "cluster.prefix"),
        ({"cluster.replicas": 0}, "cluster.replicas"),
        ({"cluster.heartbeat": 5, "cluster.node_timeout": 6}, "cluster.node_timeout"),
        ({"cluster.tls_cert": "c.pem"}, "cluster.tls_key"),
    ],
)
def test_bad_cluster_settings_name_their_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides=overrides)
    assert info.value.key == key


def test_cluster_settings_from_the_environment() -> None:
    config = load_config(
        environ={
            "RELAYCHAT_CLUSTER__URL": "nats://a:4222,nats://b:4222",
            "RELAYCHAT_CLUSTER__NODE_NAME": "node-1",
        }
    )
    assert config.cluster.url == "nats://a:4222,nats://b:4222"
    assert config.cluster.node_name == "node-1"


def test_private_payloads_carry_bytes_ahead_of_the_record() -> None:
    record = {"i": "m1", "t": 1.0, "k": "a b", "s": "a!u@h", "c": "PRIVMSG", "g": "b", "x": "é"}
    data = b":a!u@h PRIVMSG b :\xc3\xa9 with\nnewline-free bytes\r\n"
    payload = private_payload(7, "beef", data, record)
    assert read_private(payload) == (7, "beef", data, record)
    assert read_private(b'{"h": {"i": "m2"}}') == (0, "", None, {"i": "m2"})
    with pytest.raises(ValueError):
        read_private(payload[:30])


def test_channel_payloads_carry_the_line_as_is_and_the_record_unparsed() -> None:
    meta = {"n": "node1", "g": "beef", "s": 3, "t": "2026-01-01T00:00:00.000Z", "i": "m1"}
    line = b":a!u@h PRIVMSG #c :\xc3\xa9 {not json} E1 1 2\n\r\n"
    record = {"i": "m1", "t": 1.0, "k": "#c", "s": "a!u@h", "c": "PRIVMSG", "g": "#c", "x": "é"}
    payload = channel_payload(meta, line, dumps(record))
    [(got_meta, got_line, got_record)] = read_channel(payload)
    assert (got_meta, got_line, json.loads(got_record)) == (meta, line, record)
    assert read_private(payload) == (0, "", None, record)  # history reads the record
    # Merged events (one stream message) come back one by one, in order.
    other = {**meta, "i": "m2"}
    merged = payload + channel_payload(other, b":b JOIN #c\r\n") + payload
    assert [(m["i"], ln) for m, ln, _ in read_channel(merged)] == [
        ("m1", line),
        ("m2", b":b JOIN #c\r\n"),
        ("m1", line),
    ]
    assert [r for _, _, r in read_channel(merged)][1] == b""
    # An older node's JSON form, and a history record alone.
    [(_, old_line, old_record)] = read_channel(dumps({**meta, "l": line.decode(), "h": record}))
    assert old_line == line and json.loads(old_record) == record
    assert read_channel(dumps({"h": record}))[0][1] == b""
    for broken in (payload[:20], payload + b"E1 5 5 5\nabc", payload + b"junk"):
        with pytest.raises(ValueError):
            read_channel(broken)


def test_an_unread_busy_channel_leaves_the_history_index() -> None:
    from relaychat.cluster.history import RAW_LIMIT, ClusterHistory
    from relaychat.config import Config

    history = ClusterHistory(Config(), None, Names("p", "n", "i"))  # type: ignore[arg-type]
    history._loaded["#c"] = 0  # loaded, empty
    for seq in range(1, 6):
        history.feed("#c", seq, seq - 1, [dumps(stored_to_json(msg(seq)))])
    history.feed("#c", 6, 5, [dumps(stored_to_json(msg(i))) for i in (6, 7)])  # merged
    assert history.ready("#c")  # parsed on reading
    assert [e.message.msgid for e in history._by_key["#c"]] == [f"m{i}" for i in range(1, 8)]
    for seq in range(7, 7 + RAW_LIMIT):
        history.feed("#c", seq, seq - 1, [dumps(stored_to_json(msg(seq)))])
    assert not history.ready("#c") and "#c" not in history._by_key  # the stream has it
    history.feed("#c", 7 + RAW_LIMIT, 6 + RAW_LIMIT, [b"{}"])  # nothing kept until reloaded
    assert "#c" not in history._raw


def msg(i: int) -> StoredMessage:
    return StoredMessage(
        msgid=f"m{i}",
        time=1000.0 + i,
        key="#c",
        source="a!u@h",
        account=None,
        command="PRIVMSG",
        target="#c",
        text=f"line {i}",
        tags={},
    )
