"""The load study's delayed link (example/link.py, example/delaylink.c): real sockets on
127.0.0.1, an echo server in a thread, the proxy in its own process."""

import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "example"))

import link

pytestmark = pytest.mark.skipif(
    link.compiler() is None and not os.environ.get("CI"),
    reason="no C compiler (cc or gcc) to build example/delaylink.c",
)


class Echo:
    """A TCP echo server: each connection's bytes back, then its close."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
        self.closed.set()


@pytest.fixture
def echo():
    server = Echo()
    yield server
    server.listener.close()


def _round_trip(port: int, times: int = 50) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        best = float("inf")
        for _ in range(times):
            start = time.perf_counter()
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
            best = min(best, time.perf_counter() - start)
    return best * 1000


def test_a_round_trip_takes_two_delays_more(echo):
    direct = _round_trip(echo.port)
    with link.DelayLink(echo.port, one_way_ms=0.5) as delayed:
        through = _round_trip(delayed.port)
    # Never faster than the delays; the upper bound is loose for a busy shared machine.
    assert through >= direct + 1.0 - 0.05, (direct, through)
    assert through < direct + 20, (direct, through)


def test_bytes_arrive_whole_and_in_order_and_the_close_travels(echo):
    payload = os.urandom(3 * 1024 * 1024)
    with link.DelayLink(echo.port, one_way_ms=0.2) as delayed:
        with socket.create_connection(("127.0.0.1", delayed.port)) as sock:
            received = bytearray()

            def read() -> None:
                while data := sock.recv(65536):
                    received.extend(data)

            reader = threading.Thread(target=read)
            reader.start()
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # the echo server sees EOF, closes: we see EOF
            reader.join(30)
            assert not reader.is_alive()
        assert echo.closed.wait(10)
        assert bytes(received) == payload
        assert delayed.cpu_seconds() >= 0
        assert delayed.process is not None and delayed.process.poll() is None
    assert delayed.process.returncode == 0  # SIGTERM ends it cleanly


def test_a_refused_target_closes_the_client():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with (
            link.DelayLink(closed_port, one_way_ms=0.1) as delayed,
            socket.create_connection(("127.0.0.1", delayed.port), timeout=10) as client,
            contextlib.suppress(ConnectionResetError),  # a close or a reset, both say no
        ):
            assert client.recv(1) == b""


def test_tree_cpu_counts_the_children():
    import subprocess

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        seen = 0.0
        while parent.poll() is None and time.monotonic() < deadline:
            seen = max(seen, link.tree_cpu_seconds(parent.pid))
            time.sleep(0.02)
    finally:
        parent.wait(20)
    assert seen >= 0.2  # the child's burn, seen while it ran
