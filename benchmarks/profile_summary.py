"""Summarise a py-spy ``--format raw`` profile: where the samples fall, by function and by line.

Usage: ``.venv/bin/python benchmarks/profile_summary.py PROFILE.txt [--top N]``

The raw format is one collapsed stack per line, outermost frame first, then a sample count:
``main (relaychat/cli.py:90);run (…/listeners.py:170);… 42``. "Self" counts a sample for the
innermost frame only; "inclusive" counts it once for every function on the stack.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

__all__ = ["parse", "summarize"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*):(?P<line>\d+)\)$")


def _short(path: str) -> str:
    """Drop the virtualenv / site-packages / src prefixes from a file name."""
    for marker in ("site-packages/", "/src/", "lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                tail = "stdlib/" + tail.split("/", 1)[-1]
            return tail
    return path


def parse(text: str) -> list[tuple[list[tuple[str, str, int]], int]]:
    """The stacks of a raw profile: ``[([(function, file, line), ...], samples), ...]``."""
    stacks: list[tuple[list[tuple[str, str, int]], int]] = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        body, _, count = raw.rpartition(" ")
        if not count.isdigit():
            continue
        frames: list[tuple[str, str, int]] = []
        for part in body.split(";"):
            m = _FRAME.match(part.strip())
            if m:
                frames.append((m["func"], _short(m["file"]), int(m["line"])))
            else:
                frames.append((part.strip(), "", 0))
        stacks.append((frames, int(count)))
    return stacks


def summarize(text: str, *, top: int = 25) -> str:
    """Top functions by self and inclusive samples, and top lines by self samples, as text."""
    stacks = parse(text)
    total = sum(n for _, n in stacks)
    if total == 0:
        return "no samples\n"
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_line: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        func, file, line = frames[-1]
        self_fn[f"{func} ({file})"] += n
        self_line[f"{file}:{line} {func}"] += n
        for key in {f"{f} ({fl})" for f, fl, _ in frames}:
            incl_fn[key] += n

    def block(title: str, counter: Counter[str]) -> list[str]:
        out = [title]
        for key, n in counter.most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {key}")
        return out

    lines = [f"{total} samples (CPU samples only; idle time is not sampled)", ""]
    lines += [*block("self time by function:", self_fn), ""]
    lines += [*block("inclusive time by function:", incl_fn), ""]
    lines += block("self time by line:", self_line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    sys.stdout.write(summarize(args.profile.read_text(), top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
