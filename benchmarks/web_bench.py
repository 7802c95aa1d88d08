"""`make bench-web`: IRC over WebSocket against relaychat's own TCP, in the same run.

Usage (from the repository root, with the virtualenv's python):

    .venv/bin/python benchmarks/web_bench.py            # about 2 minutes
    .venv/bin/python benchmarks/web_bench.py --quick    # a smoke run

Rules:
1. Each run starts a fresh `relaychat serve` (IRC port and HTTP port) pinned to one core; the C
   generator (benchmarks/loadgen.c, `--ws` for WebSocket) runs pinned to the other. TCP and
   WebSocket runs alternate, so drifting noise on this shared machine hits both.
2. W3 fan-out: 200 members of one channel, 10 senders, window 16: delivered lines per second;
   target WebSocket >= 0.5x TCP. W2 idle: registered idle clients over 127.0.0.2-9; server RSS
   growth per connection; target WebSocket <= 2x TCP.
3. Every run is bounded in time; all traffic stays on 127.0.0.0/8. Output: a table, then JSON
   (also written to benchmarks/results/web.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from bench import LOADGEN, RESULTS, build_loadgen, machine_info, raise_fd_limit, source_state

W3 = "--workload w3 --clients 200 --senders 10 --window 16 --quickack --duration {d}"
W2 = "--workload w2 --clients {n} --settle 2 --setup-timeout 300 --sources 127.0.0.2-127.0.0.9"


def run(ws: bool, gen_args: str, *, server_cpu: int, gen_cpu: int) -> dict[str, Any]:
    """One fresh server, one generator run over TCP or WebSocket; the generator's JSON."""
    http_port = servers.free_port()
    spec = servers.builtin_specs(["--http-port", str(http_port)])["relaychat"]
    srv = servers.start(spec, cpu=server_cpu)
    try:
        port = http_port if ws else srv.port
        args = ["taskset", "-c", str(gen_cpu), str(LOADGEN), "--port", str(port)]
        args += ["--server-pid", str(srv.pid), *gen_args.split(), *(["--ws"] if ws else [])]
        out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        try:
            result: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            result = {"error": f"generator exit {out.returncode}: {out.stderr.strip()[-300:]}"}
    finally:
        srv.stop()
    result["transport"] = "websocket" if ws else "tcp"
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="web_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs, 2,000 idle clients")
    p.add_argument("--rounds", type=int, default=2, help="TCP/WebSocket pairs of W3 runs")
    p.add_argument("--idle-clients", type=int, default=5000)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--gen-cpu", type=int, default=1)
    p.add_argument("--json-out", type=Path, default=RESULTS / "web.json")
    args = p.parse_args(argv)
    raise_fd_limit()
    build_loadgen()
    cpus = {"server_cpu": args.server_cpu, "gen_cpu": args.gen_cpu}
    started = time.time()
    w3 = W3.format(d=2 if args.quick else 10)
    w2 = W2.format(n=2000 if args.quick else args.idle_clients) + " --duration 2"
    w3_runs = []
    for _ in range(1 if args.quick else args.rounds):
        for ws in (False, True):
            w3_runs.append(run(ws, w3, **cpus))
    w2_runs = [run(ws, w2, **cpus) for ws in (False, True)]

    def lines_per_s(transport: str) -> float:
        got = [r.get("delivered_lines_per_s", 0.0) for r in w3_runs if r["transport"] == transport]
        return statistics.median(got) if got else 0.0

    tcp_lps, ws_lps = lines_per_s("tcp"), lines_per_s("websocket")
    rss = {r["transport"]: r.get("rss_per_conn_kib", -1.0) for r in w2_runs}
    summary = {
        "w3_tcp_lines_per_s": round(tcp_lps),
        "w3_ws_lines_per_s": round(ws_lps),
        "w3_ws_over_tcp": round(ws_lps / tcp_lps, 3) if tcp_lps else None,
        "w3_target": ">= 0.5",
        "w2_tcp_rss_per_conn_kib": rss.get("tcp"),
        "w2_ws_rss_per_conn_kib": rss.get("websocket"),
        "w2_ws_over_tcp": round(rss["websocket"] / rss["tcp"], 3)
        if rss.get("tcp", 0) > 0 and rss.get("websocket", 0) > 0
        else None,
        "w2_target": "<= 2.0",
    }
    print(f"{'workload':<34}{'TCP':>14}{'WebSocket':>14}{'ratio':>9}  target")
    print(
        f"{'W3 fan-out, delivered lines/s':<34}{tcp_lps:>14,.0f}{ws_lps:>14,.0f}"
        f"{summary['w3_ws_over_tcp'] or 0:>9.2f}  >= 0.5"
    )
    print(
        f"{'W2 idle, server KiB/connection':<34}{rss.get('tcp', -1):>14.2f}"
        f"{rss.get('websocket', -1):>14.2f}{summary['w2_ws_over_tcp'] or 0:>9.2f}  <= 2.0"
    )
    for r in w3_runs + w2_runs:
        if "error" in r or r.get("errors"):
            problem = r.get("error") or r.get("error_samples")
            print(f"  {r['transport']} {r.get('workload')}: {problem}")
    report = {
        "command": "benchmarks/web_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "source": source_state(),
        "machine": machine_info(),
        "seconds": round(time.time() - started, 1),
        "summary": summary,
        "w3": w3_runs,
        "w2": w2_runs,
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
