"""Sync engine benchmark: how fast worker processes turn a big webinar's inbox into the local model and plans.

    python bench/process.py [--registrants 10000] [--attendees 8000] [--rejoin-share 0.25]
                            [--db sqlite|postgresql|both] [--batch-size N] [--json out.json]

The events of one big webinar (``app.sandbox.zoom_webhooks.big_webinar``: created, the registrations,
started, every attendee's joins and leaves with a share of rejoins, ended; 30,003 events at full size)
are stored straight into the ``inbox_event`` table of a fresh, migrated database, row by row as
``POST /webhooks/zoom`` would store them (ingest speed is the other benchmark, ``bench/ingest.py``, and is
not counted here). A connection for the webinar's Zoom account and portal settings with
``webinar_sync_enabled`` on are stored too, so planning is exercised.

Then ``python -m app.worker --until-idle`` processes (one on SQLite; one, then two at once, on PostgreSQL,
each run on its own fresh database) are timed from their start until all have exited and SQL shows no
inbox row left pending. Nothing is sent to HubSpot: the outbox is left planned. Peak RSS is sampled per
worker process (psutil RSS and the kernel's VmHWM, every ~50 ms).

After each run the database is checked: every event done (none failed or dead), the registrations, the
attendance marks, and the outbox operations planned (by kind).

Printed: a table (database, workers, events, seconds, events/s, peak RSS per worker, the PostgreSQL
two-worker speed-up) and PASS/MISS against the targets: >= 2,000 events/s for one worker, peak RSS
<= 300 MB per worker, two PostgreSQL workers >= 1.5x one. The workers, the PostgreSQL server and this
script share the same machine's cores; the output says how many. This is a benchmark, not a test: it
exits 0 whatever the figures are (1 only if it could not run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from sqlalchemy import insert, text

from app.db import make_engine
from app.ingest.zoom_events import HANDLED_EVENTS, delivery_key, parse_envelope
from app.migrations import upgrade_to_head
from app.models import Connection, InboxEvent, InboxState, PortalSettings
from app.sandbox.zoom_webhooks import big_webinar
from bench._common import (
    REPO_ROOT,
    machine_info,
    percentile,
    temp_postgres_database,
    temp_sqlite_database,
)

ACCOUNT_ID = "bench_process_account"
WEBINAR_ID = "83456789012"
PORTAL_ID = 40_000_001
TARGET_EVENTS_PER_S = 2000.0
TARGET_PEAK_RSS_MB = 300.0
TARGET_PG_SPEEDUP = 1.5
SAMPLE_INTERVAL_S = 0.05
INSERT_CHUNK = 1000
# Settings a developer's shell may carry that would make the worker talk to real accounts.
UNSET_ENV = (
    "ZOOM_ACCOUNT_ID",
    "ZOOM_CLIENT_ID",
    "ZOOM_CLIENT_SECRET",
    "ZOOM_WEBHOOK_SECRET_TOKEN",
    "HUBSPOT_PORTAL_ID",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_APP_ID",
    "HUBSPOT_CLIENT_SECRET",
    "WORKER_BATCH_SIZE",
    "AUTO_MIGRATE",
)


# --------------------------------------------------------------------------------------------------
# The events, as inbox rows
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    registrants: int
    attendees: int
    rejoin_share: float
    rows: list[dict[str, Any]]  # inbox rows without their timestamps (set when stored)
    by_event: dict[str, int]

    @property
    def events(self) -> int:
        return len(self.rows)

    @property
    def expected_joins(self) -> int:
        return self.attendees + round(self.attendees * self.rejoin_share)


def build_workload(registrants: int, attendees: int, rejoin_share: float) -> Workload:
    """The scenario's envelopes as inbox rows, built like ``app/api/zoom_webhooks.py`` builds them: the raw
    body is the compact JSON a Zoom delivery carries (``make_delivery``'s serialisation), the key comes from
    ``parse_envelope`` + ``delivery_key``, handled events are pending."""
    scenario = big_webinar(
        ACCOUNT_ID, WEBINAR_ID, registrants=registrants, attendees=attendees, rejoin_share=rejoin_share
    )
    rows: list[dict[str, Any]] = []
    by_event: dict[str, int] = {}
    keys: set[str] = set()
    for envelope in scenario.envelopes:
        raw = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        parsed = parse_envelope(raw)
        if parsed.event not in HANDLED_EVENTS:
            raise SystemExit(f"scenario produced an event the service does not handle: {parsed.event}")
        key = delivery_key(parsed)
        if key in keys:
            raise SystemExit(f"scenario produced two deliveries with one key ({parsed.event})")
        keys.add(key)
        by_event[parsed.event] = by_event.get(parsed.event, 0) + 1
        rows.append(
            {
                "delivery_key": key,
                "event": parsed.event[:100],
                "event_ts": parsed.event_ts,
                "zoom_account_id": (parsed.account_id or "")[:64] or None,
                "webinar_id": (parsed.webinar_id or "")[:32] or None,
                "raw_body": raw,
                "state": InboxState.PENDING.value,
                "attempts": 0,
                "locked_until": None,
                "last_error": None,
                "processed_at": None,
            }
        )
    return Workload(registrants, attendees, rejoin_share, rows, dict(sorted(by_event.items())))


def prepare_database(url: str, workload: Workload) -> float:
    """Migrate, store the connection, the portal settings and every inbox row. Returns the seconds taken."""
    began = time.perf_counter()
    engine = make_engine(url)
    try:
        upgrade_to_head(engine, url)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                # SQLModel's types declare no __table__ on table models (it exists at runtime).
                insert(Connection.__table__),  # type: ignore[attr-defined]
                {
                    "portal_id": PORTAL_ID,
                    "zoom_account_id": ACCOUNT_ID,
                    "business_unit_id": 0,
                    "is_primary": True,
                    "created_at": now,
                },
            )
            conn.execute(
                # SQLModel's types declare no __table__ on table models (it exists at runtime).
                insert(PortalSettings.__table__),  # type: ignore[attr-defined]
                {
                    "portal_id": PORTAL_ID,
                    "global_sync_enabled": True,
                    "webinar_sync_enabled": True,
                    "recording_sync": "none",
                    "recording_sync_users": [],
                    "exclusion_domains": [],
                    "recording_exclusion_domains": [],
                    "contact_exclusion_domains": [],
                    "updated_at": now,
                },
            )
            # SQLModel's types declare no __table__ on table models (it exists at runtime).
            stmt = insert(InboxEvent.__table__)  # type: ignore[attr-defined]
            for start in range(0, workload.events, INSERT_CHUNK):
                chunk = workload.rows[start : start + INSERT_CHUNK]
                conn.execute(stmt, [{**row, "received_at": now, "next_attempt_at": now} for row in chunk])
        if engine.dialect.name == "postgresql":
            # Fresh statistics, as autovacuum would have gathered shortly after such a burst.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        with engine.connect() as conn:
            pending = conn.execute(
                text("SELECT COUNT(*) FROM inbox_event WHERE state = 'pending'")
            ).scalar_one()
        if pending != workload.events:
            raise SystemExit(f"ingest stored {pending} pending rows, expected {workload.events}")
    finally:
        engine.dispose()
    return time.perf_counter() - began


# --------------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------------


@dataclass
class WorkerFigures:
    pid: int
    exit_code: int | None
    exit_after_s: float
    exit_wall: float | None  # epoch seconds, to compare with the rows' processed_at
    peak_rss_mb: float  # max of the sampled RSS and the last VmHWM read
    sampled_rss_mb: float
    vm_hwm_mb: float
    samples: int
    conflicts: int  # batches rolled back after a database conflict (logged as warnings)
    stderr_lines: int
    stderr_tail: list[str]


@dataclass
class _Watched:
    process: subprocess.Popen[bytes]
    stderr_path: Path
    max_rss: int = 0
    max_hwm: int = 0
    samples: int = 0
    exited_at: float | None = None
    exited_wall: float | None = None


def _worker_env(database_url: str, batch_size: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    env["DATABASE_URL"] = database_url
    env["LOG_LEVEL"] = "WARNING"
    env["RUN_WORKER"] = "false"
    if batch_size is not None:
        env["WORKER_BATCH_SIZE"] = str(batch_size)
    return env


def _vm_hwm_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM) so far, from /proc; 0 where unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _sample(watched: list[_Watched], stop: threading.Event) -> None:
    handles: dict[int, psutil.Process] = {}
    while not stop.is_set():
        for w in watched:
            pid = w.process.pid
            if w.exited_at is not None:
                continue
            try:
                handle = handles.get(pid) or handles.setdefault(pid, psutil.Process(pid))
                rss = handle.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            hwm = _vm_hwm_bytes(pid)
            w.max_rss = max(w.max_rss, rss)
            w.max_hwm = max(w.max_hwm, hwm)
            w.samples += 1
        stop.wait(SAMPLE_INTERVAL_S)


def run_workers(
    database_url: str, count: int, batch_size: int | None, log_dir: Path, timeout_s: float
) -> tuple[float, list[WorkerFigures]]:
    """Start ``count`` workers at once; wait until every one has exited. Returns (seconds, figures)."""
    env = _worker_env(database_url, batch_size)
    cmd = [sys.executable, "-m", "app.worker", "--until-idle"]
    watched: list[_Watched] = []
    stop = threading.Event()
    began = time.perf_counter()
    try:
        for n in range(count):
            stderr_path = log_dir / f"worker{n}.stderr.log"
            with stderr_path.open("wb") as err:
                process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            watched.append(_Watched(process, stderr_path))
        sampler = threading.Thread(target=_sample, args=(watched, stop), daemon=True)
        sampler.start()
        deadline = began + timeout_s
        while any(w.exited_at is None for w in watched):
            for w in watched:
                if w.exited_at is None and w.process.poll() is not None:
                    w.exited_at = time.perf_counter()
                    w.exited_wall = time.time()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"workers still running after {timeout_s:.0f} s")
            time.sleep(0.01)
        elapsed = max(w.exited_at or began for w in watched) - began
    finally:
        stop.set()
        for w in watched:
            if w.process.poll() is None:
                w.process.kill()
                w.process.wait(10)
    figures = []
    for w in watched:
        stderr = w.stderr_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        figures.append(
            WorkerFigures(
                pid=w.process.pid,
                exit_code=w.process.returncode,
                exit_after_s=round((w.exited_at or began) - began, 3),
                exit_wall=w.exited_wall,
                peak_rss_mb=round(max(w.max_rss, w.max_hwm) / 2**20, 1),
                sampled_rss_mb=round(w.max_rss / 2**20, 1),
                vm_hwm_mb=round(w.max_hwm / 2**20, 1),
                samples=w.samples,
                conflicts=sum("database conflict" in line for line in stderr),
                stderr_lines=len(stderr),
                stderr_tail=stderr[-15:],
            )
        )
    return elapsed, figures


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


@dataclass
class DatabaseCheck:
    inbox_by_state: dict[str, int]
    registrations: int
    join_marks: int
    distinct_join_sessions: int
    distinct_attendees: int
    leave_marks: int
    webinar_ended: bool
    outbox_pending_by_kind: dict[str, int]
    outbox_pending: int
    outbox_plannings: int  # SUM(planned_version): how many times operations were (re)planned in all
    audit_by_code: dict[str, int]
    processing_span_s: float | None  # first to last processed_at (the workers' busy time, roughly)
    batch_starts: list[tuple[float, int]]  # (processed_at as epoch s, rows) per batch, in time order
    ended_batch_start: float | None  # processed_at of the batch holding webinar.ended
    problems: list[str] = field(default_factory=list)


def check_database(url: str, workload: Workload) -> DatabaseCheck:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            inbox = {
                str(s): int(n)
                for s, n in conn.execute(
                    text("SELECT state, COUNT(*) FROM inbox_event GROUP BY state ORDER BY state")
                )
            }
            registrations = conn.execute(
                text("SELECT COUNT(*) FROM registration WHERE zoom_account_id = :a AND webinar_id = :w"),
                {"a": ACCOUNT_ID, "w": WEBINAR_ID},
            ).scalar_one()
            joins, sessions, people = conn.execute(
                text(
                    "SELECT COUNT(*), COUNT(DISTINCT session_key), COUNT(DISTINCT person_key) "
                    "FROM attendance_mark WHERE zoom_account_id = :a AND webinar_id = :w AND kind = 'join'"
                ),
                {"a": ACCOUNT_ID, "w": WEBINAR_ID},
            ).one()
            leaves = conn.execute(
                text(
                    "SELECT COUNT(*) FROM attendance_mark "
                    "WHERE zoom_account_id = :a AND webinar_id = :w AND kind = 'leave'"
                ),
                {"a": ACCOUNT_ID, "w": WEBINAR_ID},
            ).scalar_one()
            ended = conn.execute(
                text("SELECT actual_end_at FROM webinar WHERE zoom_account_id = :a AND webinar_id = :w"),
                {"a": ACCOUNT_ID, "w": WEBINAR_ID},
            ).scalar_one_or_none()
            outbox = {
                str(k): int(n)
                for k, n in conn.execute(
                    text(
                        "SELECT kind, COUNT(*) FROM outbox_op WHERE state = 'pending' "
                        "GROUP BY kind ORDER BY kind"
                    )
                )
            }
            plannings = conn.execute(
                text("SELECT COALESCE(SUM(planned_version), 0) FROM outbox_op")
            ).scalar_one()
            audit = {
                str(k): int(n)
                for k, n in conn.execute(
                    text("SELECT code, COUNT(*) FROM audit_entry GROUP BY code ORDER BY code")
                )
            }
            # Every row of a batch gets the same processed_at (taken when the batch starts processing).
            batches = [
                (_epoch(at), int(n))
                for at, n in conn.execute(
                    text(
                        "SELECT processed_at, COUNT(*) FROM inbox_event WHERE processed_at IS NOT NULL "
                        "GROUP BY processed_at ORDER BY processed_at"
                    )
                )
            ]
            ended_at = conn.execute(
                text("SELECT MAX(processed_at) FROM inbox_event WHERE event = 'webinar.ended'")
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    span = round(batches[-1][0] - batches[0][0], 3) if batches else None
    check = DatabaseCheck(
        inbox_by_state=inbox,
        registrations=int(registrations),
        join_marks=int(joins),
        distinct_join_sessions=int(sessions),
        distinct_attendees=int(people),
        leave_marks=int(leaves),
        webinar_ended=ended is not None,
        outbox_pending_by_kind=outbox,
        outbox_pending=sum(outbox.values()),
        outbox_plannings=int(plannings),
        audit_by_code=audit,
        processing_span_s=span,
        batch_starts=batches,
        ended_batch_start=_epoch(ended_at) if ended_at is not None else None,
    )
    expected = {
        "inbox rows done": (inbox.get("done", 0), workload.events),
        "inbox rows pending": (inbox.get("pending", 0), 0),
        "inbox rows failed": (inbox.get("failed", 0), 0),
        "inbox rows dead": (inbox.get("dead", 0), 0),
        "registrations": (check.registrations, workload.registrants),
        "join marks": (check.join_marks, workload.expected_joins),
        "distinct attendees (join marks)": (check.distinct_attendees, workload.attendees),
        "leave marks": (check.leave_marks, workload.expected_joins),
    }
    for what, (got, want) in expected.items():
        if got != want:
            check.problems.append(f"{what}: {got}, expected {want}")
    if not check.webinar_ended:
        check.problems.append("webinar has no actual end")
    if check.outbox_pending == 0:
        check.problems.append("no outbox operation planned")
    return check


def _epoch(value: Any) -> float:
    """A processed_at value read by raw SQL (a string on SQLite, naive UTC) as epoch seconds."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass
class BatchTimes:
    """Batch durations of a one-worker run, from the processed_at of consecutive batches."""

    batches: int
    median_s: float | None
    p90_s: float | None
    max_s: float | None  # of all batches but the last
    last_batch_s: float | None  # last batch start to the worker's exit
    last_batch_rows: int | None
    last_batch_has_ended: bool


def batch_times(check: DatabaseCheck, figures: Sequence[WorkerFigures]) -> BatchTimes:
    starts = check.batch_starts
    gaps = sorted(b[0] - a[0] for a, b in pairwise(starts))
    exits = [w.exit_wall for w in figures if w.exit_wall is not None]
    last_s = round(max(exits) - starts[-1][0], 3) if starts and exits else None
    return BatchTimes(
        batches=len(starts),
        median_s=round(percentile(gaps, 50, presorted=True), 3) if gaps else None,
        p90_s=round(percentile(gaps, 90, presorted=True), 3) if gaps else None,
        max_s=round(gaps[-1], 3) if gaps else None,
        last_batch_s=last_s,
        last_batch_rows=starts[-1][1] if starts else None,
        last_batch_has_ended=bool(starts) and check.ended_batch_start == starts[-1][0],
    )


def pending_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT COUNT(*) FROM inbox_event WHERE state = 'pending'")).scalar_one()
            )
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    database: str
    workers: int
    events: int
    batch_size: int | None
    ingest_s: float
    seconds: float
    events_per_s: float
    workers_figures: list[WorkerFigures]
    idle_startup_s: float  # one worker started on the drained inbox: start-up, one empty poll, exit
    extra_rounds: int  # workers started again because rows were still pending after all had exited
    pending_after: int
    check: DatabaseCheck
    batch_times: BatchTimes | None  # one-worker runs only
    load_avg_before: tuple[float, float, float]
    notes: list[str]

    @property
    def peak_rss_mb(self) -> float:
        return max((w.peak_rss_mb for w in self.workers_figures), default=0.0)


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    factory = temp_sqlite_database if kind == "sqlite" else temp_postgres_database
    with factory(prefix="bench_process") as url:
        yield url


