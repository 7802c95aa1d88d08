"""`make bench`: run each workload against each server, side by side, and report ratios.

Usage (from the repository root, with the virtualenv's python):

    .venv/bin/python benchmarks/bench.py                      # the full run (about 10 minutes)
    .venv/bin/python benchmarks/bench.py --quick              # a smoke run (about 1 minute)
    .venv/bin/python benchmarks/bench.py --workloads w3,w4 --servers relaychat,ngircd
    .venv/bin/python benchmarks/bench.py --server 'ergo=ergo run --conf {dir}/ircd.yaml' ...
    .venv/bin/python benchmarks/bench.py --profile benchmarks/results/profile --servers relaychat
    .venv/bin/python benchmarks/bench.py --workloads attack --servers relaychat   # issue 17 only

Rules:
1. Every server is started fresh for every workload, pinned to one core; the C generator
   (benchmarks/loadgen.c) runs pinned to the other, and reports its own CPU time, so a saturated
   generator shows. Every run is bounded in time; all traffic stays on 127.0.0.0/8.
2. The noise from other processes on each core is measured (/proc/stat) and reported beside the
   figures, because this machine is shared.
3. The output is a table, the targets of issue 16, then the whole result as JSON (also written to
   benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attack_bench
import explain
import report
import servers
from profile_summary import summarize

__all__ = ["WORKLOADS", "Workload", "main"]

HERE = Path(__file__).resolve().parent
LOADGEN_SRC = HERE / "loadgen.c"
LOADGEN = HERE / "build" / "loadgen"
RESULTS = HERE / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Workload:
    """One workload: the generator's arguments for the full and the quick run."""

    key: str
    title: str
    full: str  # generator arguments, split on spaces
    quick: str
    sources: bool = False  # spread clients over 127.0.0.2-127.0.0.9
    gen: str = ""  # the generator's workload, when it differs from the key
    # Clients send messages fast: lift the server's flood limits first (OPER + umode for ngircd).
    flood: bool = True
    # "loadgen" (the C generator, every server) or "attack" (attack_bench.py, relaychat only,
    # with its default limits): full/quick are then seconds per attack.
    driver: str = "loadgen"


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in [
        Workload(
            "w1",
            "connect storm: clients connect and register at once",
            "--clients 2000 --setup-timeout 60",
            "--clients 500 --setup-timeout 20",
            flood=False,
        ),
        Workload(
            "w2",
            "idle hold: registered idle clients over 127.0.0.2-9, one PING each",
            "--clients 10000 --duration 5 --settle 2 --setup-timeout 300",
            "--clients 2000 --duration 2 --settle 1 --setup-timeout 60",
            sources=True,
            flood=False,
        ),
        Workload(
            "w3",
            "fan-out: 200 members, 10 senders of 64-byte PRIVMSGs, window 16 per sender",
            "--clients 200 --senders 10 --window 16 --duration 10 --quickack",
            "--clients 200 --senders 10 --window 16 --duration 2 --quickack",
        ),
        Workload(
            "w3r",
            "fan-out at a fixed 1,000 messages/s: latency",
            "--clients 200 --senders 10 --window 16 --rate 1000 --duration 10 --quickack",
            "--clients 200 --senders 10 --window 16 --rate 1000 --duration 2 --quickack",
        ),
        Workload(
            "w3d",
            "W3 with the kernel's delayed ACKs (clients as ordinary clients are): shows Nagle",
            "--clients 200 --senders 10 --window 16 --duration 10",
            "--clients 200 --senders 10 --window 16 --duration 2",
            gen="w3",
        ),
        Workload(
            "w4",
            "pairs: private-message ping-pong, one in flight per pair",
            "--clients 1000 --duration 10",
            "--clients 200 --duration 2",
        ),
        Workload(
            "attack",
            "issue 17: an idle bystander's PING while one attacker works inside the default "
            "limits (relaychat only; attack_bench.py)",
            "10",
            "3",
            driver="attack",
        ),
    ]
}


# --- measuring the machine -----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, kernel, Python, load average: what the report's header shows."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def source_state() -> str:
    """The commit relaychat runs from, and whether src/ has uncommitted changes (read-only git)."""
    root = HERE.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if not head:
        return "unknown"
    return f"commit {head}" + (
        f" + {len(dirty.splitlines())} uncommitted files in src/" if dirty else ""
    )


