"""`make bench-cluster`: relaychat as one process against two nodes of a cluster on NATS JetStream.

Usage (from the repository root, with the virtualenv's python):

    .venv/bin/python benchmarks/cluster_bench.py            # about 3 minutes
    .venv/bin/python benchmarks/cluster_bench.py --quick    # a smoke run

Rules:
1. Each run starts fresh servers: one `relaychat serve`, or two nodes (`--cluster`) and, once
   per benchmark, one `nats-server -js` with a scratch store. The relaychat processes are pinned
   to one core (the two nodes share it, so their CPU per line compares with the single
   process's on the same core), the C generator (benchmarks/loadgen.c) to the other, and NATS
   by default with the generator (`--nats-cpu`): it is infrastructure, measured apart, as it
   runs on machines of its own in a deployment. Single and cluster runs alternate, so drifting
   noise on this shared machine hits both.
2. Workloads: W3 (200 members of one channel, 10 senders, window 16: saturation), W3r (the same
   at a fixed 3,000 messages/s: equal load for both, the fair CPU comparison) and W4 (private
   ping-pong pairs). In the cluster runs the generator spreads the clients over the two nodes
   (`--port2`): half the members and senders on each; every W4 pair has one user on each node.
3. Reported per workload: delivered lines/s, the p99 latency (W3) or round trip (W4), and CPU
   time per delivered line: the relaychat processes (together) and NATS separately. The targets
   (issue 13): a clustered node spends at most 1.5x the CPU per delivered line of a single node,
   and the cross-node W4 p99 is at most 2x the single-node p99.
4. Every run is bounded in time; all traffic stays on 127.0.0.0/8. Output: a table, the
   projection for N cores, then JSON (also written to benchmarks/results/cluster.json).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from bench import LOADGEN, RESULTS, build_loadgen, machine_info, raise_fd_limit, source_state

WORKLOADS = {
    "w3": "--workload w3 --clients 200 --senders 10 --window 16 --quickack --duration {d}",
    "w3r": "--workload w3r --clients 200 --senders 10 --window 16 --rate 3000 --quickack "
    "--duration {d}",
    "w4": "--workload w4 --clients 200 --duration {d}",
}
TITLES = {
    "w3": "W3 fan-out, saturated",
    "w3r": "W3r fan-out, 3,000 msg/s",
    "w4": "W4 private pairs",
}


def nats_binary() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else ""
    )
    if not found:
        raise SystemExit("cluster bench: nats-server is needed (apt-get install nats-server)")
    return found


class Nats:
    """A scratch `nats-server -js` pinned to ``cpu``."""

    def __init__(self, cpu: int) -> None:
        self.port = servers.free_port()
        self.store = tempfile.mkdtemp(prefix="bench-nats-")
        args = ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store]
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), nats_binary(), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("cluster bench: nats-server did not start")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.store, ignore_errors=True)


def _generator(args: list[str], cpu: int) -> dict[str, Any]:
    cmd = ["taskset", "-c", str(cpu), str(LOADGEN), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    try:
        result: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        result = {"error": f"generator exit {out.returncode}: {out.stderr.strip()[-300:]}"}
    return result


def run_single(workload: str, gen_args: str, *, server_cpu: int, gen_cpu: int) -> dict[str, Any]:
    spec = servers.builtin_specs([])["relaychat"]
    srv = servers.start(spec, cpu=server_cpu)
    try:
        args = ["--port", str(srv.port), "--server-pid", str(srv.pid), *gen_args.split()]
        result = _generator(args, gen_cpu)
    finally:
        srv.stop()
    return _summarise(workload, "single", result, nats_cpu=0.0, extra_nodes=0.0)


def run_cluster(
    workload: str, gen_args: str, nats: Nats, *, server_cpu: int, gen_cpu: int
) -> dict[str, Any]:
    prefix = "b" + secrets.token_hex(4)
    nodes = []
    try:
        for name in ("ba", "bb"):
            extra = ["--cluster", nats.url, "--cluster-prefix", prefix]
            extra += ["--cluster-node-name", name, "--server-name", f"{name}.bench"]
            nodes.append(servers.start(servers.builtin_specs(extra)["relaychat"], cpu=server_cpu))
        a, b = nodes
        args = ["--port", str(a.port), "--port2", str(b.port), "--server-pid", str(a.pid)]
        args += ["--extra-pid", str(b.pid), "--extra-pid", str(nats.proc.pid), *gen_args.split()]
        result = _generator(args, gen_cpu)
    finally:
        for node in nodes:
            node.stop()
    extra = result.get("extra_cpu_s") or [0.0, 0.0]
    return _summarise(workload, "cluster", result, nats_cpu=extra[1], extra_nodes=extra[0])


def _summarise(
    workload: str, mode: str, r: dict[str, Any], *, nats_cpu: float, extra_nodes: float
) -> dict[str, Any]:
    if "error" in r:
        return {"workload": workload, "mode": mode, "error": r["error"]}
    if workload == "w4":
        lines = 2 * int(r.get("roundtrips", 0))  # each round trip is two delivered messages
        p99 = r.get("rtt_p99_ms")
        per_s = 2 * float(r.get("roundtrips_per_s", 0.0))
    else:
        lines = int(r.get("delivered_in_window", 0))
        p99 = r.get("lat_p99_ms")
        per_s = float(r.get("delivered_lines_per_s", 0.0))
    server_cpu = float(r.get("server_cpu_s", 0.0)) + extra_nodes
    return {
        "workload": workload,
        "mode": mode,
        "lines_per_s": round(per_s),
        "p99_ms": p99,
        "p50_ms": r.get("rtt_p50_ms") if workload == "w4" else r.get("lat_p50_ms"),
        "server_cpu_s": round(server_cpu, 3),
        "nats_cpu_s": round(nats_cpu, 3),
        "cpu_us_per_line": round(1e6 * server_cpu / lines, 3) if lines else None,
        "nats_us_per_line": round(1e6 * nats_cpu / lines, 3) if lines else None,
        "lost": r.get("lost", r.get("unanswered", 0)),
        "errors": r.get("errors", 0),
        "raw": r,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cluster_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2-second runs, one round")
    p.add_argument("--rounds", type=int, default=3, help="single/cluster pairs per workload")
    p.add_argument("--workloads", default="w3,w3r,w4")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--gen-cpu", type=int, default=1)
    p.add_argument("--nats-cpu", type=int, default=None, help="NATS's core (default: --gen-cpu)")
    p.add_argument("--json-out", type=Path, default=RESULTS / "cluster.json")
    args = p.parse_args(argv)
    raise_fd_limit()
    build_loadgen()
    cpus = {"server_cpu": args.server_cpu, "gen_cpu": args.gen_cpu}
    started = time.time()
    duration = 2 if args.quick else 8
    rounds = 1 if args.quick else args.rounds
    nats = Nats(args.gen_cpu if args.nats_cpu is None else args.nats_cpu)
    runs: list[dict[str, Any]] = []
    try:
        for workload in args.workloads.split(","):
            gen_args = WORKLOADS[workload].format(d=duration)
            for _ in range(rounds):
                runs.append(run_single(workload, gen_args, **cpus))
                runs.append(run_cluster(workload, gen_args, nats, **cpus))
    finally:
        nats.stop()
    summary: dict[str, Any] = {}
    print(
        f"{'workload':<26}{'mode':<9}{'lines/s':>11}{'p99 ms':>9}"
        f"{'CPU us/line':>13}{'NATS us/line':>14}"
    )
    for workload in args.workloads.split(","):
        row: dict[str, Any] = {}
        for mode in ("single", "cluster"):
            got = [r for r in runs if r["workload"] == workload and r["mode"] == mode]
            stats = {
                k: _median(got, k)
                for k in ("lines_per_s", "p99_ms", "cpu_us_per_line", "nats_us_per_line")
            }
            row[mode] = stats
            print(
                f"{TITLES[workload]:<26}{mode:<9}{stats['lines_per_s'] or 0:>11,.0f}"
                f"{stats['p99_ms'] or 0:>9.1f}{stats['cpu_us_per_line'] or 0:>13.3f}"
                f"{stats['nats_us_per_line'] or 0:>14.3f}"
            )
        single, cluster = row["single"], row["cluster"]
        if single["cpu_us_per_line"] and cluster["cpu_us_per_line"]:
            row["cpu_ratio"] = round(cluster["cpu_us_per_line"] / single["cpu_us_per_line"], 2)
        if single["p99_ms"] and cluster["p99_ms"]:
            row["p99_ratio"] = round(cluster["p99_ms"] / single["p99_ms"], 2)
        summary[workload] = row
    print()
    for workload, row in summary.items():
        print(
            f"{TITLES[workload]:<26}node CPU/line cluster/single {row.get('cpu_ratio', '-')}"
            f" (target <= 1.5); p99 cluster/single {row.get('p99_ratio', '-')}"
            + (" (target <= 2)" if workload == "w4" else "")
        )
    for workload in ("w3r", "w4"):
        row = summary.get(workload)
        if not row or not row["cluster"]["cpu_us_per_line"] or not row["single"]["cpu_us_per_line"]:
            continue
        node, nats_cost = row["cluster"]["cpu_us_per_line"], row["cluster"]["nats_us_per_line"] or 0
        single = row["single"]["cpu_us_per_line"]
        print(
            f"projection ({TITLES[workload]}): one core serves {1e6 / single:,.0f} lines/s alone; "
            f"N nodes on N cores about N x {1e6 / node:,.0f} lines/s, plus NATS needing "
            f"{nats_cost / node:.2f} core per node's worth of traffic"
        )
    errors = [r for r in runs if "error" in r or r.get("errors")]
    for r in errors:
        print(f"  {r['workload']} {r['mode']}: {r.get('error') or r['raw'].get('error_samples')}")
    given = sys.argv[1:] if argv is None else argv
    report = {
        "command": "benchmarks/cluster_bench.py " + " ".join(given),
        "source": source_state(),
        "machine": machine_info(),
        "seconds": round(time.time() - started, 1),
        "summary": summary,
        "runs": [{k: v for k, v in r.items() if k != "raw"} | {"raw": r.get("raw")} for r in runs],
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
