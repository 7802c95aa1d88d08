#!/usr/bin/env python3
"""atheris entry point: the whole sans-I/O core under random command sequences from many users.

Run ``make fuzz FUZZ_TIME=60`` (or ``python -m fuzz.fuzz_core -max_total_time=60 CORPUS_DIR``);
every libFuzzer flag works. A finding prints the broken invariant and the last steps, and
libFuzzer saves the input as ``crash-*`` to replay with ``python -m fuzz.fuzz_core crash-...``.
"""

from __future__ import annotations

import contextlib
import sys

try:
    import atheris

    _instrument = atheris.instrument_imports
except ImportError:  # the fallback engine (fuzz/fallback.py) runs the same targets
    atheris = None
    _instrument = contextlib.nullcontext  # type: ignore[assignment]

with _instrument(include=["relaychat", "fuzz"]):  # type: ignore[call-arg]
    from fuzz.driver import run_bytes


def main() -> None:
    assert atheris is not None, "atheris is not installed: pip install atheris"
    atheris.Setup(sys.argv, run_bytes)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