def run_one(kind: str, workers: int, workload: Workload, args: argparse.Namespace) -> Run:
    label = f"{kind}, {workers} worker{'s' if workers > 1 else ''}"
    print(f"[{label}] preparing a fresh database ...", flush=True)
    with fresh_database(kind) as url, tempfile.TemporaryDirectory(prefix="bench_process_logs_") as logs:
        ingest_s = prepare_database(url, workload)
        print(
            f"[{label}] stored {workload.events} inbox rows in {ingest_s:.1f} s (not counted); "
            "starting the workers",
            flush=True,
        )
        log_dir = Path(logs)
        load_before = os.getloadavg()
        if load_before[0] > 1.0:
            print(f"[{label}] note: 1-min load average is {load_before[0]:.1f} before the run", flush=True)
        began = time.perf_counter()
        seconds, figures = run_workers(url, workers, args.batch_size, log_dir, args.timeout)
        pending = pending_count(url)
        notes: list[str] = []
        rounds = 0
        # Rows put back for a retry (a conflict, a failure) wait for their next_attempt_at; a worker that
        # found nothing due has exited. Keep starting one until nothing is pending, and say so.
        while pending and rounds < args.max_extra_rounds:
            rounds += 1
            time.sleep(1.0)
            _, more = run_workers(url, 1, args.batch_size, log_dir, args.timeout)
            figures.extend(more)
            pending = pending_count(url)
        if rounds:
            seconds = time.perf_counter() - began
            notes.append(f"{rounds} extra worker round(s) were needed for rows pending after all had exited")
        if pending:
            notes.append(f"{pending} inbox rows still pending after {rounds} extra round(s)")
        for n, w in enumerate(figures):
            if w.exit_code != 0:
                notes.append(f"worker {n} exited with code {w.exit_code}: {' | '.join(w.stderr_tail[-3:])}")
        if workers > 1:
            exits = [w.exit_after_s for w in figures[:workers]]
            if min(exits) < 0.8 * max(exits):
                notes.append(
                    "a worker exited early (exit times "
                    + ", ".join(f"{e:.2f} s" for e in exits)
                    + "): the run was not fully parallel"
                )
        check = check_database(url, workload)
        idle_s, _ = run_workers(url, 1, args.batch_size, log_dir, args.timeout)
    run = Run(
        database=kind,
        workers=workers,
        events=workload.events,
        batch_size=args.batch_size,
        ingest_s=round(ingest_s, 2),
        seconds=round(seconds, 3),
        events_per_s=round(workload.events / seconds, 1) if seconds > 0 else float("nan"),
        workers_figures=figures,
        idle_startup_s=round(idle_s, 3),
        extra_rounds=rounds,
        pending_after=pending,
        check=check,
        batch_times=batch_times(check, figures) if workers == 1 and not rounds else None,
        load_avg_before=load_before,
        notes=notes,
    )
    print(
        f"[{label}] {run.seconds:.2f} s, {run.events_per_s:,.0f} events/s, "
        f"peak RSS {', '.join(f'{w.peak_rss_mb:.0f}' for w in figures)} MB",
        flush=True,
    )
    print_check(label, run)
    return run


