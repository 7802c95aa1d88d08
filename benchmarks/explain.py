"""What is left of a target that was not met: where relaychat's CPU goes, and what it would take.

``make bench`` prints this for every workload with a target of issue 16 not met (issue 16's "done
when": every target met, or, for any not met, the profile that shows what is left and by how
much). The figures come from a py-spy profile of a separate run of that workload (so the measured
run is not slowed by the sampler), split into the parts that matter for a decision:

- ``history commit``: the SQLite group commit and the store's maintenance thread (retention,
  checkpoints) — every stack through ``relaychat/store/``;
- ``socket writes``: time in ``Connection.flush``/``_send_slow`` itself (the ``write`` system
  calls the kernel does for us);
- ``event loop and reads``: samples whose innermost Python frame is the event loop's ``run``
  (uvloop's C code: epoll, ``recv``, callbacks) — kernel and C, not our Python;
- ``Python message path``: everything else (read callback, parse, handlers, fan-out, replies).

For each part: its share, its CPU µs per delivered message (share times the measured CPU per
message), and the best ratio to the baseline if that part cost nothing — which says whether a
lever can reach the target at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from profile_summary import parse

__all__ = ["FEW_SAMPLES", "PARTS", "REPEAT", "explain_text", "sample_count", "split"]

#: The parts, in the order they are printed.
PARTS = ("history commit", "socket writes", "event loop and reads", "Python message path")

#: Below this many samples the split is too coarse to act on (py-spy samples at 250 Hz: W1's
#: whole storm lasts a fraction of a second); the text says so.
FEW_SAMPLES = 200

#: Workloads profiled over several runs (their profiles added up) to get enough samples.
REPEAT = {"w1": 10}

_WRITES = ("Connection.flush", "Connection._send_slow")
_LOOP = ("Runner.run", "run_forever", "run_until_complete", "run")


def _part(frames: list[tuple[str, str, int]]) -> str:
    if any(file.startswith("relaychat/store/") for _, file, _ in frames):
        return "history commit"
    if not frames:
        return "event loop and reads"
    func, file, _ = frames[-1]
    if func in _WRITES:
        return "socket writes"
    if func in _LOOP and not file.startswith("relaychat/"):
        return "event loop and reads"
    return "Python message path"


def split(raw_profile: str) -> dict[str, float]:
    """The share (0..1) of the profile's CPU samples in each of :data:`PARTS`."""
    counts: Counter[str] = Counter()
    for frames, n in parse(raw_profile):
        counts[_part(frames)] += n
    total = sum(counts.values())
    return {p: (counts[p] / total if total else 0.0) for p in PARTS}


def sample_count(raw_profile: str) -> int:
    """How many CPU samples the profile holds."""
    return sum(n for _, n in parse(raw_profile))


def _caveat(samples: int | None) -> list[str]:
    if samples is None:
        return []
    if samples < FEW_SAMPLES:
        return [f"  ({samples} samples only: too few to split reliably; read it as a hint)"]
    return [f"  ({samples} samples)"]


def explain_text(
    workload: str,
    shares: dict[str, float],
    *,
    cpu_us: float | None,
    base_cpu_us: float | None,
    baseline: str,
    unmet: list[dict[str, Any]],
    profile_path: str,
    rate: float | None = None,
    goal: float | None = None,
    samples: int | None = None,
) -> str:
    """The "what is left" block for one workload (see the module docstring).

    With ``rate`` and ``goal`` (a target in events per second of its own, W1's), each part's
    column is the rate relaychat would reach if that part cost nothing, against that goal,
    instead of a ratio to the baseline's CPU per message.
    """
    lines = [f"What is left in {workload.upper()} (py-spy, a separate run: {profile_path}):"]
    lines += [f"  NOT met: {t['target']}: {t['detail']}" for t in unmet]
    best: Callable[[float], str]
    if rate and goal:
        lines.append(f"  {rate:,.0f}/s against a goal of {goal:,.0f}/s: {goal / rate:.2f}x to go")
        unit, column = "µs each", "rate if this part were free"

        def best(share: float) -> str:
            return f"{rate / (1.0 - share):,.0f}/s (if CPU-bound)"

    else:
        if cpu_us and base_cpu_us:
            lines.append(
                f"  server CPU per delivered message: relaychat {cpu_us:.2f} µs, {baseline} "
                f"{base_cpu_us:.2f} µs: relaychat needs {cpu_us / base_cpu_us:.2f}x less to match"
            )
        unit, column = "µs/msg", f"ratio to {baseline} if this part were free"

        def best(share: float) -> str:
            if not (cpu_us and base_cpu_us):
                return "—"
            return f"{base_cpu_us / (cpu_us * (1.0 - share)):.2f}x (by CPU per message)"

    lines.append(f"  {'part':<22} {'share':>6} {unit:>8}   {column}")
    for p in PARTS:
        share = shares.get(p, 0.0)
        us = f"{share * cpu_us:8.2f}" if cpu_us else f"{'—':>8}"
        lines.append(f"  {p:<22} {100 * share:5.1f}% {us}   {best(share) if share < 1.0 else '—'}")
    return "\n".join([*lines, *_caveat(samples)])
