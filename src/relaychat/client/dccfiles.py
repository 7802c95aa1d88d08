"""DCC file transfer, the files: which one to read, which one to write, and its final name.

Rules (:mod:`.dccstate` rule 2 is the why):
1. A received file is written as ``NAME.part`` inside the chosen directory, opened with
   ``O_NOFOLLOW`` (a planted symlink is refused, not followed) and, when new, ``O_EXCL`` (never
   an existing file). ``NAME`` comes from :func:`~.dccstate.safe_name`, so it has no path
   component and the file cannot land outside the directory.
2. Resuming continues an existing file only when it is a regular file smaller than the offer:
   our own ``NAME.part``, or (asked explicitly) ``NAME`` itself.
3. A complete ``NAME.part`` becomes the first free ``NAME``, ``NAME-1``... with a hard link
   (which fails rather than replace), so even a file that appeared meanwhile is never
   overwritten.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from relaychat.client.dccstate import PART_SUFFIX, free_name, safe_name
from relaychat.client.errors import DccError
from relaychat.client.link import describe

__all__ = ["Target", "close_target", "name_complete", "open_source", "open_target"]

_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_source(path: Path, name: str | None = None) -> tuple[BinaryIO, int, str]:
    """Open a file to send.

    Args:
        path: the file.
        name: the name to offer instead of the file's own.

    Returns:
        The open file (the caller closes it), its size, and the name to offer (made safe).

    Raises:
        DccError: it cannot be read, is not a regular file, or has no usable name.
    """
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DccError(f"cannot read {path}: {describe(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DccError(f"{path} is not a regular file")
        offered = safe_name(name or path.name)
    except (DccError, ValueError) as exc:
        os.close(fd)
        raise DccError(str(exc)) from None
    return os.fdopen(fd, "rb"), info.st_size, offered


@dataclass(frozen=True, slots=True)
class Target:
    """Where a received file goes: an open descriptor positioned at ``offset``."""

    fd: int
    path: Path
    offset: int


def open_target(
    folder: Path, name: str, size: int, *, resume: bool | None, reserved: set[str]
) -> Target:
    """Open the file to receive ``name`` into (rules 1 and 2).

    Args:
        folder: the directory (resolved).
        name: a safe name (:func:`~.dccstate.safe_name`).
        size: the offered size.
        resume: ``None``: continue ``NAME.part`` if there is one, else a new file; ``True``:
            also continue ``NAME``, and fail if there is nothing to continue; ``False``: new.
        reserved: paths other transfers are writing (never touched).

    Raises:
        DccError: nothing to resume (with ``resume=True``), or no file can be created.
    """
    candidates = [folder / (name + PART_SUFFIX)] if resume is not False else []
    if resume:
        candidates.append(folder / name)
    for path in candidates:
        if str(path) in reserved:
            continue
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size < size:
                fd = os.open(path, _FLAGS)
                os.lseek(fd, info.st_size, os.SEEK_SET)
                return Target(fd, path, info.st_size)
    if resume:
        raise DccError(f"nothing to resume: no partial {name} in {folder}")

    def used(candidate: str) -> bool:
        full, part = folder / candidate, folder / (candidate + PART_SUFFIX)
        return (
            os.path.lexists(full)
            or os.path.lexists(part)
            or str(part) in reserved
            or str(full) in reserved
        )

    try:
        path = folder / (free_name(name, used) + PART_SUFFIX)
        fd = os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, 0o644)
    except (OSError, ValueError) as exc:
        raise DccError(f"cannot create a file in {folder}: {describe(exc)}") from None
    return Target(fd, path, 0)


def close_target(fd: int, path: Path | None) -> None:
    """Close a received file; an empty ``.part`` is removed (nothing of it was received)."""
    with contextlib.suppress(OSError):
        empty = os.fstat(fd).st_size == 0
        os.close(fd)
        if empty and path is not None and path.name.endswith(PART_SUFFIX):
            path.unlink()


def name_complete(path: Path) -> Path:
    """Give a complete ``NAME.part`` its name (rule 3); returns the final path.

    Raises:
        OSError, DccError: the file system refused, or no free name.
    """
    if not path.name.endswith(PART_SUFFIX):
        return path
    folder, stem = path.parent, path.name[: -len(PART_SUFFIX)]
    for _ in range(100):
        final = folder / free_name(stem, lambda n: os.path.lexists(folder / n))
        try:
            os.link(path, final)  # fails if it exists: no overwriting, even in a race
        except FileExistsError:
            continue
        except OSError:  # no hard links on this file system
            if os.path.lexists(final):
                continue
            os.rename(path, final)
        else:
            os.unlink(path)
        return final
    raise DccError(f"no free name for {stem} in {folder}")
