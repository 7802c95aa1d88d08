"""What an upload is called and how it is served (``web/upload_policy.py``), and the index's
retention and quota choices (``web/upload_index.py``), in memory and on a scratch directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relaychat.web.upload_index import StoredFile, UploadIndex
from relaychat.web.upload_policy import (
    OCTET_STREAM,
    checked_type,
    content_disposition,
    declared_type,
    name_from_disposition,
    parse_range,
    safe_name,
    served_as,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        (".bashrc", "bashrc"),
        ("...", "file"),
        ("", "file"),
        (None, "file"),
        ("a\x00b\x1b[31mc.txt", "a b [31mc.txt"),
        ("evil\u202egnp.exe", "evil gnp.exe"),  # a right-to-left override
        ("zero\u200bwidth.txt", "zero width.txt"),
        ("  spaced   out .txt  ", "spaced out .txt"),
        ("line\nbreak.txt", "line break.txt"),
        ("x" * 300 + ".jpeg", "x" * 95 + ".jpeg"),
        ("y" * 300, "y" * 100),
        ("café.png", "café.png"),
    ],
)
def test_safe_name(raw: str | None, name: str) -> None:
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="a b.png"', "a b.png"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ("attachment; filename*=UTF-8''caf%C3%A9.png", "café.png"),
        ("attachment; filename=\"fallback.png\"; filename*=UTF-8''r%C3%A9el.png", "réel.png"),
        ("attachment", None),
        (None, None),
    ],
)
def test_name_from_disposition(header: str | None, name: str | None) -> None:
    assert name_from_disposition(header) == name


def test_declared_type_from_header_then_extension() -> None:
    assert declared_type("image/PNG; charset=binary", "x") == "image/png"
    assert declared_type(None, "notes.txt") == "text/plain"
    assert declared_type("application/octet-stream", "a.jpg") == "image/jpeg"
    assert declared_type("image/jpg", "a") == "image/jpeg"
    assert declared_type(None, "noextension") == OCTET_STREAM
    assert declared_type("not a type", "x") == OCTET_STREAM
    assert declared_type("text/html\r\nX-Evil: 1", "x") == OCTET_STREAM


def test_an_image_must_look_like_one() -> None:
    assert checked_type("image/png", PNG) == "image/png"
    assert checked_type("image/png", b"<html><script>") == OCTET_STREAM
    assert checked_type("image/gif", PNG) == OCTET_STREAM
    assert checked_type("image/jpeg", b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert checked_type("image/webp", b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert checked_type("image/svg+xml", b"<svg onload=alert(1)>") == OCTET_STREAM
    assert checked_type("text/plain", b"hello") == "text/plain"


@pytest.mark.parametrize(
    ("kind", "served", "inline"),
    [
        ("image/png", "image/png", True),
        ("image/jpeg", "image/jpeg", True),
        ("image/gif", "image/gif", True),
        ("image/webp", "image/webp", True),
        ("image/svg+xml", OCTET_STREAM, False),
        ("text/html", OCTET_STREAM, False),
        ("application/xhtml+xml", OCTET_STREAM, False),
        ("text/javascript", OCTET_STREAM, False),
        ("application/javascript", OCTET_STREAM, False),
        ("text/xml", OCTET_STREAM, False),
        ("text/css", OCTET_STREAM, False),
        ("application/x-shockwave-flash", OCTET_STREAM, False),
        ("text/plain", "text/plain; charset=utf-8", False),
        ("application/pdf", "application/pdf", False),
        ("video/mp4", "video/mp4", False),
        (OCTET_STREAM, OCTET_STREAM, False),
    ],
)
def test_served_as_never_runs_anything(kind: str, served: str, inline: bool) -> None:
    assert served_as(kind) == (served, inline)


def test_content_disposition() -> None:
    assert content_disposition("a.png", True) == 'inline; filename="a.png"'
    assert content_disposition('we"ird\\%.txt', False) == (
        "attachment; filename=\"we_ird__.txt\"; filename*=UTF-8''we%22ird%5C%25.txt"
    )
    assert content_disposition("café.png", False) == (
        "attachment; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
    )


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=50-5000", (50, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=9-2", None),
        ("bytes=x-2", None),
    ],
)
def test_parse_range(header: str | None, span: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 100)


def entry(file_id: str, account: str, size: int, created: float) -> StoredFile:
    return StoredFile(file_id.ljust(22, "x"), account, "f.bin", OCTET_STREAM, size, created)


def test_index_retention_and_room(tmp_path: Path) -> None:
    index = UploadIndex(tmp_path / "uploads")
    index.load()
    files = [
        entry("a1", "alice", 10, 100.0),
        entry("b1", "Bob", 20, 200.0),
        entry("a2", "Alice", 30, 300.0),
        entry("a3", "alice", 40, 400.0),
    ]
    for f in files:
        (index.files_dir / f.id).write_bytes(b"x" * f.size)
        index.add(f)
        index.write_add(f)
    assert index.usage("ALICE") == (80, 3) and index.total == 100
    assert [f.id[:2] for f in index.expired(now=1000.0, max_age=750.0)] == ["a1", "b1"]
    assert index.expired(now=1000.0, max_age=0) == []
    assert [f.id[:2] for f in index.oldest_to_free("alice", need_bytes=35, need_files=0)] == [
        "a1",
        "a2",
    ]
    assert index.oldest_to_free("alice", need_bytes=81, need_files=0) is None
    assert [f.id[:2] for f in index.oldest_to_free(None, need_bytes=0, need_files=2)] == [
        "a1",
        "b1",
    ]
    assert index.oldest_to_free("nobody", need_bytes=0, need_files=0) == []
    gone = index.remove(files[0].id)
    assert gone is not None and index.usage("alice") == (70, 2) and index.total == 90
    index.delete_files([files[0].id])
    assert not (index.files_dir / files[0].id).exists()
    index.close()

    # Reopened: the rows are there; what a crash leaves is repaired (rule 2).
    os.unlink(index.files_dir / files[1].id)  # a row without its file
    (index.files_dir / ("z" * 22)).write_bytes(b"orphan")  # a file without its row
    (index.tmp_dir / "up-1.part").write_bytes(b"cut short")
    again = UploadIndex(tmp_path / "uploads")
    again.load()
    assert sorted(f[:2] for f in again.files) == ["a2", "a3"]
    assert again.usage("alice") == (70, 2) and again.usage("bob") == (0, 0)
    assert sorted(p.name[:2] for p in again.files_dir.iterdir()) == ["a2", "a3"]
    assert list(again.tmp_dir.iterdir()) == []
    again.close()
