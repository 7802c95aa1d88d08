"""The servers the benchmark runs side by side, and how to start and stop one.

Rules:
1. Each server is started fresh for each workload, from a command, on 127.0.0.1 and a free port,
   pinned to one core with ``taskset``; its own limits are lifted the way its documentation says,
   so the benchmark measures the server, not its flood protection.
2. A server that dies is reported (exit code and the last lines of its log), never hidden.
3. Nothing here measures anything: :mod:`bench` and the C generator do.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Running",
    "ServerSpec",
    "ServerStartError",
    "builtin_specs",
    "custom_spec",
    "free_port",
    "start",
]

# ngircd's operator for the benchmark clients: OPER then user mode +F lifts its flood limits.
NGIRCD_OPER = ("bench", "bench")


class ServerStartError(RuntimeError):
    """A server did not start listening (it exited, or its port never opened)."""


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server.

    Attributes:
        name: the column heading.
        argv: builds the command from (port, work directory); files it needs go in that directory.
        oper: ``NAME:PASS`` the clients send with OPER after registering, if any.
        umode: user mode the clients set after OPER (``+F`` for ngircd), if any.
        setup_concurrency: connections the generator opens at once while setting a workload up
            (a server with a short listen backlog needs few); the connect storm ignores it.
        available: why the server cannot run here (``""`` when it can).
        version: one line saying which version runs.
        notes: how its limits were lifted, for the report.
    """

    name: str
    argv: Callable[[int, Path], list[str]]
    oper: str | None = None
    umode: str | None = None
    setup_concurrency: int = 200
    available: str = ""
    version: str = ""
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _serve_flags(exe: Path) -> str:
    """The text of ``relaychat serve --help``, to see which flags this version has."""
    try:
        out = subprocess.run(
            [str(exe), "serve", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout


def _relaychat(bin_dir: Path, extra: list[str]) -> ServerSpec:
    exe = bin_dir / "relaychat"
    helptext = _serve_flags(exe) if exe.exists() else ""
    limits = ["--max-clients", "16000", "--max-per-ip", "0", "--flood-rate", "0"]
    if "--throttle-connect-per-minute" in helptext:  # thousands of clients from one address
        limits += ["--throttle-connect-per-minute", "0"]
    # Everything else as a user runs it, except: quiet logs, and (when this version has them)
    # a fresh data directory per run and no second listener on a fixed port.
    optional = []
    if "--plain-port" in helptext:
        optional += ["--plain-port", "0"]
    if "--http-port" in helptext:
        optional += ["--http-port", "0"]
    shown = ["relaychat", "serve", *limits, "--log-level", "WARNING", *optional]
    if "--data-dir" in helptext:
        shown += ["--data-dir", "<fresh scratch dir>"]

    def argv(port: int, workdir: Path) -> list[str]:
        cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), *limits]
        cmd += ["--log-level", "WARNING", *optional]
        if "--data-dir" in helptext:
            (workdir / "data").mkdir(exist_ok=True)
            cmd += ["--data-dir", str(workdir / "data")]
        return [*cmd, *extra]

    return ServerSpec(
        name="relaychat",
        argv=argv,
        available="" if exe.exists() else f"{exe} not found (run make venv)",
        version=_run_version([str(exe), "--version"]) if exe.exists() else "",
        notes=[shlex.join(shown + extra)],
    )


_NGIRCD_CONF = """\
# Written by benchmarks/servers.py for one benchmark run; thrown away afterwards.
[Global]
\tName = bench.ngircd.test
\tInfo = relaychat benchmark
\tAdminInfo1 = benchmark
\tAdminInfo2 = loopback
\tAdminEMail = bench@localhost
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = "benchmark"
\tPidFile = {workdir}/ngircd.pid
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxNickLength = 16
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
\tIncludeDir = {workdir}/conf.d
[Operator]
\tName = {oper_name}
\tPassword = {oper_pass}
"""


