"""Formatting the benchmark's results: the table of figures and ratios, health, and targets.

Pure functions over the result dictionaries that :mod:`bench` collects; nothing here runs
anything. Every ratio is relaychat's figure divided by the other server's; each metric says
whether higher or lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "METRICS",
    "Metric",
    "header",
    "health_table",
    "markdown",
    "one_line",
    "problems",
    "ratios",
    "table",
    "targets",
    "targets_text",
]

SUBJECT = "relaychat"
#: The derived figure "server CPU time per delivered message" (see :func:`value`).
CPU_PER_MSG = "cpu_us_per_msg"
GEN_SATURATED_PCT = 90.0
#: Issue 16's W1 target, registrations per second.
W1_GOAL = 10_000.0


@dataclass(frozen=True)
class Metric:
    """One figure of one workload, as the generator's JSON names it."""

    workload: str
    key: str
    label: str
    higher_better: bool
    digits: int
    ratio: bool = True


METRICS: list[Metric] = [
    Metric("w1", "reg_per_s", "registrations/s", True, 0),
    Metric("w1", "all_001_s", "time until all have 001 (s)", False, 3),
    Metric("w1", "reg_p99_ms", "one registration, p99 (ms)", False, 1),
    Metric("w1", "left_waiting", "clients left without 001", False, 0, ratio=False),
    Metric("w2", "rss_per_conn_kib", "server RSS per connection (KiB)", False, 2),
    Metric("w2", "ping_p50_ms", "PING round trip p50 (ms)", False, 3),
    Metric("w2", "ping_p99_ms", "PING round trip p99 (ms)", False, 3),
    Metric("w2", "unanswered", "PINGs unanswered", False, 0, ratio=False),
    Metric("w3", "delivered_lines_per_s", "delivered lines/s", True, 0),
    Metric("w3", "msgs_per_s", "messages sent/s", True, 0),
    Metric("w3", "lat_p99_ms", "latency p99 at full load (ms)", False, 2, ratio=False),
    Metric("w3r", "lat_p50_ms", "latency p50 at 1,000 msg/s (ms)", False, 3),
    Metric("w3r", "lat_p99_ms", "latency p99 at 1,000 msg/s (ms)", False, 3),
    Metric("w3r", "msgs_per_s", "messages sent/s (target 1,000)", True, 0, ratio=False),
    Metric("w3d", "delivered_lines_per_s", "delivered lines/s, delayed ACKs", True, 0),
    Metric("w3d", "lat_p99_ms", "latency p99, delayed ACKs (ms)", False, 2, ratio=False),
    Metric("w4", "roundtrips_per_s", "round trips/s", True, 0),
    Metric("w4", "rtt_p50_ms", "round trip p50 (ms)", False, 3),
    Metric("w4", "rtt_p99_ms", "round trip p99 (ms)", False, 3),
    # The server's CPU time (user + kernel, over the measured window) per message it delivered:
    # the figure that moves least with a shared machine's noise (issue 16).
    *(
        Metric(w, CPU_PER_MSG, f"server CPU µs per {what}", False, 2)
        for w, what in [
            ("w1", "registration"),
            ("w2", "PING answered"),
            ("w3", "delivered line"),
            ("w3r", "delivered line"),
            ("w3d", "delivered line"),
            ("w4", "delivered message"),
        ]
    ),
]
#: Each workload's figures together, in workload order (the CPU figure last of each).
METRICS.sort(key=lambda m: ["w1", "w2", "w3", "w3r", "w3d", "w4"].index(m.workload))


def value(res: dict[str, Any] | None, key: str) -> float | None:
    """A figure from one result, or None when the run failed or did not produce it."""
    if not res or "error" in res:
        return None
    if key == CPU_PER_MSG:
        return _cpu_per_msg(res)
    if key == "unanswered":
        if "pings_sent" not in res:
            return None
        return float(res["pings_sent"] - res["pongs_received"] + (res["clients"] - res["ready"]))
    v = res.get(key)
    if v is None:
        return None
    fv = float(v)
    # The generator writes -1 for what it could not measure (no samples, no server process).
    if fv < 0 and key.endswith(("_ms", "_kib", "_pct")):
        return None
    return fv


