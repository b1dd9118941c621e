"""Flood benchmark: the service's peak memory and liveness while hostile clients hammer it.

    python bench/flood.py [--duration 20] [--clients 4] [--slowloris 200] [--plain]
                          [--attacks action_256mib,zoom_256mib,...] [--json out.json]

The service runs as operators start it on the embedded default: ``python -m app.cli serve`` (one
process, worker in-process, a fresh SQLite file, admin token, Zoom webhook secret and HubSpot app
secret set; HubSpot and Zoom URLs point at a closed local port, nothing leaves the machine).
``--plain`` starts ``python -m uvicorn app.main:app`` with the same environment instead: uvicorn's
defaults without app/server.py's limits, for comparison.

For ``--duration`` seconds, all at once, each body/header attack from ``--clients`` concurrent
connections that start over as soon as one ends:

* ``action_256mib``: ``POST /hubspot/actions/add-to-webinar``, unsigned, a 256 MiB chunked body;
* ``zoom_256mib``: ``POST /webhooks/zoom``, unsigned, a 256 MiB chunked body;
* ``admin_patch_128mib``: ``PATCH /api/v1/portals/1/settings`` without a token, ``Content-Length``
  128 MiB, the body streamed;
* ``header_1mib``: ``GET /healthz`` with a 1 MiB header;
* ``slowloris``: ``--slowloris`` connections sending a request head a byte per second (each one
  reopened when the server closes it);
* a prober: ``GET /healthz`` on a new connection every 0.2 s.

The server's RSS is sampled every 50 ms (psutil); its ``VmHWM`` (the kernel's high-water mark, which
also catches spikes between samples) is read before and after the flood. Printed: idle RSS, peak RSS,
the outcome of every attack (status, or how the connection ended) with how many body bytes the
client got to send before it, how long slowloris connections lived, and whether ``/healthz``
answered during the flood (p50 and max latency). A benchmark, not a test: exits 0 whatever the
figures are (1 only if it could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    REPO_ROOT,
    LatencySummary,
    UvicornProcess,
    _wait_ready,
    free_port,
    machine_info,
    percentile,
    run_async,
    temp_sqlite_database,
)

HOST = "127.0.0.1"
MIB = 1024 * 1024
CHUNK = 64 * 1024
ANSWER_TIMEOUT_S = 30.0  # an attack connection left unanswered this long counts as "timeout"
SAMPLE_INTERVAL_S = 0.05
PROBE_INTERVAL_S = 0.2
SLOWLORIS_BYTE_EVERY_S = 1.0
# Settings a developer's shell may carry that would change what runs.
UNSET_ENV = (
    "ZOOM_HUBSPOT_DEMO_URL",
    "HTTP_HEADER_TIMEOUT_S",
    "HTTP_LIMIT_CONCURRENCY",
    "HTTP_SHUTDOWN_TIMEOUT_S",
)


# --------------------------------------------------------------------------------------------------
# The service and its memory
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def service(db_url: str, *, plain: bool) -> Iterator[UvicornProcess]:
    """The service on a free port, ready (``/readyz`` 200); stopped on exit."""
    port = free_port()
    work_dir = Path(tempfile.mkdtemp(prefix="bench_flood_"))
    closed_port = free_port()  # nothing listens there: HubSpot and Zoom calls fail fast, locally
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "DATABASE_URL": db_url,
            "AUTO_MIGRATE": "true",
            "RUN_WORKER": "true",
            "ZOOM_HUBSPOT_DEMO": "0",
            "ADMIN_API_TOKEN": secrets.token_urlsafe(16),
            "ZOOM_WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(16),
            "HUBSPOT_CLIENT_SECRET": secrets.token_urlsafe(16),
            "HUBSPOT_ACCESS_TOKEN": "bench-token",
            "HUBSPOT_PORTAL_ID": "4242",
            "HUBSPOT_APP_ID": "1001",
            "ZOOM_ACCOUNT_ID": "bench-account",
            "HUBSPOT_API_BASE_URL": f"http://{HOST}:{closed_port}",
            "ZOOM_API_BASE_URL": f"http://{HOST}:{closed_port}/v2",
            "ZOOM_OAUTH_BASE_URL": f"http://{HOST}:{closed_port}",
            "PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "LOG_LEVEL": "ERROR",
        }
    )
    if plain:
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", str(port)]
        cmd += ["--no-access-log", "--log-level", "warning"]
    else:
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--port", str(port)]
    with (work_dir / "stdout.log").open("wb") as out, (work_dir / "stderr.log").open("wb") as err:
        process = subprocess.Popen(cmd, cwd=work_dir, env=env, stdout=out, stderr=err)
    server = UvicornProcess(name="service", host=HOST, port=port, process=process, log_dir=work_dir)
    try:
        _wait_ready(server, "/readyz", 60.0)
        yield server
    finally:
        server.stop()


def vm_hwm_mib(pid: int) -> float:
    """The process's peak resident set size so far (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples a process's RSS every SAMPLE_INTERVAL_S in a thread; ``peak_mib`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append(self.process.memory_info().rss / MIB)
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return max(self.samples, default=float("nan"))


# --------------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------------


@dataclass
class AttackStats:
    outcomes: Counter[str] = field(default_factory=Counter)
    body_bytes_sent: list[int] = field(default_factory=list)
    lifetimes_s: list[float] = field(default_factory=list)


async def _status_line(reader: asyncio.StreamReader) -> str:
    """The response's status code, or how the connection ended without one."""
    try:
        line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except ConnectionResetError:
        return "reset"
    if not line:
        return "closed"
    parts = line.split()
    return parts[1].decode() if len(parts) > 1 and line.startswith(b"HTTP/") else "garbage"


async def body_attack(port: int, head: bytes, total: int, *, chunked: bool, stats: AttackStats) -> None:
    """Send ``head`` then ``total`` body bytes until the server answers or closes; record the outcome."""
    reader, writer = await asyncio.open_connection(HOST, port)
    sent = 0

    async def pump() -> None:
        nonlocal sent
        data = b"x" * CHUNK
        frame = b"%x\r\n%s\r\n" % (CHUNK, data) if chunked else data
        writer.write(head)
        while sent < total:
            writer.write(frame)
            sent += CHUNK
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    pumping = asyncio.create_task(pump())
    try:
        stats.outcomes[await _status_line(reader)] += 1
        stats.body_bytes_sent.append(sent)
    finally:
        pumping.cancel()
        with contextlib.suppress(BaseException):
            await pumping
        writer.close()


async def header_attack(port: int, stats: AttackStats) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    head = b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Big: " + b"a" * MIB + b"\r\n\r\n"
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        stats.outcomes[await _status_line(reader)] += 1
    finally:
        writer.close()


async def slowloris(port: int, until: float, stats: AttackStats) -> None:
    """One connection trickling a request head a byte per second until the server closes it (then
    recorded with its lifetime) or the flood ends (recorded as ``open at end``)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    started = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Slow: " + b"s" * 4096 + b"\r\n\r\n"
    try:
        for byte in head:
            if time.monotonic() >= until:
                stats.outcomes["open at end"] += 1
                return
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(4096), SLOWLORIS_BYTE_EVERY_S)
            except TimeoutError:
                continue  # still open, no answer: next byte
            except ConnectionError:
                answer = b""
            outcome = "closed" if not answer else answer.split(b" ", 2)[1].decode(errors="replace")
            stats.outcomes[outcome] += 1
            stats.lifetimes_s.append(time.monotonic() - started)
            return
        stats.outcomes["head completed"] += 1
    finally:
        writer.close()


async def repeat(until: float, attack: Callable[[], Awaitable[None]], stats: AttackStats) -> None:
    """Run ``attack`` again and again until ``until``; a failure to even connect is an outcome too."""
    while time.monotonic() < until:
        try:
            await attack()
        except OSError as exc:
            stats.outcomes[f"client error {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)


async def probe_health(port: int, until: float, latencies: list[float], outcomes: Counter[str]) -> None:
    """``GET /healthz`` on a new connection every PROBE_INTERVAL_S: what a load balancer would see."""
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5.0)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            status = await _status_line(reader)
            writer.close()
        except (OSError, TimeoutError) as exc:
            status = f"client error {type(exc).__name__}"
        outcomes[status] += 1
        if status == "200":
            latencies.append(time.monotonic() - started)
        await asyncio.sleep(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - started)))


BODY_ATTACKS: dict[str, tuple[bytes, int, bool]] = {
    # name: (request head, body bytes, chunked)
    "action_256mib": (
        b"POST /hubspot/actions/add-to-webinar HTTP/1.1\r\nHost: flood\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        256 * MIB,
        True,
    ),
    "zoom_256mib": (
        b"POST /webhooks/zoom HTTP/1.1\r\nHost: flood\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        256 * MIB,
        True,
    ),
    "admin_patch_128mib": (
        b"PATCH /api/v1/portals/1/settings HTTP/1.1\r\nHost: flood\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (128 * MIB),
        128 * MIB,
        False,
    ),
}
ATTACKS = (*BODY_ATTACKS, "header_1mib", "slowloris")


async def flood(port: int, args: argparse.Namespace) -> dict[str, Any]:
    until = time.monotonic() + args.duration
    stats = {name: AttackStats() for name in args.attacks}
    tasks: list[Awaitable[None]] = []
    for name, (head, total, chunked) in BODY_ATTACKS.items():
        if name not in stats:
            continue
        for _ in range(args.clients):

            def attack(
                head: bytes = head, total: int = total, chunked: bool = chunked, name: str = name
            ) -> Any:
                return body_attack(port, head, total, chunked=chunked, stats=stats[name])

            tasks.append(repeat(until, attack, stats[name]))
    if "header_1mib" in stats:
        header = stats["header_1mib"]
        tasks += [repeat(until, lambda: header_attack(port, header), header) for _ in range(args.clients)]
    if "slowloris" in stats:
        slow = stats["slowloris"]
        tasks += [repeat(until, lambda: slowloris(port, until, slow), slow) for _ in range(args.slowloris)]
    latencies: list[float] = []
    probes: Counter[str] = Counter()
    tasks.append(probe_health(port, until, latencies, probes))
    began = time.monotonic()
    # Attacks still waiting for an answer when the flood ends get ANSWER_TIMEOUT_S more.
    await asyncio.wait_for(asyncio.gather(*tasks), args.duration + ANSWER_TIMEOUT_S + 10)
    return {
        "elapsed_s": time.monotonic() - began,
        "attacks": {
            name: {
                "outcomes": dict(s.outcomes),
                "body_mib_sent_p50": percentile([b / MIB for b in s.body_bytes_sent], 50),
                "body_mib_sent_max": max(s.body_bytes_sent, default=0) / MIB,
                "lifetime_s_p50": percentile(s.lifetimes_s, 50),
                "lifetime_s_max": max(s.lifetimes_s, default=float("nan")),
            }
            for name, s in stats.items()
        },
        "healthz": {"outcomes": dict(probes), "latency": asdict(LatencySummary.of(latencies))},
    }


# --------------------------------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    with temp_sqlite_database("bench_flood") as db_url, service(db_url, plain=args.plain) as server:
        pid = server.process.pid
        time.sleep(2.0)  # let start-up settle (first worker polls, lazy imports)
        idle_rss = psutil.Process(pid).memory_info().rss / MIB
        hwm_before = vm_hwm_mib(pid)
        with RssSampler(pid) as sampler:
            result = run_async(flood(server.port, args))
            time.sleep(1.0)
        result.update(
            server="python -m uvicorn app.main:app (plain)" if args.plain else "python -m app.cli serve",
            idle_rss_mib=idle_rss,
            vm_hwm_before_mib=hwm_before,
            peak_rss_sampled_mib=sampler.peak_mib,
            vm_hwm_after_mib=vm_hwm_mib(pid),
            rss_after_mib=sampler.samples[-1] if sampler.samples else float("nan"),
            server_alive=server.process.poll() is None,
        )
        return result


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    machine = result["machine"]
    print(f"Flood benchmark: {result['server']}, SQLite, worker in-process")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_usable']} usable), "
        f"{machine['implementation']} {machine['python']}; the attackers share the cores with the server"
    )
    print(
        f"flood: {args.duration:g} s, {args.clients} connections per body/header attack, "
        f"{args.slowloris} slowloris connections, /healthz probed every {PROBE_INTERVAL_S:g} s"
    )
    print(f"attacks: {', '.join(args.attacks)}")
    print()
    print(f"RSS idle:                 {result['idle_rss_mib']:7.1f} MiB")
    print(f"RSS peak (50 ms samples): {result['peak_rss_sampled_mib']:7.1f} MiB")
    print(
        f"VmHWM before / after:     {result['vm_hwm_before_mib']:7.1f} / {result['vm_hwm_after_mib']:.1f} MiB"
        "  (kernel high-water mark, start-up included)"
    )
    alive = result["server_alive"]
    print(f"RSS after the flood:      {result['rss_after_mib']:7.1f} MiB; server alive: {alive}")
    print()
    print(f"{'attack':<20} {'answers / endings':<44} {'body MiB sent p50/max':>22} {'lifetime p50/max':>17}")
    for name, figures in result["attacks"].items():
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(figures["outcomes"].items())) or "-"
        body = (
            f"{figures['body_mib_sent_p50']:.2f} / {figures['body_mib_sent_max']:.2f}"
            if figures["body_mib_sent_max"]
            else "-"
        )
        life = (
            f"{figures['lifetime_s_p50']:.1f} / {figures['lifetime_s_max']:.1f} s"
            if figures["lifetime_s_max"] == figures["lifetime_s_max"]  # not nan
            else "-"
        )
        print(f"{name:<20} {outcomes:<44} {body:>22} {life:>17}")
    health = result["healthz"]
    latency = health["latency"]
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(health["outcomes"].items()))
    print()
    print(f"/healthz during the flood: {outcomes}")
    print(f"  latency of the 200s: p50 {latency['p50_ms']:.1f} ms, max {latency['max_ms']:.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of flood")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent connections per body/header attack"
    )
    parser.add_argument("--slowloris", type=int, default=200, help="slowloris connections")
    parser.add_argument(
        "--plain", action="store_true", help="plain uvicorn app.main:app, without app/server.py"
    )
    parser.add_argument(
        "--attacks",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(ATTACKS),
        help=f"comma-separated subset of {','.join(ATTACKS)} (default: all)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    try:
        result = run(args)
    except Exception as exc:  # a benchmark that cannot run says why
        print(f"benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    result["machine"] = machine_info()
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
