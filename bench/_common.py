"""Helpers the benchmarks under ``bench/`` share.

* :data:`bare_app`: a FastAPI app that only reads a POST body and answers ``{"status": "accepted"}``,
  the reference a service endpoint is compared with (``python -m uvicorn bench._common:bare_app``).
* Processes: :func:`free_port`, :func:`start_uvicorn` / :func:`uvicorn_server` (a uvicorn subprocess
  with its own environment, waited on until a readiness URL answers 200).
* Databases: :func:`temp_sqlite_database` and :func:`temp_postgres_database` (created for one run,
  removed afterwards).
* Load: :func:`run_phases` sends prepared requests over a fixed number of keep-alive connections and
  records per-request latency and status; :func:`run_wrk_phases` does the same with ``wrk`` (a C load
  generator) replaying the prepared requests through ``bench/wrk_replay.lua``; :func:`percentile` and
  :class:`LatencySummary` sum it up.
* :func:`machine_info` describes where the figures were taken.

Importing this module starts nothing and connects to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = [
    "DEFAULT_PG_ADMIN_URL",
    "LOAD_TOOLS",
    "POOL_MODES",
    "REPO_ROOT",
    "WRK_REPLAY_SCRIPT",
    "LatencySummary",
    "LoadItem",
    "LoadResult",
    "PhaseBuilder",
    "ServerStartError",
    "UvicornProcess",
    "bare_app",
    "default_load_tool",
    "free_port",
    "machine_info",
    "percentile",
    "run_async",
    "run_phases",
    "run_wrk_phases",
    "run_wrk_replay",
    "start_uvicorn",
    "temp_postgres_database",
    "temp_sqlite_database",
    "undo_wrk_correction",
    "uvicorn_server",
    "write_replay_file",
    "wrk_version",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The project root: the working directory of every server subprocess."""

DEFAULT_PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
"""libpq URL of a database the benchmark may connect to in order to create and drop its own."""

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------
# The bare reference app
# --------------------------------------------------------------------------------------------------

bare_app = FastAPI(title="bench: bare reference app", openapi_url=None, docs_url=None, redoc_url=None)
"""Reads the POST body and answers 200 ``{"status": "accepted"}``: the cost of FastAPI + uvicorn alone."""


@bare_app.post("/webhooks/zoom")
async def _bare_webhook(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted"})


@bare_app.get("/readyz")
async def _bare_ready() -> JSONResponse:
    return JSONResponse({"status": "ready"})


# --------------------------------------------------------------------------------------------------
# Server subprocesses
# --------------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it; a tiny race with other programs remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    """A server subprocess died or did not become ready in time; the message carries its stderr."""


@dataclass
class UvicornProcess:
    """A running ``python -m uvicorn`` subprocess; its stdout and stderr go to files in ``log_dir``."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_dir: Path
    _stderr_final: str | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr so far (or until :meth:`stop`)."""
        if self._stderr_final is not None:
            return self._stderr_final
        try:
            return (self.log_dir / "stderr.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the process has used so far; ``nan`` once it has exited or
        where ``/proc`` is missing (not Linux)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return math.nan
        # After the ")" closing the command name: state is fields[0], utime fields[11], stime fields[12].
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (uvicorn then runs the app's shutdown), SIGKILL after ``timeout`` s; removes the logs
        once their text is kept for :meth:`stderr_text`. Returns the exit code. Safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._stderr_final is None:
            self._stderr_final = self.stderr_text()
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return self.process.returncode


def _tail(text: str, lines: int = 40) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(kept) if kept else "(stderr is empty)"


def start_uvicorn(
    app: str,
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/readyz",
    host: str = "127.0.0.1",
    port: int | None = None,
    cwd: Path = REPO_ROOT,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    unset_env: Sequence[str] = (),
) -> UvicornProcess:
    """Start ``python -m uvicorn APP`` (one process, no access log, log level warning) and wait until
    ``GET ready_path`` answers 200.

    ``env`` is added to (and overrides) this process's environment; names in ``unset_env`` are removed
    from it. Raises :class:`ServerStartError`
    with the tail of the subprocess's stderr when it exits early or is not ready within ``timeout`` s.
    """
    port = free_port(host) if port is None else port
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench_{name}_logs_"))
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *extra_args,
    ]
    removed = set(unset_env)
    full_env = {k: v for k, v in os.environ.items() if k not in removed}
    full_env.update(env or {})
    with (log_dir / "stdout.log").open("wb") as out, (log_dir / "stderr.log").open("wb") as err:
        process = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=out, stderr=err)
    server = UvicornProcess(name=name, host=host, port=port, process=process, log_dir=log_dir)
    try:
        _wait_ready(server, ready_path, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: UvicornProcess, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{server.name} exited with code {code} before it was ready; stderr:\n"
                    f"{_tail(server.stderr_text())}"
                )
            try:
                response = client.get(path)
                if response.status_code == 200:
                    return
                last = f"GET {path} -> {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"GET {path} -> {type(exc).__name__}"
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{server.name} not ready after {timeout:.0f} s ({last}); stderr:\n"
                    f"{_tail(server.stderr_text())}"
                )
            time.sleep(0.1)