def print_check(label: str, run: Run) -> None:
    c = run.check
    print(
        f"[{label}] check: inbox {c.inbox_by_state}; registrations {c.registrations}; "
        f"join marks {c.join_marks} ({c.distinct_join_sessions} sessions, {c.distinct_attendees} people); "
        f"leave marks {c.leave_marks}; webinar ended: {c.webinar_ended}"
    )
    print(
        f"[{label}] outbox pending: {c.outbox_pending} "
        f"({', '.join(f'{k} {n}' for k, n in c.outbox_pending_by_kind.items()) or 'none'}); "
        f"planned {c.outbox_plannings} times in all (sum of planned_version)"
    )
    print(
        f"[{label}] audit entries: {c.audit_by_code or 'none'}; "
        f"first→last batch start: {c.processing_span_s} s; load average before: "
        + " ".join(f"{x:.1f}" for x in run.load_avg_before)
    )
    b = run.batch_times
    if b is not None:
        print(
            f"[{label}] batches: {b.batches}; duration median {b.median_s} s, p90 {b.p90_s} s, "
            f"max {b.max_s} s (all but the last); last batch {b.last_batch_s} s for {b.last_batch_rows} rows"
            + (" (holds webinar.ended: plans everyone)" if b.last_batch_has_ended else "")
        )
    for problem in c.problems:
        print(f"[{label}] CHECK FAILED: {problem}")
    for note in run.notes:
        print(f"[{label}] note: {note}")
    print(flush=True)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def report(runs: Sequence[Run], workload: Workload, machine: dict[str, Any]) -> dict[str, Any]:
    print("=" * 100)
    print(
        f"sync engine benchmark: {workload.events} events ({workload.registrants} registrants, "
        f"{workload.attendees} attendees, rejoin share {workload.rejoin_share})"
    )
    print("by event: " + ", ".join(f"{k} {n}" for k, n in workload.by_event.items()))
    print(
        f"machine: {machine['cpu_count']} logical CPUs ({machine['cpu_usable']} usable), Python "
        f"{machine['python']}; the workers, PostgreSQL and this script all share these cores"
    )
    print(
        "time = from starting the worker process(es) (interpreter start-up and imports included) until all "
        "exited and SQL shows 0 pending; the outbox is left planned (no HubSpot calls)"
    )
    print(
        "busy s = first to last batch start (inbox processed_at; excludes start-up and the last batch); "
        "idle start s = one worker started on the drained inbox (start-up + one empty poll + exit); "
        "conflicts = batches rolled back after a database conflict and redone"
    )
    print()
    header = (
        f"{'database':<11} {'workers':>7} {'events':>7} {'seconds':>8} {'events/s':>9} {'busy s':>7} "
        f"{'idle start s':>12} {'conflicts':>9}  {'peak RSS MB per worker':<23} {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    one_pg = next((r for r in runs if r.database == "postgresql" and r.workers == 1), None)
    speedup: float | None = None
    for run in runs:
        ratio = ""
        if run.database == "postgresql" and run.workers == 2 and one_pg is not None:
            speedup = run.events_per_s / one_pg.events_per_s
            ratio = f"{speedup:.2f}x"
        rss = ", ".join(f"{w.peak_rss_mb:.0f}" for w in run.workers_figures)
        busy = f"{run.check.processing_span_s:.2f}" if run.check.processing_span_s is not None else "?"
        conflicts = sum(w.conflicts for w in run.workers_figures)
        print(
            f"{run.database:<11} {run.workers:>7} {run.events:>7} {run.seconds:>8.2f} "
            f"{run.events_per_s:>9,.0f} {busy:>7} {run.idle_startup_s:>12.2f} {conflicts:>9}  "
            f"{rss:<23} {ratio:>8}"
        )
    print()
    targets: dict[str, bool | None] = {}
    lines: list[str] = []
    for run in runs:
        if run.workers == 1:
            ok = run.events_per_s >= TARGET_EVENTS_PER_S
            key = f"{run.database} 1 worker >= {TARGET_EVENTS_PER_S:,.0f} events/s"
            targets[key] = ok
            lines.append(f"{verdict(ok)} {key}: {run.events_per_s:,.0f} events/s")
    for run in runs:
        ok = run.peak_rss_mb <= TARGET_PEAK_RSS_MB
        key = f"{run.database} {run.workers} worker(s) peak RSS <= {TARGET_PEAK_RSS_MB:.0f} MB"
        targets[key] = ok
        lines.append(f"{verdict(ok)} {key}: {run.peak_rss_mb:.0f} MB")
    if any(r.database == "postgresql" for r in runs):
        key = f"postgresql 2 workers >= {TARGET_PG_SPEEDUP}x 1 worker"
        speedup_ok = None if speedup is None else speedup >= TARGET_PG_SPEEDUP
        targets[key] = speedup_ok
        lines.append(
            f"{verdict(speedup_ok)} {key}: " + (f"{speedup:.2f}x" if speedup is not None else "not measured")
        )
    for run in runs:
        ok = not run.check.problems and not run.pending_after
        key = f"{run.database} {run.workers} worker(s) correctness checks"
        targets[key] = ok
        lines.append(f"{'PASS' if ok else 'FAIL'} {key}" + ("" if ok else f": {run.check.problems}"))
    for line in lines:
        print(line)
    loads = ", ".join(f"{r.database}/{r.workers}: {r.load_avg_before[0]:.1f}" for r in runs)
    print(f"1-min load average before each run: {loads}")
    if any(r.load_avg_before[0] > 0.5 * machine["cpu_usable"] for r in runs):
        print(
            "note: other processes were using the CPUs during some runs; the figures (and the speed-up "
            "ratio, whose two runs may have seen different loads) are lower bounds and vary between runs"
        )
    if machine["cpu_usable"] <= 2:
        print(
            f"note: only {machine['cpu_usable']} CPUs here, shared by the workers and PostgreSQL itself: two "
            "PostgreSQL workers plus the server compete for them, which caps the two-worker speed-up"
        )
    return {
        "workload": {
            "registrants": workload.registrants,
            "attendees": workload.attendees,
            "rejoin_share": workload.rejoin_share,
            "events": workload.events,
            "by_event": workload.by_event,
        },
        "machine": machine,
        "targets": {
            "events_per_s_one_worker": TARGET_EVENTS_PER_S,
            "peak_rss_mb": TARGET_PEAK_RSS_MB,
            "postgresql_two_worker_speedup": TARGET_PG_SPEEDUP,
        },
        "runs": [asdict(r) | {"peak_rss_mb": r.peak_rss_mb} for r in runs],
        "postgresql_two_worker_speedup": speedup,
        "results": targets,
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registrants", type=int, default=10_000)
    parser.add_argument("--attendees", type=int, default=8_000)
    parser.add_argument("--rejoin-share", type=float, default=0.25)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="WORKER_BATCH_SIZE (default: the service's)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a worker run is abandoned"
    )
    parser.add_argument("--max-extra-rounds", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 0 <= args.attendees <= args.registrants:
        parser.error("need 0 <= --attendees <= --registrants")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    print(
        f"building the scenario ({args.registrants} registrants, {args.attendees} attendees) ...", flush=True
    )
    workload = build_workload(args.registrants, args.attendees, args.rejoin_share)
    print(f"{workload.events} events: {workload.by_event}", flush=True)
    plan: list[tuple[str, int]] = []
    if args.db in ("sqlite", "both"):
        plan.append(("sqlite", 1))
    if args.db in ("postgresql", "both"):
        plan += [("postgresql", 1), ("postgresql", 2)]
    runs: list[Run] = []
    try:
        for kind, workers in plan:
            runs.append(run_one(kind, workers, workload, args))
    except Exception as exc:
        print(f"benchmark could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not runs:
            return 1
    summary = report(runs, workload, machine)
    summary["batch_size"] = args.batch_size
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
