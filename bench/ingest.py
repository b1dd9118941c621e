"""Webhook ingest benchmark: how fast ``POST /webhooks/zoom`` stores deliveries, against a bare FastAPI app.

    python bench/ingest.py [--requests 20000] [--concurrency 32] [--db sqlite|postgresql|both]
                           [--json out.json] [--warmup 200] [--tool wrk|httpx] [--wrk-threads 2]
                           [--pool per-task|shared]

For each database (a fresh SQLite file, and/or a fresh PostgreSQL database that is dropped afterwards):

1. the bare reference app (``bench._common:bare_app``: reads the body, answers 200) and then the service
   (``app.main:app``, one uvicorn process, ``RUN_WORKER=false``) are started on free localhost ports;
2. each gets the same warm-up deliveries (not counted), then the same N measured ones, all distinct signed
   ``webinar.participant_joined`` deliveries, over ``--concurrency`` keep-alive HTTP/1.1 connections;
3. the inbox is checked by SQL: every measured delivery stored exactly once, nothing else stored.

Load generators (``--tool``): ``wrk`` (the default when it is on ``PATH``) replays the pre-built, pre-signed
requests from a file through ``bench/wrk_replay.lua``, each exactly once, ``--wrk-threads`` threads
sharing ``--concurrency`` connections; it costs far less CPU per request than ``httpx`` (an
``httpx.AsyncClient`` load generator in this process, see ``--pool``), whose cost on a small machine
exceeds the servers' own. Latencies from wrk are its per-request measurements, without the
coordinated-omission correction wrk applies to what it prints (those figures go to ``--json`` too).

Printed per database: requests/s of both, the ratio service / bare, the service's latency percentiles,
non-200 answers, the stored counts, and PASS/MISS against the targets (ratio >= 0.5 on SQLite,
p99 <= 50 ms, zero lost or duplicated). The load generator runs on the same machine as the server, so
the two compete for the same cores; the output says so. This is a benchmark, not a test: it exits 0
whatever the figures are (1 only if it could not run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from app.ingest.zoom_events import delivery_key, parse_envelope
from app.sandbox.zoom_webhooks import Envelope, WebinarScenario, make_delivery
from bench._common import (
    DEFAULT_PG_ADMIN_URL,
    LOAD_TOOLS,
    POOL_MODES,
    LatencySummary,
    LoadItem,
    LoadResult,
    PhaseBuilder,
    default_load_tool,
    machine_info,
    run_async,
    run_phases,
    run_wrk_phases,
    temp_postgres_database,
    temp_sqlite_database,
    uvicorn_server,
    wrk_version,
)

WEBHOOK_PATH = "/webhooks/zoom"
EVENT = "webinar.participant_joined"
TARGET_RATIO_SQLITE = 0.5
TARGET_P99_MS = 50.0
# The service refuses x-zm-request-timestamp older than 300 s; a phase that runs longer than this would
# start getting 401s, so it is reported.
SIGNATURE_WINDOW_S = 300
UNSET_ENV = (
    "ZOOM_ACCOUNT_ID",
    "ZOOM_CLIENT_ID",
    "ZOOM_CLIENT_SECRET",
    "HUBSPOT_PORTAL_ID",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_APP_ID",
    "HUBSPOT_CLIENT_SECRET",
)


# --------------------------------------------------------------------------------------------------
# Deliveries
# --------------------------------------------------------------------------------------------------


def build_envelopes(count: int, *, seed: int) -> list[Envelope]:
    """``count`` distinct ``webinar.participant_joined`` envelopes of one live webinar: every participant is
    new (own ``user_id``, ``participant_uuid`` and email) and every ``event_ts`` differs (1 ms apart)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    scenario = WebinarScenario(
        account_id="bench_ingest_account",
        webinar_id="81234567890",
        host_id="bench_host",
        host_email="host@bench.example.com",
        topic="Ingest benchmark webinar",
        start=start,
        duration_minutes=120,
        seed=seed,
    )
    out: list[Envelope] = []
    for i in range(count):
        guest = scenario.guest(f"Bench Attendee {i}")
        attendee = replace(guest, email=f"attendee{i}@bench{i % 50}.example.com")
        out.append(scenario.join(attendee, at=start + timedelta(seconds=5, milliseconds=i)))
    return out