def _ngircd() -> ServerSpec:
    sbin = Path("/usr/sbin/ngircd")
    exe = shutil.which("ngircd") or (str(sbin) if sbin.exists() else "")

    def argv(port: int, workdir: Path) -> list[str]:
        (workdir / "conf.d").mkdir(exist_ok=True)
        conf = workdir / "ngircd.conf"
        conf.write_text(
            _NGIRCD_CONF.format(
                port=port,
                workdir=workdir,
                oper_name=NGIRCD_OPER[0],
                oper_pass=NGIRCD_OPER[1],
            )
        )
        # ngircd drops root for "nobody": let it read its config and write its pid file.
        os.chmod(workdir, 0o777)
        os.chmod(conf, 0o644)
        return [exe, "--nodaemon", "--config", str(conf)]

    return ServerSpec(
        name="ngircd",
        argv=argv,
        oper=f"{NGIRCD_OPER[0]}:{NGIRCD_OPER[1]}",
        umode="+F",
        # ngircd listens with a backlog of 10: more connects at once overflow it.
        setup_concurrency=8,
        available="" if exe else "ngircd not installed (apt-get install ngircd)",
        version=_run_version([exe, "--version"]) if exe else "",
        notes=[
            "throwaway config: MaxConnections = 0, MaxConnectionsIP = 0, MaxJoins = 0, "
            "MaxPenaltyTime = 0 (no penalties), PingTimeout/PongTimeout = 600, DNS/Ident/PAM = no",
            "every client sends OPER bench bench and MODE <nick> +F (ngircd: relaxed flood "
            "protection, no throttling) before the workload",
            "listen backlog is fixed at 10 in ngircd's source: no config raises it",
        ],
    )


def _miniircd(bin_dir: Path) -> ServerSpec:
    exe = bin_dir / "miniircd"
    found = str(exe) if exe.exists() else (shutil.which("miniircd") or "")

    def argv(port: int, _workdir: Path) -> list[str]:
        cmd = [found, "--listen", "127.0.0.1", "--ports", str(port)]
        if os.geteuid() == 0:
            # miniircd refuses to run as root without --setuid; it binds, then drops to nobody.
            cmd += ["--setuid", "nobody"]
        return cmd

    return ServerSpec(
        name="miniircd",
        argv=argv,
        # miniircd listens with a backlog of 5.
        setup_concurrency=4,
        available="" if found else "miniircd not installed (pip install miniircd)",
        version=("miniircd " + _run_version([found, "--version"])) if found else "",
        notes=[
            "miniircd has no flood limits, sendq or connection limits to lift (no flags exist)",
            "its select() loop cannot watch file descriptors >= 1024 (FD_SETSIZE), so it cannot "
            "hold more than about 1,000 clients; its listen backlog is fixed at 5",
        ],
    )


def builtin_specs(relaychat_args: list[str]) -> dict[str, ServerSpec]:
    """relaychat, ngircd and miniircd, keyed by name."""
    bin_dir = Path(sys.executable).parent
    specs = [_relaychat(bin_dir, relaychat_args), _ngircd(), _miniircd(bin_dir)]
    return {s.name: s for s in specs}


def custom_spec(text: str, *, oper: str | None, umode: str | None, concurrency: int) -> ServerSpec:
    """A server given as ``NAME=COMMAND``; ``{port}`` and ``{dir}`` in COMMAND are filled in.

    Raises:
        ValueError: the text has no ``=`` or the command has no ``{port}``.
    """
    name, sep, command = text.partition("=")
    if not sep or not name or "{port}" not in command:
        raise ValueError(f"--server wants NAME=COMMAND with {{port}} in it, got {text!r}")
    words = shlex.split(command)

    def argv(port: int, workdir: Path) -> list[str]:
        return [w.replace("{port}", str(port)).replace("{dir}", str(workdir)) for w in words]

    return ServerSpec(
        name=name,
        argv=argv,
        oper=oper,
        umode=umode,
        setup_concurrency=concurrency,
        version=command,
        notes=[f"started as: {command}"],
    )


class Running:
    """A started server: its pid, port, log, and a bounded stop."""

    def __init__(self, spec: ServerSpec, proc: subprocess.Popen[bytes], port: int, workdir: Path):
        self.spec = spec
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.log = workdir / "server.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's output (stdout and stderr together)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; remove the work directory.

        Returns:
            The exit code when the server had already exited before the stop (it died), else None.
        """
        died = self.proc.poll()
        if died is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return died


def start(spec: ServerSpec, *, cpu: int, timeout: float = 20.0) -> Running:
    """Start ``spec`` pinned to ``cpu`` on a free port; return once the port accepts.

    Raises:
        ServerStartError: it exited, or did not listen within ``timeout`` seconds.
    """
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
    argv = ["taskset", "-c", str(cpu), *spec.argv(port, workdir)]
    with open(workdir / "server.log", "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    running = Running(spec, proc, port, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running.alive():
            tail = running.log_tail()
            running.stop()
            raise ServerStartError(f"{spec.name} exited with code {proc.returncode}: {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        # Let it finish its start-up log lines before the load begins.
        time.sleep(0.3)
        return running
    running.stop()
    raise ServerStartError(f"{spec.name} did not listen on port {port} within {timeout:.0f} s")