@contextlib.contextmanager
def uvicorn_server(app: str, *, name: str, **kwargs: Any) -> Iterator[UvicornProcess]:
    """:func:`start_uvicorn` as a context manager: the process is stopped on exit, whatever happens."""
    server = start_uvicorn(app, name=name, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# Temporary databases
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def temp_sqlite_database(prefix: str = "bench") -> Iterator[str]:
    """A SQLAlchemy URL of a SQLite file in a fresh temporary directory, removed (with the WAL files)
    on exit."""
    directory = tempfile.mkdtemp(prefix=f"{prefix}_")
    try:
        yield f"sqlite:///{directory}/bench.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def temp_postgres_database(prefix: str = "bench", admin_url: str = DEFAULT_PG_ADMIN_URL) -> Iterator[str]:
    """Create database ``{prefix}_{random hex}`` on the server of ``admin_url`` (a libpq URL) and yield its
    SQLAlchemy URL (``postgresql+psycopg://...``); drop it on exit, closing any connection left open."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------------

LoadItem = tuple[bytes, Mapping[str, str]]
"""One POST to send: the body bytes and the request headers."""

PhaseBuilder = Callable[[], Sequence[LoadItem]]
"""Builds a phase's requests when the phase starts (e.g. to sign them with a fresh timestamp)."""


@dataclass
class LoadResult:
    """What one phase of load observed. Latencies are in seconds, one per request that got an answer or
    failed (a transport error counts with the time it took to fail)."""

    requests: int
    elapsed_s: float
    latencies_s: list[float]
    status_codes: Counter[int]
    errors: Counter[str]
    bodies: Counter[bytes]
    """Response bodies of the 200 answers, counted (a server answering the same few bodies stays small)."""
    client_cpu_s: float = math.nan
    """CPU time (user + system) the load generator's process spent during the phase."""
    server_cpu_s: float = math.nan
    """CPU time the server spent during the phase, when :func:`run_phases` was given a ``cpu_probe``."""
    details: dict[str, Any] = field(default_factory=dict)
    """Load-generator specific facts (:func:`run_wrk_replay`: threads, connections, wrk's own figures)."""

    @property
    def throughput(self) -> float:
        """Requests per second over the phase's wall-clock time."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def non_200(self) -> int:
        """Answers other than 200, plus transport errors."""
        return self.requests - self.status_codes.get(200, 0)

    def latency(self) -> LatencySummary:
        return LatencySummary.of(self.latencies_s)

    @property
    def client_cpu_ms_per_request(self) -> float:
        return self.client_cpu_s / self.requests * 1000.0

    @property
    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1000.0


async def _run_phase(
    clients: Sequence[httpx.AsyncClient],
    path: str,
    items: Sequence[LoadItem],
    concurrency: int,
    cpu_probe: Callable[[], float] | None,
) -> LoadResult:
    """``concurrency`` tasks drain one shared queue; task ``i`` sends through ``clients[i % len(clients)]``.

    The ``httpx.Request`` objects are built before the clock starts (URL parsing and header normalisation
    are load-generator work, not server time); all clients share one configuration, so any may build them.
    """
    work: asyncio.Queue[httpx.Request] = asyncio.Queue()
    for body, headers in items:
        work.put_nowait(clients[0].build_request("POST", path, content=body, headers=headers))
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    bodies: Counter[bytes] = Counter()
    perf = time.perf_counter

    async def consumer(client: httpx.AsyncClient) -> None:
        while True:
            try:
                request = work.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = perf()
            try:
                response = await client.send(request)
            except httpx.HTTPError as exc:
                latencies.append(perf() - started)
                errors[type(exc).__name__] += 1
                continue
            latencies.append(perf() - started)
            codes[response.status_code] += 1
            if response.status_code == 200:
                bodies[response.content] += 1

    server_before = cpu_probe() if cpu_probe is not None else math.nan
    client_before = _own_cpu_seconds()
    began = perf()
    await asyncio.gather(*(consumer(clients[i % len(clients)]) for i in range(concurrency)))
    elapsed = perf() - began
    client_cpu = _own_cpu_seconds() - client_before
    server_cpu = cpu_probe() - server_before if cpu_probe is not None else math.nan
    return LoadResult(len(items), elapsed, latencies, codes, errors, bodies, client_cpu, server_cpu)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fast_fail_sniffio_import() -> None:
    """httpcore 1.0.x imports ``sniffio`` inside every lock/semaphore set-up and falls back to asyncio when
    that import fails; anyio >= 4.11 no longer installs sniffio, and Python does not cache failed imports, so
    each request then scans ``sys.path`` again (encode/httpcore discussion #1102, PR #1103). When sniffio is
    absent, a ``None`` entry in ``sys.modules`` makes the import fail at once, with the same outcome
    (asyncio). Only the load generator's process is affected."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        # typeshed types sys.modules as modules only; a None entry is the import system's documented
        # way to make an import fail at once.
        sys.modules["sniffio"] = None  # type: ignore[assignment]


POOL_MODES = ("per-task", "shared")
"""How :func:`run_phases` spreads its connections over ``httpx.AsyncClient`` pools; see there."""


async def run_phases(
    base_url: str,
    path: str,
    phases: Sequence[PhaseBuilder],
    *,
    concurrency: int,
    request_timeout: float = 30.0,
    pool: str = "per-task",
    cpu_probe: Callable[[], float] | None = None,
) -> list[LoadResult]:
    """Send each phase's requests in turn over ``concurrency`` keep-alive HTTP/1.1 connections:
    ``concurrency`` tasks take requests from one shared queue until it is empty. A phase's requests are
    built by its builder just before the phase starts; connections opened by an earlier phase (a warm-up)
    are reused by the later ones. Returns one :class:`LoadResult` per phase.

    ``pool="shared"``: one ``httpx.AsyncClient`` with ``Limits(max_connections=concurrency)`` for all
    tasks. ``pool="per-task"`` (default): each task has its own client limited to one connection; the same
    number of connections, but httpcore 1.0's pool rescans every connection (and polls each idle socket)
    for every queued request, which costs the load generator far more CPU than the servers under test
    spend as soon as there are a few dozen connections, so the shared pool measures the client.

    ``cpu_probe`` (e.g. :meth:`UvicornProcess.cpu_seconds`) is read before and after each phase to give
    :attr:`LoadResult.server_cpu_s`.
    """
    if pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {POOL_MODES}, got {pool!r}")
    _fast_fail_sniffio_import()
    per_client = concurrency if pool == "shared" else 1
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    results: list[LoadResult] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=base_url,
                    http1=True,
                    http2=False,
                    limits=limits,
                    timeout=request_timeout,
                    verify=False,  # plain http to localhost; skips loading CA certificates per client
                )
            )
            for _ in range(1 if pool == "shared" else concurrency)
        ]
        for build in phases:
            results.append(await _run_phase(clients, path, build(), concurrency, cpu_probe))
    return results