def sign_all(secret: str, envelopes: Sequence[Envelope]) -> list[LoadItem]:
    """Serialise and sign every envelope with one timestamp: now (so the phase has the full 300 s)."""
    now = int(time.time())
    items: list[LoadItem] = []
    for envelope in envelopes:
        delivery = make_delivery(secret, envelope, timestamp=now)
        items.append((delivery.body, delivery.headers))
    return items


def expected_keys(secret: str, envelopes: Sequence[Envelope]) -> list[str]:
    """The inbox ``delivery_key`` of each envelope, computed by the service's own function (the key depends
    on the content only, not on the signature or timestamp)."""
    return [delivery_key(parse_envelope(body)) for body, _ in sign_all(secret, envelopes)]


# --------------------------------------------------------------------------------------------------
# One database
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerFigures:
    requests: int
    elapsed_s: float
    requests_per_s: float
    non_200: int
    status_codes: dict[str, int]
    errors: dict[str, int]
    answers: dict[str, int]
    latency_ms: LatencySummary
    server_cpu_ms_per_request: float
    client_cpu_ms_per_request: float
    generator: dict[str, Any]

    @classmethod
    def of(cls, result: LoadResult) -> ServerFigures:
        return cls(
            requests=result.requests,
            elapsed_s=result.elapsed_s,
            requests_per_s=result.throughput,
            non_200=result.non_200,
            status_codes={str(k): v for k, v in sorted(result.status_codes.items())},
            errors=dict(result.errors),
            answers={_answer(body): n for body, n in result.bodies.most_common()},
            latency_ms=result.latency(),
            server_cpu_ms_per_request=result.server_cpu_ms_per_request,
            client_cpu_ms_per_request=result.client_cpu_ms_per_request,
            generator=dict(result.details),
        )


def _answer(body: bytes) -> str:
    try:
        decoded = json.loads(body)
    except ValueError:
        return body[:80].decode("utf-8", "replace")
    if isinstance(decoded, dict) and isinstance(decoded.get("status"), str):
        return str(decoded["status"])
    return body[:80].decode("utf-8", "replace")


@dataclass
class StoredCheck:
    rows: int
    distinct_keys: int
    expected_rows: int
    measured_stored: int
    lost: int
    duplicated: int
    unexpected: int


@dataclass
class DatabaseRun:
    database: str
    bare: ServerFigures
    service: ServerFigures
    warmup_bare: ServerFigures
    warmup_service: ServerFigures
    ratio: float
    stored: StoredCheck
    service_stderr_tail: list[str]
    targets: dict[str, bool | None]
    load_average_1m: float
    """The machine's 1-minute load average when this database's run began (other work competes too)."""


