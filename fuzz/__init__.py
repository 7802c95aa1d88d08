"""Coverage-guided fuzzing of the parser and of the whole sans-I/O core (docs/fuzzing.md).

- :mod:`fuzz.driver` turns any byte string into a run of many clients against an in-memory
  :class:`~relaychat.server.core.ServerCore`, checking the core's invariants after every step.
- :mod:`fuzz.fuzz_core` and :mod:`fuzz.fuzz_parser` are the atheris (libFuzzer) entry points;
  :mod:`fuzz.fallback` runs the same targets on random bytes where atheris is not installed.
"""