def _cpu_per_msg(res: dict[str, Any]) -> float | None:
    """Server CPU µs (user + kernel over the window) per message delivered in the window: per
    registration (W1), PONG (W2), line delivered to a member (W3*), or message of a round trip
    (W4: two per round trip)."""
    cpu = res.get("server_cpu_s")
    if cpu is None or float(cpu) < 0:
        return None
    wl = res.get("workload")
    if wl == "w1":
        n = res.get("registered")
    elif wl == "w2":
        n = res.get("pongs_received")
    elif wl == "w4":
        n = 2 * int(res.get("roundtrips", 0))
    else:
        n = res.get("delivered_in_window")
    if not n:
        return None
    return float(cpu) * 1e6 / float(n)


def problems(res: dict[str, Any] | None) -> list[str]:
    """What makes a result doubtful, in words (empty when it is clean)."""
    if not res:
        return ["not run"]
    out: list[str] = []
    if "error" in res:
        out.append(res["error"])
    if "server_died" in res:
        out.append("server died: " + res["server_died"].replace("\n", " | ")[-240:])
    if "error" in res:
        return out
    wl = res.get("workload")
    if wl == "w1":
        if res.get("left_waiting"):
            out.append(f"{res['left_waiting']} clients left without 001")
        if res.get("failed_setup"):
            out.append(f"{res['failed_setup']} clients failed to register")
    else:
        if res.get("ready", 0) < res.get("clients", 0):
            out.append(f"only {res.get('ready')} of {res.get('clients')} clients set up")
    if res.get("disconnected"):
        out.append(f"{res['disconnected']} clients disconnected during the run")
    if res.get("lost"):
        out.append(f"{res['lost']} deliveries missing after the drain")
    if wl == "w2" and res.get("pings_sent", 0) != res.get("pongs_received", 0):
        out.append(f"{res['pings_sent'] - res['pongs_received']} PINGs unanswered")
    if wl == "w4" and res.get("unanswered"):
        out.append(f"{res['unanswered']} round trips unfinished after the drain")
    if res.get("window_s", 0) >= 0.5 and res.get("gen_cpu_pct", 0) >= GEN_SATURATED_PCT:
        out.append(f"generator saturated ({res['gen_cpu_pct']:.0f}% CPU)")
    return out


