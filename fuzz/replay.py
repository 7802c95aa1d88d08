"""Replay saved fuzz inputs without atheris: ``python -m fuzz.replay [--parser] PATH...``.

Each path is a file or a directory of files (a corpus, or a ``crash-*`` libFuzzer saved). Every
input runs through the same target and invariants as under the fuzzer; the first finding is
printed with its file and the exit code is 1. Also the way to measure line coverage of a corpus:
``coverage run -m fuzz.replay fuzz/corpus/core``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.replay")
    parser.add_argument("--parser", action="store_true", help="the parser target (default: core)")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.parser:
        from fuzz.fuzz_parser import check_bytes as target
    else:
        from fuzz.driver import run_bytes as target
    files = [f for p in args.paths for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
    for path in files:
        try:
            target(path.read_bytes())
        except Exception as exc:
            print(f"{path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(f"replayed {len(files)} inputs, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
