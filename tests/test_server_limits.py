"""The HTTP server's own limits (app/server.py), seen from raw sockets against `zoom-hubspot serve`.

The server is the real one: `python -m app.cli serve` on a free port, on a fresh SQLite file, with a
1 s header-read timeout so the slow-client cases take about a second each. Every wait on a socket
has a safety timeout: a connection the server never closes fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.server import MAX_HEADER_LINES
from tests.fixtures.service import ADMIN_TOKEN, ZOOM_SECRET

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HEADER_TIMEOUT_S = 1.0
SHUTDOWN_TIMEOUT_S = 2
# Longer than any limit under test, shorter than the request guard's 30 s body timeout.
SAFETY_S = 15.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=SAFETY_S)
        sock.settimeout(SAFETY_S)
        return sock

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(directory: Path, extra_env: Mapping[str, str] = {}) -> Server:
    """`python -m app.cli serve` in `directory` (its SQLite file and any .env are there), ready."""
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": f"sqlite:///{directory}/service.db",
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
        "ZOOM_WEBHOOK_SECRET_TOKEN": ZOOM_SECRET,
        "ZOOM_HUBSPOT_DEMO": "0",
        "RUN_WORKER": "false",
        "LOG_FORMAT": "json",
        "HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        **extra_env,
    }
    log = directory / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server not ready after 60 s:\n{server.log_tail()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server_limits"))
    yield running
    running.stop()


# --------------------------------------------------------------------------------------------------
# Raw HTTP/1.1 helpers
# --------------------------------------------------------------------------------------------------


def request_head(path: str = "/healthz", method: str = "GET", headers: Mapping[str, str] = {}) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of one response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:]) if k.lower() == b"content-length"
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response body"
        body += chunk
    return int(lines[0].split()[1]), body


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed).
    socket.timeout (the server kept the connection open) propagates and fails the test."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def trickle_until_closed(sock: socket.socket, data: bytes, interval_s: float) -> tuple[int, bytes]:
    """Send `data` a byte per `interval_s` until the server closes the connection; (bytes sent, what
    the server sent). Fails when all of `data` was sent or SAFETY_S passed with the connection open."""
    deadline = time.monotonic() + SAFETY_S
    for sent in range(len(data)):
        try:
            sock.send(data[sent : sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            return sent, b""
        readable, _, _ = select.select([sock], [], [], interval_s)
        if readable:
            return sent + 1, read_until_closed(sock)
        assert time.monotonic() < deadline, f"connection still open after {SAFETY_S} s of trickling"
    pytest.fail("the whole slow request was sent and the connection is still open")


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_normal_requests_are_served_on_a_kept_alive_connection(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request_head())
        assert read_response(sock) == (200, b'{"status":"ok"}')
        # Exactly the allowed number of header lines (Host + the rest) still passes.
        extra = {f"X-Line-{i}": "v" for i in range(MAX_HEADER_LINES - 1)}
        sock.sendall(request_head(headers=extra))
        assert read_response(sock) == (200, b'{"status":"ok"}')


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with server.connect() as sock:
        assert read_until_closed(sock) == b""


def test_slowloris_headers_are_cut_off_at_the_header_timeout(server: Server) -> None:
    head = request_head(headers={"X-Slow": "z" * 200})
    with server.connect() as sock:
        sent, answer = trickle_until_closed(sock, head, HEADER_TIMEOUT_S / 5)
    assert sent < len(head)
    assert answer == b""  # closed, never answered: the app never saw the request


def test_slowloris_after_a_response_on_the_same_connection_is_cut_off(server: Server) -> None:
    """uvicorn's keep-alive timer stops at the first byte of the next request; the header timer does not."""
    head = request_head(headers={"X-Slow": "z" * 200})
    with server.connect() as sock:
        sock.sendall(request_head())
        assert read_response(sock)[0] == 200
        sent, answer = trickle_until_closed(sock, head, HEADER_TIMEOUT_S / 5)
    assert sent < len(head)
    assert answer == b""


def test_a_1_mib_header_is_refused_by_the_server(server: Server) -> None:
    """The server answers 431 itself (or drops the connection) instead of buffering the head and passing
    it to the app, whose request guard would answer its own 431."""
    head = request_head(headers={"X-Big": "a" * (1 << 20)})
    with server.connect() as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused while still sending
            sock.sendall(head)
        answer = read_until_closed(sock)
    if answer:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert answer.endswith(b"request head larger than 32768 bytes"), answer[-200:]


def test_200_header_lines_are_refused(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(request_head(headers={f"X-Line-{i}": "v" for i in range(200)}))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert answer.endswith(f"more than {MAX_HEADER_LINES} header lines".encode())


def stalled_request(server: Server) -> socket.socket:
    """A connection whose request runs in the app, waiting for the rest of a body that never comes."""
    sock = server.connect()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    head = request_head("/api/v1/portals/1/settings", "PATCH", {**headers, "Content-Length": "1000"})
    sock.sendall(head + b'{"webinar_')
    return sock


def test_the_concurrency_limit_counts_running_requests_not_open_connections(tmp_path: Path) -> None:
    """uvicorn's own limit_concurrency also counts idle connections, so a crowd of them got everybody
    503; here only requests being run count."""
    server = start_server(tmp_path, {"HTTP_LIMIT_CONCURRENCY": "2"})
    sockets: list[socket.socket] = []
    try:
        for _ in range(4):  # idle keep-alive connections, each after one request
            sockets.append(server.connect())
            sockets[-1].sendall(request_head())
            assert read_response(sockets[-1])[0] == 200
        with server.connect() as sock:
            sock.sendall(request_head())
            assert read_response(sock)[0] == 200
        sockets += [stalled_request(server) for _ in range(2)]
        # Both stalled requests are running once their heads are read; nothing answers them.
        readable, _, _ = select.select(sockets[-2:], [], [], 1.0)
        assert not readable
        with server.connect() as sock:
            sock.sendall(request_head())
            assert read_response(sock)[0] == 503
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_sigterm_exits_within_the_graceful_timeout_despite_open_connections(tmp_path: Path) -> None:
    """An idle keep-alive connection and a request whose body stalls (the request guard would wait 30 s
    for it) do not keep a stopping server alive past HTTP_SHUTDOWN_TIMEOUT_S."""
    server = start_server(tmp_path, {"HTTP_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S)})
    try:
        idle = server.connect()
        idle.sendall(request_head())
        assert read_response(idle)[0] == 200
        stalled = stalled_request(server)
        # The stalled request must be in the app (reading its body) before the signal; nothing answers it.
        readable, _, _ = select.select([stalled], [], [], 1.0)
        assert not readable
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(SHUTDOWN_TIMEOUT_S + 12)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {SHUTDOWN_TIMEOUT_S + 12} s after SIGTERM:\n{server.log_tail()}")
        # uvicorn re-raises the signal it handled once it has shut down: -SIGTERM is a clean stop.
        assert code in (0, -signal.SIGTERM), server.log_tail()
        assert "timeout graceful shutdown exceeded" in server.log_tail()
        assert read_until_closed(idle) == b""
        idle.close()
        stalled.close()
    finally:
        server.stop()