def _fmt(v: float | None, digits: int) -> str:
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(
    results: dict[str, dict[str, Any]], names: list[str], keys: list[str]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{workload: {metric: {other server: relaychat / other}}}``."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    if SUBJECT not in results:
        return out
    for m in METRICS:
        if m.workload not in keys or not m.ratio:
            continue
        mine = value(results[SUBJECT].get(m.workload), m.key)
        row = {
            other: _ratio(mine, value(results[other].get(m.workload), m.key))
            for other in names
            if other != SUBJECT
        }
        out.setdefault(m.workload, {})[m.key] = {
            k: (round(v, 3) if v is not None else None) for k, v in row.items()
        }
    return out


def header(info: dict[str, Any], command: str, *, quick: bool) -> str:
    """The lines above the table: the machine and the command."""
    return "\n".join(
        [
            "relaychat benchmark"
            + (" (QUICK smoke run: small counts, short windows)" if quick else ""),
            f"  machine: {info['nproc']} cores, {info['cpu_model']}, {info['memory_gib']} GiB, "
            f"Linux {info['kernel']}, Python {info['python']}, fd limit {info['fd_limit']}",
            f"  servers pinned to cpu{info['server_cpu']}, generator (C, epoll) to "
            f"cpu{info['gen_cpu']}; load average at start {' '.join(info['loadavg_start'])}",
            f"  command: {command}",
            f"  relaychat source: {info.get('source', 'unknown')}",
        ]
    )


_HEADLINE = {
    "w1": ("reg_per_s", "registrations/s"),
    "w2": ("rss_per_conn_kib", "KiB/conn"),
    "w3": ("delivered_lines_per_s", "lines/s"),
    "w3r": ("lat_p99_ms", "ms p99"),
    "w3d": ("delivered_lines_per_s", "lines/s"),
    "w4": ("roundtrips_per_s", "round trips/s"),
}


def one_line(res: dict[str, Any]) -> str:
    """A progress line for one finished run."""
    issues = problems(res)
    if "error" in res:
        return "FAILED: " + "; ".join(issues)
    key, unit = _HEADLINE[res["workload"]]
    v = value(res, key)
    text = f"{_fmt(v, 2 if unit.startswith(('KiB', 'ms')) else 0)} {unit}"
    gen, srv = value(res, "gen_cpu_pct"), value(res, "server_cpu_pct")
    text += f"  (generator {_fmt(gen, 0)}% CPU, server {_fmt(srv, 0)}%)"
    if issues:
        text += "  ! " + "; ".join(issues)
    return text


def _grid(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(doc: dict[str, Any], names: list[str], keys: list[str]) -> str:
    """The figures of every server and relaychat's ratios to each other server."""
    results = doc["results"]
    others = [n for n in names if n != SUBJECT]
    head = ["workload", "metric", *names]
    if SUBJECT in names:
        head += [f"{SUBJECT[:2]}/{o}" for o in others]
    head.append("better")
    rows = [head]
    flagged: list[str] = []
    for m in METRICS:
        if m.workload not in keys:
            continue
        row = [m.workload.upper(), m.label]
        for n in names:
            res = results[n].get(m.workload)
            cell = _fmt(value(res, m.key), m.digits)
            if problems(res):
                cell += " *"
                tag = f"{m.workload.upper()} {n}"
                if tag not in flagged:
                    flagged.append(tag)
            row.append(cell)
        if SUBJECT in names:
            for o in others:
                r = doc["ratios"].get(m.workload, {}).get(m.key, {}).get(o) if m.ratio else None
                row.append(f"{r:.2f}x" if r is not None else "—")
        row.append("higher" if m.higher_better else "lower")
        rows.append(row)
    right = set(range(2, len(head) - 1))
    text = _grid(rows, right)
    if flagged:
        notes = []
        for tag in flagged:
            wl, n = tag.split(" ", 1)
            notes.append(f"  * {tag}: " + "; ".join(problems(results[n].get(wl.lower()))))
        text += "\n\n" + "\n".join(notes)
    return text


def health_table(doc: dict[str, Any], names: list[str], keys: list[str]) -> str:
    """CPU of the generator and the server over each measured window, and the noise."""
    rows = [
        [
            "workload",
            "server",
            "generator CPU %",
            "server CPU %",
            "of which kernel %",
            "others on server core %",
            "others on generator core %",
        ]
    ]
    for k in keys:
        for n in names:
            res = doc["results"][n].get(k, {})
            noise = res.get("noise", {})
            rows.append(
                [
                    k.upper(),
                    n,
                    _fmt(value(res, "gen_cpu_pct"), 1),
                    _fmt(value(res, "server_cpu_pct"), 1),
                    _fmt(value(res, "server_sys_pct"), 1),
                    _fmt(noise.get("server_core_pct"), 1),
                    _fmt(noise.get("gen_core_pct"), 1),
                ]
            )
    return (
        "CPU over each measured window (100 = one core busy); 'others' = CPU used on that core by "
        "other processes during the whole run (noise):\n" + _grid(rows, {2, 3, 4, 5, 6})
    )


def targets(
    results: dict[str, dict[str, Any]], keys: list[str], *, baseline: str, quick: bool
) -> list[dict[str, Any]]:
    """Issue 16's targets, each with whether relaychat met it in this run."""
    mine = results.get(SUBJECT, {})
    base = results.get(baseline, {})
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool | None, detail: str) -> None:
        out.append({"target": name, "met": met, "detail": detail})

    def both(wl: str, key: str) -> tuple[float | None, float | None]:
        return value(mine.get(wl), key), value(base.get(wl), key)

    def at_least(wl: str, key: str, what: str, times: float) -> None:
        a, b = both(wl, key)
        r = _ratio(a, b)
        add(
            f"{wl.upper()} {what} >= {times:.1f}x {baseline}",
            None if r is None else r >= times,
            f"{_fmt(a, 0)} vs {_fmt(b, 0)} = {r:.2f}x" if r is not None else "no figure",
        )

    def at_most(wl: str, key: str, what: str) -> None:
        a, b = both(wl, key)
        add(
            f"{wl.upper()} {what} <= {baseline}'s",
            None if a is None or b is None else a <= b,
            f"{_fmt(a, 3)} ms vs {_fmt(b, 3)} ms",
        )

    if "w4" in keys:
        at_least("w4", "roundtrips_per_s", "round trips/s", 1.0)
        at_most("w4", "rtt_p99_ms", "round trip p99")
    if "w3r" in keys:
        at_most("w3r", "lat_p99_ms", "latency p99 at 1,000 msg/s")
    if "w3" in keys:
        at_least("w3", "delivered_lines_per_s", "delivered lines/s", 1.5)
    if "w1" in keys:
        res = mine.get("w1")
        rate = value(res, "reg_per_s")
        waiting = (res or {}).get("left_waiting", 0) + (res or {}).get("failed_setup", 0)
        ok = None if rate is None else (rate >= W1_GOAL and waiting == 0)
        add(
            "W1 >= 10,000 registrations/s, no client left waiting",
            ok,
            f"{_fmt(rate, 0)}/s, {waiting} left waiting, {(res or {}).get('clients', '?')} clients",
        )
    if "w2" in keys:
        res = mine.get("w2")
        kib = value(res, "rss_per_conn_kib")
        unanswered = value(res, "unanswered")
        ok = None if kib is None else (kib <= 3.0 and unanswered == 0)
        add(
            "W2 <= 3 KiB RSS per idle connection, every PING answered",
            ok,
            f"{_fmt(kib, 2)} KiB/conn at {(res or {}).get('ready', '?')} connections, "
            f"{_fmt(unanswered, 0)} unanswered",
        )
    if quick:
        for t in out:
            t["detail"] += " (quick run: smaller counts than the target's)"
    return out


def targets_text(items: list[dict[str, Any]]) -> str:
    """The targets as lines: met / NOT met / no figure."""
    lines = ["Targets (issue 16):"]
    for t in items:
        mark = {True: "met    ", False: "NOT met", None: "no data"}[t["met"]]
        lines.append(f"  [{mark}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    """The figures, ratios and health of a saved run as Markdown tables (for docs/benchmarks.md)."""
    names = list(doc["results"])
    keys = list(doc["workloads"])
    others = [n for n in names if n != SUBJECT]
    head = ["workload", "metric", *names, *[f"{SUBJECT} ÷ {o}" for o in others], "better"]
    lines = [
        "| " + " | ".join(head) + " |",
        "| --- | --- |" + " ---: |" * (len(head) - 3) + " --- |",
    ]
    for m in METRICS:
        if m.workload not in keys:
            continue
        cells = []
        for n in names:
            res = doc["results"][n].get(m.workload)
            cells.append(_fmt(value(res, m.key), m.digits) + (" *" if problems(res) else ""))
        for o in others:
            r = doc["ratios"].get(m.workload, {}).get(m.key, {}).get(o) if m.ratio else None
            cells.append(f"**{r:.2f}x**" if r is not None else "—")
        better = "higher" if m.higher_better else "lower"
        lines.append(
            f"| {m.workload.upper()} | {m.label} | " + " | ".join(cells) + f" | {better} |"
        )
    notes = []
    for k in keys:
        for n in names:
            issues = problems(doc["results"][n].get(k))
            if issues:
                notes.append(f"- \\* {k.upper()} {n}: " + "; ".join(issues))
    health = [
        "| workload | server | generator CPU % | server CPU % | of which kernel % "
        "| others on server core % | others on generator core % |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in keys:
        for n in names:
            res = doc["results"][n].get(k, {})
            noise = res.get("noise", {})
            cells = [
                _fmt(value(res, "gen_cpu_pct"), 1),
                _fmt(value(res, "server_cpu_pct"), 1),
                _fmt(value(res, "server_sys_pct"), 1),
                _fmt(noise.get("server_core_pct"), 1),
                _fmt(noise.get("gen_core_pct"), 1),
            ]
            health.append(f"| {k.upper()} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n\n" + "\n".join(health) + "\n"


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1]) as f:
        sys.stdout.write(markdown(json.load(f)))