def event_loop_name() -> str:
    """The event loop :func:`run_async` uses: ``uvloop`` when installed, else ``asyncio``."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on uvloop when available (a lighter load generator), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --------------------------------------------------------------------------------------------------
# Load generation with wrk
# --------------------------------------------------------------------------------------------------

LOAD_TOOLS = ("wrk", "httpx")
"""Load generators: ``wrk`` (C, :func:`run_wrk_phases`) and ``httpx`` (Python, :func:`run_phases`)."""

WRK_REPLAY_SCRIPT = Path(__file__).resolve().with_name("wrk_replay.lua")
"""The wrk script that replays a file of pre-built requests, each exactly once."""

_REPLAY_MAGIC = b"wrk-replay 1"


def default_load_tool() -> str:
    """``wrk`` when it is on ``PATH``, else ``httpx``."""
    return "wrk" if shutil.which("wrk") else "httpx"


def wrk_version(wrk: str = "wrk") -> str:
    """The first line ``wrk -v`` prints (e.g. ``wrk debian/4.1.0-3+b2 [epoll] Copyright ...``)."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk (version unknown)"


def write_replay_file(target: Path, *, host: str, path: str, items: Sequence[LoadItem]) -> None:
    """Write ``items`` as raw HTTP/1.1 POST requests in the format ``bench/wrk_replay.lua`` reads: a line
    ``wrk-replay 1 <count>``, then per request its length in bytes on a line and the request itself
    (request line, ``host``, the item's headers, ``content-length``, blank line, body)."""
    with target.open("wb") as out:
        out.write(_REPLAY_MAGIC + b" %d\n" % len(items))
        for body, headers in items:
            lines = [f"POST {path} HTTP/1.1", f"host: {host}"]
            for name, value in headers.items():
                if name.lower() in ("host", "content-length"):
                    continue
                if any(c in name or c in value for c in "\r\n"):
                    raise ValueError(f"header {name!r} contains a line break")
                lines.append(f"{name}: {value}")
            lines.append(f"content-length: {len(body)}")
            raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
            out.write(b"%d\n" % len(raw))
            out.write(raw)


