"""A TCP link with a fixed delay (delaylink.c beside this file), built and run for the study.

    link = DelayLink(target_port=5432, one_way_ms=0.5).start()   # a 1 ms round trip
    ... connect to 127.0.0.1:link.port ...
    link.stop()

The kernel's netem qdisc would be the usual tool, but it needs root and a kernel built with
sch_netem (CONFIG_NET_SCH_NETEM), which many virtual machines and containers lack; the delay
proxy needs neither, only a C compiler. Its own CPU is reported apart from the servers'.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "delaylink.c"


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def build() -> Path:
    """The compiled proxy, cached by the source's hash in the temp directory."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) to build example/delaylink.c")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"delaylink-{digest}"
    if not binary.exists():
        partial = binary.with_name(f"{binary.name}.{os.getpid()}")
        subprocess.run([cc, "-O2", "-o", str(partial), str(SOURCE)], check=True)
        partial.replace(binary)
    return binary


class DelayLink:
    def __init__(self, target_port: int, one_way_ms: float, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.one_way_ms = one_way_ms
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> DelayLink:
        argv = [str(build()), "0", self.target[0], str(self.target[1])]
        argv.append(str(round(self.one_way_ms * 1000)))
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"delaylink did not start (exit {self.process.returncode})")
        self.port = int(line)
        return self

    def cpu_seconds(self) -> float:
        """The proxy's CPU time so far (user + system)."""
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> DelayLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its living descendants (a server's workers)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += process_cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return total


def postgresql_round_trip_ms(port: int, host: str = "127.0.0.1", queries: int = 200) -> float:
    """The median time of ``SELECT 1`` on a psycopg connection to ``port``."""
    import psycopg

    user = os.environ.get("PGUSER", "postgres")
    with psycopg.connect(host=host, port=port, user=user, dbname="postgres") as conn:
        conn.execute("SELECT 1")
        times = []
        for _ in range(queries):
            start = time.perf_counter()
            conn.execute("SELECT 1").fetchall()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000
