"""The cost of durable history: the same workloads with history on, and with it off.

Usage (from the repository root):

    .venv/bin/python benchmarks/history_bench.py            # about 1 minute
    .venv/bin/python benchmarks/history_bench.py --duration 10 --rounds 3 --json out.json
    .venv/bin/python benchmarks/history_bench.py --micro    # the store alone, a few seconds

With history on, the server holds every relayed line until the group commit that stores it has
returned (``server/listeners.py``), so each message pays for a SQLite transaction in the writer
thread, shared by everything relayed in the same loop turn. This measures what that costs:

- ``pair1``: one pair ping-pongs private messages, one in flight: the latency one message gains
  on an idle server (each round trip is two messages, so two commits).
- ``pairs``: 100 pairs at once: latency and round trips per second under concurrency, where one
  commit carries many messages.
- ``fanout``: 200 members, 10 senders as fast as a window of 16 allows: messages per second.
- ``rate``: the same channel at a fixed 1,000 messages/s: latency at a moderate load.

Every run starts a fresh server pinned to one core (``taskset``, when there is one) with a fresh
data directory; the C load generator (``benchmarks/build/loadgen``, built from ``loadgen.c``)
runs pinned to the other. Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "build" / "loadgen"
ROOT = HERE.parent

RATE = ["--rate", "1000", "--quickack"]

#: name -> (loadgen arguments, the figures to report)
WORKLOADS: dict[str, tuple[list[str], list[str]]] = {
    "pair1": (
        ["--workload", "w4", "--clients", "2"],
        ["roundtrips_per_s", "rtt_p50_ms", "rtt_p99_ms"],
    ),
    "pairs": (
        ["--workload", "w4", "--clients", "200"],
        ["roundtrips_per_s", "rtt_p50_ms", "rtt_p99_ms"],
    ),
    "fanout": (
        ["--workload", "w3", "--clients", "200", "--senders", "10", "--window", "16", "--quickack"],
        ["msgs_per_s", "delivered_lines_per_s", "lat_p50_ms", "lat_p99_ms"],
    ),
    "rate": (
        ["--workload", "w3r", "--clients", "200", "--senders", "10", "--window", "16", *RATE],
        ["msgs_per_s", "lat_p50_ms", "lat_p99_ms"],
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def build_loadgen() -> Path:
    """The load generator, compiled from loadgen.c when missing or older than its source."""
    src = HERE / "loadgen.c"
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= src.stat().st_mtime:
        return LOADGEN
    LOADGEN.parent.mkdir(exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-o", str(LOADGEN), str(src)], check=True, timeout=120)
    return LOADGEN


def start_server(history: bool, data: Path, cpu: int | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable, "-m", "relaychat", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--plain-port", "0", "--http-port", "0", "--max-clients", "16000", "--max-per-ip", "0"]
    argv += ["--throttle-connect-per-minute", "0"]
    argv += ["--flood-rate", "0", "--log-level", "WARNING", "--data-dir", str(data)]
    if not history:
        argv.append("--no-history-enabled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    proc = subprocess.Popen(pinned(cpu, argv), cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not listen within 20 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_one(
    name: str, history: bool, duration: float, server_cpu: int | None, gen_cpu: int | None
) -> dict[str, Any]:
    args, _ = WORKLOADS[name]
    with tempfile.TemporaryDirectory(prefix="relaychat-hbench-") as tmp:
        proc, port = start_server(history, Path(tmp) / "data", server_cpu)
        try:
            cmd = [str(LOADGEN), "--port", str(port), "--duration", str(duration), *args]
            out = subprocess.run(
                pinned(gen_cpu, cmd), capture_output=True, timeout=duration + 120, check=False
            )
        finally:
            stop_server(proc)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr.decode(errors='replace')[-500:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        db = Path(tmp) / "data" / "history.db"
        result["history_db_bytes"] = db.stat().st_size if db.exists() else 0
        return result


def micro(rounds: int = 2000) -> dict[str, dict[str, float]]:
    """The store alone: the time one group commit takes, by messages per commit.

    Opens SqliteHistory as the server does (WAL, synchronous=NORMAL, the maintenance thread
    checkpointing), appends ``n`` private messages over 100 conversations, and times
    ``commit_pending``: the time the relayed bytes wait in the writer thread.
    """
    sys.path.insert(0, str(ROOT / "src"))
    from relaychat.store.base import StoredMessage
    from relaychat.store.sqlite import SqliteHistory

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="relaychat-hbench-") as tmp:
        store = SqliteHistory(Path(tmp) / "history.db", max_per_target=10_000)
        try:
            i = 0
            for batch in (1, 10, 100, 1000):
                times: list[float] = []
                for _ in range(max(20, rounds // batch)):
                    for _ in range(batch):
                        i += 1
                        store.append(
                            StoredMessage(
                                msgid=f"{i:x}",
                                time=time.time(),
                                key=f"n{i % 100} peer",
                                source="sender!~user@127.0.0.1",
                                account=None,
                                command="PRIVMSG",
                                target="peer",
                                text=f"message {i} " + "x" * 48,
                            )
                        )
                    start = time.perf_counter()
                    store.commit_pending()
                    times.append(time.perf_counter() - start)
                times.sort()
                out[str(batch)] = {
                    "p50_us": times[len(times) // 2] * 1e6,
                    "p99_us": times[int(len(times) * 0.99)] * 1e6,
                    "per_message_us": statistics.fmean(times) / batch * 1e6,
                }
        finally:
            store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    p.add_argument("--rounds", type=int, default=2, help="runs per workload and mode (median)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--gen-cpu", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write every result here")
    p.add_argument("--micro", action="store_true", help="only time commits of the store alone")
    args = p.parse_args(argv)
    if args.micro:
        print(f"{'messages/commit':>15} {'p50 us':>9} {'p99 us':>9} {'us/message':>11}")
        for batch, fig in micro().items():
            print(
                f"{batch:>15} {fig['p50_us']:>9.0f} {fig['p99_us']:>9.0f}"
                f" {fig['per_message_us']:>11.1f}"
            )
        return 0
    cpus = os.cpu_count() or 1
    server_cpu = args.server_cpu if cpus > 1 else None
    gen_cpu = args.gen_cpu if cpus > 1 else None
    build_loadgen()
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key in keys:
        for rnd in range(args.rounds):
            for mode in ("off", "on"):  # alternate, so drift in the machine's load hits both
                print(f"{key:<7} history {mode:<3} round {rnd + 1} ...", end=" ", flush=True)
                res = run_one(key, mode == "on", args.duration, server_cpu, gen_cpu)
                results.setdefault(key, {}).setdefault(mode, []).append(res)
                print("errors: " + "; ".join(res.get("errors", [])) if res.get("errors") else "ok")
    print()
    print(f"{'workload':<8} {'figure':<22} {'history off':>12} {'history on':>12} {'change':>8}")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for key in keys:
        for figure in WORKLOADS[key][1]:
            off = statistics.median(r[figure] for r in results[key]["off"])
            on = statistics.median(r[figure] for r in results[key]["on"])
            change = (on - off) / off * 100 if off else 0.0
            summary.setdefault(key, {})[figure] = {"off": off, "on": on}
            print(f"{key:<8} {figure:<22} {off:>12.3f} {on:>12.3f} {change:>+7.1f}%")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "runs": results, "duration": args.duration}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