def undo_wrk_correction(
    histogram: Mapping[int, int], *, duration_us: int, completed: int, connections: int
) -> dict[int, int]:
    """The latencies wrk measured, from the histogram it reports after its coordinated-omission correction.

    wrk 4 always calls ``stats_correct(latency, e)`` before ``done()``, with
    ``e = duration_us // (completed // connections)``: for every recorded value ``n >= 2e`` it adds
    synthetic samples ``n - e, n - 2e, ...`` down to (excluding) ``e``. So for ``m > e`` the corrected
    count is ``c[m] = raw[m] + c[m + e]``, and ``raw[m] = c[m] - c[m + e]``; bins ``<= e`` are unchanged.
    wrk takes ``duration_us`` from its whole run (start-up and the wait for SIGINT included), and a
    closed-loop replay follows no fixed-rate schedule, so the corrected figures mean little here.
    """
    per_connection = completed // connections if connections > 0 else 0
    if per_connection <= 0:
        return dict(histogram)
    interval = duration_us // per_connection
    raw: dict[int, int] = {}
    for value, count in histogram.items():
        own = count - histogram.get(value + interval, 0) if value > interval else count
        if own < 0:
            raise ValueError(f"not a wrk stats_correct histogram (bin {value}, interval {interval})")
        if own:
            raw[value] = own
    return raw


def _wait_and_interrupt(
    process: subprocess.Popen[bytes], markers: Sequence[Path], deadline: float, poll_s: float = 0.01
) -> bool:
    """Wait until every wrk thread has written its marker (or wrk exited, or ``deadline`` passed), then
    SIGINT wrk so that it stops waiting out its duration and reports. Returns whether all markers exist."""
    while process.poll() is None and time.monotonic() < deadline:
        if all(marker.exists() for marker in markers):
            break
        time.sleep(poll_s)
    # A SIGINT that lands before wrk has installed its handler, or before it has started sleeping, is
    # lost or does not cut the sleep short; wrk then gets another one a second later.
    for _ in range(30):
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1.0)
    else:
        process.kill()
        process.wait(5)
    return all(marker.exists() for marker in markers)


