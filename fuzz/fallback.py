"""The same fuzz targets without atheris: random and mutated bytes for a given time.

``python -m fuzz.fallback core|parser --seconds 20``. Used by ``make test`` only where atheris is
not installed (it has no wheel for the Python in use); not coverage-guided, so weaker, but the
invariants checked are the same.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable


def _target(name: str) -> Callable[[bytes], None]:
    if name == "core":
        from fuzz.driver import run_bytes

        return run_bytes
    from fuzz.fuzz_parser import check_bytes

    return check_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.fallback")
    parser.add_argument("target", choices=("core", "parser"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    target = _target(args.target)
    pool: list[bytes] = [b""]
    runs = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if pool and rng.random() < 0.5:
            base = bytearray(rng.choice(pool))
            for _ in range(rng.randint(1, 8)):
                if base and rng.random() < 0.7:
                    base[rng.randrange(len(base))] = rng.randrange(256)
                else:
                    base[rng.randrange(len(base) + 1) : 0] = rng.randbytes(rng.randint(1, 16))
            data = bytes(base)
        else:
            data = rng.randbytes(rng.randint(0, 1500))
        try:
            target(data)
        except Exception:
            print(f"finding (seed {seed}, run {runs}); input: {data.hex()}", file=sys.stderr)
            raise
        if len(pool) < 256:
            pool.append(data)
        runs += 1
    print(f"fallback {args.target}: {runs} runs in {args.seconds:g} s, no finding (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