def core_busy_s(cpu: int) -> float:
    """Seconds one core spent in user, nice and system time since boot (not irq/softirq)."""
    prefix = f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            f = line.split()
            return (int(f[1]) + int(f[2]) + int(f[3])) / CLK_TCK
    return 0.0


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def build_loadgen(force: bool = False) -> None:
    """Compile benchmarks/loadgen.c with gcc when the binary is missing or older than the source.

    Raises:
        SystemExit: gcc is missing or the build failed.
    """
    if not force and LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(LOADGEN), str(LOADGEN_SRC)]
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        msg = f"bench: cannot build the load generator ({shlex.join(cmd)}): {exc}"
        raise SystemExit(msg) from None


def _stop_spy(spy: subprocess.Popen[bytes]) -> None:
    """Stop py-spy the way it writes its output: SIGINT, then wait (bounded)."""
    with contextlib.suppress(ProcessLookupError):
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


# --- one run -------------------------------------------------------------------------------------


def run_one(
    spec: servers.ServerSpec,
    wl: Workload,
    *,
    quick: bool,
    server_cpu: int,
    gen_cpu: int,
    profile_dir: Path | None,
    verbose: bool,
) -> dict[str, Any]:
    """Start the server, run the generator against it, stop the server; return the result."""
    result: dict[str, Any] = {"server": spec.name, "workload": wl.key}
    try:
        srv = servers.start(spec, cpu=server_cpu)
    except servers.ServerStartError as exc:
        result["error"] = str(exc)
        return result
    try:
        _drive(srv, wl, result, quick=quick, gen_cpu=gen_cpu, server_cpu=server_cpu,
               profile_dir=profile_dir, verbose=verbose)  # fmt: skip
    finally:
        alive = srv.alive()
        tail = srv.log_tail()
        died = srv.stop()
    if not alive:
        result["server_died"] = f"exit code {died}: {tail}"
    return result