def run_wrk_replay(
    base_url: str,
    path: str,
    items: Sequence[LoadItem],
    *,
    connections: int,
    threads: int = 2,
    cpu_probe: Callable[[], float] | None = None,
    limit_s: float = 300.0,
    request_timeout_s: float = 10.0,
    wrk: str = "wrk",
) -> LoadResult:
    """POST every item exactly once with ``wrk -t threads -c connections`` (HTTP/1.1 keep-alive), through
    ``bench/wrk_replay.lua``: thread ``k`` sends items ``k, k + threads, ...`` in order and stops once each
    has its answer. The requests are written to a file in a temporary directory beforehand; the threads
    start sending together, once the server has had 100 ms to accept every connection.

    Figures: elapsed time from the first request sent to the last answer received (CLOCK_MONOTONIC in
    the wrk threads, so wrk's start-up and stop are not counted); per-request latency from wrk's
    microsecond histogram with wrk's coordinated-omission correction undone (:func:`undo_wrk_correction`;
    an answer slower than ``request_timeout_s`` is counted at that value); the load generator's CPU time
    is that of wrk's threads between their first request and their last answer. ``threads`` is lowered
    to ``len(items)`` or ``connections`` when either is smaller; wrk opens ``connections // threads``
    connections per thread. wrk is stopped after ``limit_s`` whatever happens.
    """
    host_port = base_url.split("://", 1)[-1].rstrip("/")
    if not items:
        return LoadResult(0, math.nan, [], Counter(), Counter(), Counter(), math.nan, math.nan)
    threads = max(1, min(threads, connections, len(items)))
    directory = Path(tempfile.mkdtemp(prefix="bench_wrk_"))
    try:
        requests_file = directory / "requests.bin"
        result_file = directory / "result.json"
        write_replay_file(requests_file, host=host_port, path=path, items=items)
        cmd = [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, math.ceil(limit_s))}s",
            "--timeout",
            f"{max(1, math.ceil(request_timeout_s))}s",
            "-s",
            str(WRK_REPLAY_SCRIPT),
            f"{base_url.rstrip('/')}/",
            "--",
            str(requests_file),
            str(threads),
            str(result_file),
        ]
        server_before = cpu_probe() if cpu_probe is not None else math.nan
        with (directory / "stdout.log").open("wb") as out, (directory / "stderr.log").open("wb") as err:
            process = subprocess.Popen(cmd, cwd=directory, stdout=out, stderr=err)
        markers = [directory / f"requests.bin.done.{k}" for k in range(threads)]
        try:
            complete = _wait_and_interrupt(process, markers, time.monotonic() + limit_s + 30.0)
        finally:
            if process.poll() is None:  # interrupted (e.g. Ctrl-C): do not leave wrk running
                process.kill()
                process.wait(5)
        server_cpu = cpu_probe() - server_before if cpu_probe is not None else math.nan
        stdout = (directory / "stdout.log").read_text(errors="replace")
        stderr = (directory / "stderr.log").read_text(errors="replace")
        if not result_file.exists():
            raise RuntimeError(
                f"wrk (exit code {process.returncode}) wrote no result; stderr:\n{_tail(stderr)}\n"
                f"stdout:\n{_tail(stdout)}"
            )
        result = json.loads(result_file.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _wrk_load_result(
        result,
        planned=len(items),
        connections=connections,
        threads=threads,
        complete=complete,
        request_timeout_s=request_timeout_s,
        server_cpu_s=server_cpu,
        wrk_stdout=stdout,
        wrk_stderr=stderr,
    )


def _wrk_load_result(
    result: dict[str, Any],
    *,
    planned: int,
    connections: int,
    threads: int,
    complete: bool,
    request_timeout_s: float,
    server_cpu_s: float,
    wrk_stdout: str,
    wrk_stderr: str,
) -> LoadResult:
    summary = result["summary"]
    wrk_errors = {str(k): int(v) for k, v in (summary.get("errors") or {}).items()}
    flat = result.get("histogram") or []
    if not isinstance(flat, list):  # the Lua encoder writes an empty table as {}
        flat = []
    corrected = {int(v): int(c) for v, c in zip(flat[0::2], flat[1::2], strict=True)}
    raw = undo_wrk_correction(
        corrected,
        duration_us=int(summary["duration_us"]),
        completed=int(summary["requests"]),
        connections=connections,
    )
    slow = wrk_errors.get("timeout", 0)
    recorded = sum(raw.values())
    if recorded + slow != int(summary["requests"]):
        raise RuntimeError(
            f"wrk latency histogram holds {recorded} samples (+{slow} over the timeout) for "
            f"{summary['requests']} answers"
        )
    latencies = [value / 1e6 for value, count in sorted(raw.items()) for _ in range(count)]
    latencies.extend([request_timeout_s] * slow)

    per_thread = result.get("threads") or []
    codes: Counter[int] = Counter()
    bodies: Counter[bytes] = Counter()
    for info in per_thread:
        for code, n in (info.get("statuses") or {}).items():
            codes[int(code)] += int(n)
        for body, n in (info.get("bodies") or {}).items():
            bodies[str(body).encode("utf-8")] += int(n)
    answered = sum(int(info.get("answered") or 0) for info in per_thread)
    sent = sum(int(info.get("sent") or 0) for info in per_thread)
    errors: Counter[str] = Counter()
    for kind in ("connect", "read", "write"):
        if wrk_errors.get(kind):
            errors[f"wrk {kind} errors"] = wrk_errors[kind]
    if planned - answered:
        errors["not answered"] = planned - answered

    firsts = [info["first_send_ns"] for info in per_thread if info.get("first_send_ns") is not None]
    lasts = [info["last_answer_ns"] for info in per_thread if info.get("last_answer_ns") is not None]
    elapsed = (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else math.nan
    cpu_ns = [info.get("cpu_ns") for info in per_thread]
    # A thread that never got all its answers has no CPU figure; the run's is then unknown.
    client_cpu = math.nan if None in cpu_ns else sum(float(c) for c in cpu_ns) / 1e9
    wrk_us = result.get("wrk_corrected_us") or {}
    details: dict[str, Any] = {
        "tool": "wrk",
        "threads": threads,
        "connections": connections // threads * threads,
        "complete": complete,
        "sent": sent,
        "answered": answered,
        "answers_over_timeout": slow,
        "wrk_errors": wrk_errors,
        "wrk_duration_s": int(summary["duration_us"]) / 1e6,
        "wrk_corrected_ms": {k: float(v) / 1000.0 for k, v in wrk_us.items() if v is not None},
        "histogram_source": result.get("histogram_source"),
        "parked_connections": sum(int(info.get("parked") or 0) for info in per_thread),
        "thread_start_spread_ms": (max(firsts) - min(firsts)) / 1e6 if firsts else math.nan,
        "thread_end_spread_ms": (max(lasts) - min(lasts)) / 1e6 if lasts else math.nan,
    }
    if not complete:
        details["wrk_stdout_tail"] = _tail(wrk_stdout, 20)
        details["wrk_stderr_tail"] = _tail(wrk_stderr, 20)
    return LoadResult(planned, elapsed, latencies, codes, errors, bodies, client_cpu, server_cpu_s, details)


def run_wrk_phases(
    base_url: str,
    path: str,
    phases: Sequence[PhaseBuilder],
    *,
    concurrency: int,
    threads: int = 2,
    cpu_probe: Callable[[], float] | None = None,
    limit_s: float = 300.0,
    wrk: str = "wrk",
) -> list[LoadResult]:
    """:func:`run_phases` with wrk: each phase's requests are built just before the phase and sent by one
    :func:`run_wrk_replay` run (so, unlike :func:`run_phases`, every phase opens its own connections)."""
    return [
        run_wrk_replay(
            base_url,
            path,
            build(),
            connections=concurrency,
            threads=threads,
            cpu_probe=cpu_probe,
            limit_s=limit_s,
            wrk=wrk,
        )
        for build in phases
    ]


# --------------------------------------------------------------------------------------------------
# Statistics and the machine
# --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float, *, presorted: bool = False) -> float:
    """The ``q``-th percentile (0 <= q <= 100) by linear interpolation between closest ranks (NumPy's
    default method); ``nan`` for no values. Pass ``presorted=True`` when ``values`` is sorted ascending."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = values if presorted else sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency figures in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_s: Sequence[float]) -> LatencySummary:
        ordered = sorted(latencies_s)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)

        def ms(q: float) -> float:
            return percentile(ordered, q, presorted=True) * 1000.0

        return cls(
            count=len(ordered),
            mean_ms=sum(ordered) / len(ordered) * 1000.0,
            p50_ms=ms(50),
            p95_ms=ms(95),
            p99_ms=ms(99),
            max_ms=ordered[-1] * 1000.0,
        )


def machine_info() -> dict[str, Any]:
    """CPU count (logical, and usable by this process), Python version and implementation, platform."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "client_event_loop": event_loop_name(),
    }