def check_stored(database_url: str, measured: set[str], warmup: set[str]) -> StoredCheck:
    """Count what the inbox holds, by SQL. Warm-up deliveries are stored too (they are real, distinct
    deliveries sent to the same service), so the table must hold exactly N + warm-up rows; the measured
    keys are then checked one by one, so a missing measured delivery cannot hide behind an extra row."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                text("SELECT COUNT(*), COUNT(DISTINCT delivery_key) FROM inbox_event")
            ).one()
            stored = {r[0] for r in conn.execute(text("SELECT delivery_key FROM inbox_event"))}
    finally:
        engine.dispose()
    return StoredCheck(
        rows=int(rows),
        distinct_keys=int(distinct),
        expected_rows=len(measured) + len(warmup),
        measured_stored=len(measured & stored),
        lost=len(measured - stored),
        duplicated=int(rows) - int(distinct),
        unexpected=len(stored - measured - warmup),
    )


def _database(kind: str, pg_admin_url: str) -> AbstractContextManager[str]:
    if kind == "sqlite":
        return temp_sqlite_database("bench_ingest")
    return temp_postgres_database("bench_ingest", admin_url=pg_admin_url)


def _load(
    args: argparse.Namespace, base_url: str, phases: Sequence[PhaseBuilder], cpu_probe: Callable[[], float]
) -> list[LoadResult]:
    """Send the phases with the chosen load generator; one result per phase."""
    if args.tool == "wrk":
        return run_wrk_phases(
            base_url,
            WEBHOOK_PATH,
            phases,
            concurrency=args.concurrency,
            threads=args.wrk_threads,
            cpu_probe=cpu_probe,
            limit_s=SIGNATURE_WINDOW_S,
        )
    return run_async(
        run_phases(
            base_url,
            WEBHOOK_PATH,
            phases,
            concurrency=args.concurrency,
            pool=args.pool,
            cpu_probe=cpu_probe,
        )
    )


def run_database(
    kind: str,
    *,
    args: argparse.Namespace,
    warmup_envelopes: Sequence[Envelope],
    measured_envelopes: Sequence[Envelope],
    warmup_keys: set[str],
    measured_keys: set[str],
) -> DatabaseRun:
    secret = secrets.token_urlsafe(24)
    load_average = os.getloadavg()[0]
    with _database(kind, args.pg_admin_url) as database_url:
        phases: list[PhaseBuilder] = [
            lambda: sign_all(secret, warmup_envelopes),
            lambda: sign_all(secret, measured_envelopes),
        ]
        with uvicorn_server("bench._common:bare_app", name="bare", ready_path="/readyz") as bare:
            warm_bare, bare_result = _load(args, bare.base_url, phases, bare.cpu_seconds)
        env = {
            "DATABASE_URL": database_url,
            "ZOOM_WEBHOOK_SECRET_TOKEN": secret,
            "RUN_WORKER": "false",
            "AUTO_MIGRATE": "true",
            "LOG_LEVEL": "WARNING",
            "ADMIN_API_TOKEN": secrets.token_urlsafe(24),
        }
        with uvicorn_server(
            "app.main:app",
            name="service",
            env=env,
            # No connection to Zoom or HubSpot: the benchmark only stores deliveries.
            unset_env=UNSET_ENV,
            ready_path="/readyz",
            timeout=args.start_timeout,
        ) as service:
            warm_service, service_result = _load(args, service.base_url, phases, service.cpu_seconds)
            stored = check_stored(database_url, measured_keys, warmup_keys)
        stderr_tail = service.stderr_text().rstrip().splitlines()[-20:]

    bare_fig, service_fig = ServerFigures.of(bare_result), ServerFigures.of(service_result)
    ratio = service_fig.requests_per_s / bare_fig.requests_per_s
    accepted = service_fig.answers.get("accepted", 0)
    correct = (
        stored.lost == 0
        and stored.duplicated == 0
        and stored.unexpected == 0
        and stored.rows == stored.expected_rows
        and service_fig.non_200 == 0
        and accepted == len(measured_keys)
    )
    targets: dict[str, bool | None] = {
        "ratio": ratio >= TARGET_RATIO_SQLITE if kind == "sqlite" else None,
        "p99": service_fig.latency_ms.p99_ms <= TARGET_P99_MS,
        "zero_lost_or_duplicated": correct,
    }
    return DatabaseRun(
        database=kind,
        bare=bare_fig,
        service=service_fig,
        warmup_bare=ServerFigures.of(warm_bare),
        warmup_service=ServerFigures.of(warm_service),
        ratio=ratio,
        stored=stored,
        service_stderr_tail=stderr_tail,
        targets=targets,
        load_average_1m=load_average,
    )


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a (no target)" if ok is None else ("PASS" if ok else "MISS")


_COLUMNS = ("req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "non-200", "time s", "srv cpu", "gen cpu")


def _row(label: str, fig: ServerFigures) -> str:
    lat = fig.latency_ms
    return (
        f"  {label:<14}{fig.requests_per_s:>9.0f}{lat.p50_ms:>9.1f}{lat.p95_ms:>9.1f}{lat.p99_ms:>9.1f}"
        f"{lat.max_ms:>9.1f}{fig.non_200:>9}{fig.elapsed_s:>9.1f}"
        f"{fig.server_cpu_ms_per_request:>9.2f}{fig.client_cpu_ms_per_request:>9.2f}"
    )


def report(run: DatabaseRun, *, warmup: int, measured: int) -> Iterator[str]:
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[run.database]
    yield ""
    yield f"== {title} ==  (1-min load average at start: {run.load_average_1m:.2f})"
    yield f"  {'':<14}" + "".join(f"{c:>9}" for c in _COLUMNS)
    yield _row("bare FastAPI", run.bare)
    yield _row("service", run.service)
    yield f"  ratio service / bare: {run.ratio:.2f} (requests/s)"
    cpu_ratio = run.bare.server_cpu_ms_per_request / run.service.server_cpu_ms_per_request
    yield (
        f"  server CPU per request: service {run.service.server_cpu_ms_per_request:.2f} ms, "
        f"bare {run.bare.server_cpu_ms_per_request:.2f} ms (bare / service {cpu_ratio:.2f}); "
        f"load generator {run.service.client_cpu_ms_per_request:.2f} ms"
    )
    svc = run.service
    wrk_ms = svc.generator.get("wrk_corrected_ms")
    if wrk_ms:
        yield (
            f"  service latency as wrk prints it (with its coordinated-omission correction): p50 "
            f"{wrk_ms.get('p50', math.nan):.1f}, p90 {wrk_ms.get('p90', math.nan):.1f}, p99 "
            f"{wrk_ms.get('p99', math.nan):.1f} ms"
        )
    for label, fig in (("bare", run.bare), ("service", run.service)):
        if fig.generator.get("tool") == "wrk" and not fig.generator.get("complete"):
            gen = fig.generator
            yield (
                f"  WARNING: wrk did not get every answer from {label}: sent {gen.get('sent')}, answered "
                f"{gen.get('answered')}, wrk errors {gen.get('wrk_errors')}; wrk stderr: "
                f"{gen.get('wrk_stderr_tail', '')!r}"
            )
    answers = ", ".join(f"{k} {v}" for k, v in svc.answers.items()) or "none"
    codes = ", ".join(f"{k}: {v}" for k, v in svc.status_codes.items())
    yield f"  service answers: status codes {{{codes}}}; 200 bodies: {answers}"
    if svc.errors:
        yield f"  service transport errors: {svc.errors}"
    if run.warmup_service.non_200 or run.warmup_bare.non_200:
        yield (
            f"  warm-up non-200: bare {run.warmup_bare.non_200}, service {run.warmup_service.non_200} "
            f"(codes {run.warmup_service.status_codes})"
        )
    st = run.stored
    yield (
        f"  stored (SQL on inbox_event): {st.rows} rows, {st.distinct_keys} distinct delivery_key; "
        f"expected {st.expected_rows} = {measured} measured + {warmup} warm-up"
    )
    yield (
        f"  measured deliveries stored: {st.measured_stored}/{measured}; lost {st.lost}, "
        f"duplicated {st.duplicated}, unexpected rows {st.unexpected}"
    )
    if max(run.bare.elapsed_s, run.service.elapsed_s) > SIGNATURE_WINDOW_S * 0.9:
        yield "  WARNING: a phase ran close to the 300 s signature window; 401s may follow"
    if run.service_stderr_tail:
        yield "  service stderr (last lines):"
        yield from (f"    | {line}" for line in run.service_stderr_tail)
    ratio_label = f"ratio >= {TARGET_RATIO_SQLITE}" + (" (SQLite)" if run.database == "sqlite" else "")
    yield "  targets:"
    yield f"    {ratio_label:<34}{run.ratio:>10.2f}   {_verdict(run.targets['ratio'])}"
    p99_label = f"p99 <= {TARGET_P99_MS:.0f} ms"
    yield f"    {p99_label:<34}{svc.latency_ms.p99_ms:>10.1f}   {_verdict(run.targets['p99'])}"
    lost_dup = f"{st.lost}/{st.duplicated}"
    yield (
        f"    {'zero lost / duplicated':<34}{lost_dup:>10}   "
        f"{_verdict(run.targets['zero_lost_or_duplicated'])}"
    )


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="measured deliveries per server")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted warm-up deliveries per server")
    parser.add_argument(
        "--pg-admin-url",
        default=DEFAULT_PG_ADMIN_URL,
        help="libpq URL used to create and drop the temporary database (env BENCH_PG_ADMIN_URL)",
    )
    parser.add_argument(
        "--tool",
        choices=LOAD_TOOLS,
        default=default_load_tool(),
        help="load generator: wrk (C; the default when wrk is on PATH) replaying the pre-signed requests, "
        "or httpx (Python, this process)",
    )
    parser.add_argument(
        "--wrk-threads", type=int, default=2, help="wrk threads sharing the --concurrency connections"
    )
    parser.add_argument(
        "--pool",
        choices=POOL_MODES,
        default="per-task",
        help="per-task: one httpx client (one connection) per task; shared: one client with "
        "max_connections=concurrency (httpcore's pool then costs the load generator much more CPU)",
    )
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for /readyz")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or args.wrk_threads < 1:
        parser.error("--requests, --concurrency and --wrk-threads must be >= 1, --warmup >= 0")
    if args.tool == "wrk" and shutil.which("wrk") is None:
        parser.error("--tool wrk: wrk is not on PATH")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    began = time.perf_counter()

    # Warm-up and measured deliveries come from one scenario, so they are all distinct from each other.
    envelopes = build_envelopes(args.warmup + args.requests, seed=20240620)
    warmup_envelopes, measured_envelopes = envelopes[: args.warmup], envelopes[args.warmup :]
    keys = expected_keys("key-does-not-depend-on-the-secret", envelopes)
    if len(set(keys)) != len(keys):
        raise SystemExit("bench bug: the generated deliveries are not distinct")
    warmup_keys, measured_keys = set(keys[: args.warmup]), set(keys[args.warmup :])

    machine = machine_info()
    print(f"Ingest benchmark: POST {WEBHOOK_PATH}, signed {EVENT} deliveries, all distinct")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_usable']} usable), "
        f"{machine['implementation']} {machine['python']}, {machine['platform']}"
    )
    if args.tool == "wrk":
        threads = max(1, min(args.wrk_threads, args.concurrency))
        print(
            f"load: {args.requests} measured + {args.warmup} warm-up requests per server, "
            f"{wrk_version()} -t {threads} -c {args.concurrency // threads * threads} (HTTP/1.1 keep-alive), "
            "replaying the pre-signed requests once each (bench/wrk_replay.lua)"
        )
        print(
            "      req/s = measured POSTs / (last answer - first request); latencies as wrk measured them, "
            "without its coordinated-omission correction"
        )
        generator = f"wrk, {threads} threads"
    else:
        pool = "one client per task" if args.pool == "per-task" else "one shared client"
        print(
            f"load: {args.requests} measured + {args.warmup} warm-up requests per server, "
            f"concurrency {args.concurrency} (httpx AsyncClient, HTTP/1.1 keep-alive, {pool}, "
            f"{machine['client_event_loop']})"
        )
        generator = "one Python process"
    print(
        f"note: the load generator ({generator}) shares the machine's {machine['cpu_usable']} cores "
        "with the server under test, so req/s and latencies include its cost;"
    )
    print(
        "      'srv cpu' / 'gen cpu' = CPU ms per request of the server / load generator. Servers: one "
        "uvicorn process each, RUN_WORKER=false"
    )

    runs: list[DatabaseRun] = []
    for kind in kinds:
        run = run_database(
            kind,
            args=args,
            warmup_envelopes=warmup_envelopes,
            measured_envelopes=measured_envelopes,
            warmup_keys=warmup_keys,
            measured_keys=measured_keys,
        )
        runs.append(run)
        for line in report(run, warmup=args.warmup, measured=args.requests):
            print(line, flush=True)

    total = time.perf_counter() - began
    all_ok = all(ok is not False for run in runs for ok in run.targets.values())
    print()
    print(f"overall: {'PASS' if all_ok else 'MISS'} (total time {total:.0f} s)")

    if args.json is not None:
        document: dict[str, Any] = {
            "benchmark": "ingest",
            "machine": machine,
            "requests": args.requests,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "tool": args.tool,
            "wrk_threads": args.wrk_threads if args.tool == "wrk" else None,
            "targets": {"ratio_sqlite_min": TARGET_RATIO_SQLITE, "p99_ms_max": TARGET_P99_MS},
            "runs": [asdict(run) for run in runs],
            "overall_pass": all_ok,
            "total_s": total,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