def _drive(
    srv: servers.Running,
    wl: Workload,
    result: dict[str, Any],
    *,
    quick: bool,
    server_cpu: int,
    gen_cpu: int,
    profile_dir: Path | None,
    verbose: bool,
) -> None:
    """Run the generator (and py-spy when profiling) against a started server; fill ``result``."""
    spec = srv.spec
    args = [
        "taskset", "-c", str(gen_cpu), str(LOADGEN),
        "--workload", wl.gen or wl.key,
        "--port", str(srv.port),
        "--server-pid", str(srv.pid),
        "--concurrency", str(spec.setup_concurrency),
        *(wl.quick if quick else wl.full).split(),
    ]  # fmt: skip
    if wl.sources:
        args += ["--sources", "127.0.0.2-127.0.0.9"]
    if spec.oper and wl.flood:
        args += ["--oper", spec.oper]
    if spec.umode and wl.flood:
        args += ["--umode", spec.umode]
    if verbose:
        args.append("--verbose")
    spy: subprocess.Popen[bytes] | None = None
    spy_out: Path | None = None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        spy_out = profile_dir / f"{spec.name}-{wl.key}.txt"
        spy = subprocess.Popen(
            ["taskset", "-c", str(gen_cpu), str(Path(sys.executable).parent / "py-spy"),
             "record", "--pid", str(srv.pid), "--rate", "250", "--nonblocking",
             "--format", "raw", "--output", str(spy_out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)
    try:
        busy0 = (core_busy_s(server_cpu), core_busy_s(gen_cpu))
        srv0 = proc_cpu_s(srv.pid)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        if verbose:
            print("  $", shlex.join(args), file=sys.stderr)
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
            stdout, stderr, code = out.stdout, out.stderr, out.returncode
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout if isinstance(exc.stdout, str) else ""
            stderr, code = "generator timed out", -1
        wall = time.monotonic() - t0
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen_s = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        srv_s = proc_cpu_s(srv.pid) - srv0
        busy1 = (core_busy_s(server_cpu), core_busy_s(gen_cpu))
    finally:
        if spy is not None:
            _stop_spy(spy)
    if verbose and stderr:
        print(stderr.rstrip(), file=sys.stderr)
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        result.update(json.loads(line))
    except json.JSONDecodeError:
        result["error"] = f"generator exit {code}: {stderr.strip()[-300:]}"
    result["run_wall_s"] = round(wall, 2)
    result["noise"] = {
        # CPU used on each core by anything other than the server / the generator, as % of a core
        "server_core_pct": round(max(0.0, busy1[0] - busy0[0] - srv_s) * 100 / wall, 1),
        "gen_core_pct": round(max(0.0, busy1[1] - busy0[1] - gen_s) * 100 / wall, 1),
    }
    if spy_out is not None and spy_out.exists():
        summary = summarize(spy_out.read_text(), top=25)
        (spy_out.with_suffix(".summary.txt")).write_text(summary)
        result["profile"] = str(spy_out)


def _explain(
    doc: dict[str, Any], specs: list[servers.ServerSpec], args: argparse.Namespace
) -> dict[str, Any]:
    """For each workload with a target not met: profile relaychat on it in a separate run and
    print what is left (benchmarks/explain.py). Returns the shares by workload, for the JSON."""
    subject = next((s for s in specs if s.name == report.SUBJECT), None)
    unmet: dict[str, list[dict[str, Any]]] = {}
    for t in doc["targets"]:
        if t["met"] is False:
            unmet.setdefault(t["target"].split()[0].lower(), []).append(t)
    spy = Path(sys.executable).parent / "py-spy"
    if subject is None or not unmet:
        return {}
    if not spy.exists():
        print("bench: py-spy is missing: no profile of the targets not met", file=sys.stderr)
        return {}
    out: dict[str, Any] = {}
    for key, items in unmet.items():
        # A workload over in a fraction of a second (W1's storm) gives py-spy too few samples:
        # it is run a few times and the profiles added up.
        runs = explain.REPEAT.get(key, 1)
        print(f"  {key:<4} {subject.name:<10} ... profiling what is left ({runs}x)", flush=True)
        raws: list[str] = []
        res: dict[str, Any] = {}
        for _ in range(runs):
            res = run_one(
                subject,
                WORKLOADS[key],
                quick=False,
                server_cpu=args.server_cpu,
                gen_cpu=args.gen_cpu,
                profile_dir=RESULTS / "explain",
                verbose=args.verbose,
            )
            if res.get("profile"):
                raws.append(Path(res["profile"]).read_text())
        if not raws:
            print(f"bench: no profile of {key.upper()}: {report.one_line(res)}", file=sys.stderr)
            continue
        raw = "\n".join(raws)
        path = str(RESULTS / "explain" / f"{subject.name}-{key}.txt")
        Path(path).write_text(raw)
        Path(path).with_suffix(".summary.txt").write_text(summarize(raw, top=25))
        shares = explain.split(raw)
        measured = doc["results"][subject.name].get(key)
        base = doc["results"].get(args.baseline, {}).get(key)
        cpu = report.value(measured, report.CPU_PER_MSG)
        base_cpu = report.value(base, report.CPU_PER_MSG)
        print()
        print(
            explain.explain_text(
                key,
                shares,
                cpu_us=cpu,
                base_cpu_us=base_cpu,
                baseline=args.baseline,
                unmet=items,
                profile_path=str(Path(path).with_suffix(".summary.txt")),
                rate=report.value(measured, "reg_per_s") if key == "w1" else None,
                goal=report.W1_GOAL if key == "w1" else None,
                samples=explain.sample_count(raw),
            )
        )
        out[key] = {"shares": shares, "profile": path}
    print()
    return out


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="relaychat's benchmark: workloads W1-W4 against relaychat, ngircd and "
        "miniircd side by side on loopback; prints a table, the targets and JSON.",
    )
    p.add_argument("--quick", action="store_true", help="a short smoke run (small counts, 2 s)")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated, of " + ",".join(WORKLOADS) + " (default: all)",
    )
    p.add_argument(
        "--servers",
        default="relaychat,ngircd,miniircd",
        help="comma-separated built-in servers to run (custom ones from --server are added)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another server, started from COMMAND; {port} and {dir} (a scratch directory) are "
        "filled in; may repeat",
    )
    p.add_argument("--server-oper", default=None, help="NAME:PASS for OPER on --server servers")
    p.add_argument("--server-umode", default=None, help="user mode to set on --server servers")
    p.add_argument(
        "--server-concurrency", type=int, default=8, help="setup connections at once, --server"
    )
    p.add_argument(
        "--relaychat-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `relaychat serve` (may repeat)",
    )
    p.add_argument("--baseline", default="ngircd", help="the server the targets compare with")
    p.add_argument("--server-cpu", type=int, default=0, help="core the servers are pinned to")
    p.add_argument("--gen-cpu", type=int, default=1, help="core the generator is pinned to")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record relaychat with py-spy during each workload; stacks and summaries go in DIR",
    )
    p.add_argument(
        "--no-explain",
        action="store_true",
        help="for a target not met, do not profile that workload again to show what is left",
    )
    p.add_argument("--json-out", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--verbose", action="store_true", help="show generator commands and stderr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "benchmarks/bench.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        print(f"bench: unknown workload(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    builtin = servers.builtin_specs(args.relaychat_arg)
    specs: list[servers.ServerSpec] = []
    for name in [n.strip() for n in args.servers.split(",") if n.strip()]:
        if name not in builtin:
            print(f"bench: unknown server {name!r} (use --server NAME=COMMAND)", file=sys.stderr)
            return 2
        specs.append(builtin[name])
    for text in args.server:
        try:
            specs.append(
                servers.custom_spec(
                    text,
                    oper=args.server_oper,
                    umode=args.server_umode,
                    concurrency=args.server_concurrency,
                )
            )
        except ValueError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    skipped = {s.name: s.available for s in specs if s.available}
    specs = [s for s in specs if not s.available]
    for name, why in skipped.items():
        print(f"bench: skipping {name}: {why}", file=sys.stderr)
    if not specs:
        print("bench: no server to run", file=sys.stderr)
        return 2
    ncpu = os.cpu_count() or 1
    if max(args.server_cpu, args.gen_cpu) >= ncpu or args.server_cpu == args.gen_cpu:
        print(f"bench: need two different cores below {ncpu}", file=sys.stderr)
        return 2

    build_loadgen()
    fd_limit = raise_fd_limit()
    # The driver waits on the generator's core, leaving the server's core to the server.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {args.gen_cpu})
    info = machine_info()
    info["fd_limit"] = fd_limit
    info["server_cpu"] = args.server_cpu
    info["gen_cpu"] = args.gen_cpu
    info["source"] = source_state()
    print(report.header(info, command, quick=args.quick), flush=True)

    results: dict[str, dict[str, Any]] = {s.name: {} for s in specs}
    started = time.monotonic()
    attack: list[dict[str, Any]] | None = None
    if "attack" in keys:
        keys = [k for k in keys if k != "attack"]
        if any(s.name == "relaychat" for s in specs):
            wl = WORKLOADS["attack"]
            attack = attack_bench.run_attacks(
                list(attack_bench.ATTACKS),
                seconds=float(wl.quick if args.quick else wl.full),
                server_cpu=args.server_cpu,
                client_cpu=args.gen_cpu,
            )
        else:
            print("bench: the attack workload runs against relaychat only", file=sys.stderr)
    for key in keys:
        wl = WORKLOADS[key]
        for spec in specs:
            print(f"  {key:<4} {spec.name:<10} ...", end=" ", flush=True)
            profile = args.profile if spec.name == "relaychat" else None
            res = run_one(
                spec,
                wl,
                quick=args.quick,
                server_cpu=args.server_cpu,
                gen_cpu=args.gen_cpu,
                profile_dir=profile,
                verbose=args.verbose,
            )
            results[spec.name][key] = res
            print(report.one_line(res), flush=True)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    info["total_wall_s"] = round(time.monotonic() - started, 1)

    names = [s.name for s in specs]
    doc: dict[str, Any] = {
        "command": command,
        "quick": args.quick,
        "machine": info,
        "servers": {s.name: {"version": s.version, "notes": s.notes} for s in specs},
        "skipped": skipped,
        "workloads": {k: WORKLOADS[k].title for k in keys},
        "results": results,
    }
    doc["ratios"] = report.ratios(results, names, keys)
    doc["targets"] = report.targets(results, keys, baseline=args.baseline, quick=args.quick)
    if keys:
        print()
        print(report.table(doc, names, keys))
        print()
        print(report.health_table(doc, names, keys))
        print()
        print(report.targets_text(doc["targets"]))
        print()
    if not args.quick and not args.no_explain:
        doc["explained"] = _explain(doc, specs, args)
    if attack is not None:
        doc["attack"] = attack
        print("Attack workload (issue 17): the bystander's PING while one attacker works")
        print(attack_bench.table(attack))
        print()
    print("JSON:")
    text = json.dumps(doc, indent=1, sort_keys=False)
    print(text)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(text + "\n")
    print(f"\n(written to {args.json_out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
