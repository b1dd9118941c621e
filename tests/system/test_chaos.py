"""Chaos: the service as operators run it (an API process and two `python -m app.worker` processes on
PostgreSQL, HubSpot behind the sandbox served over HTTP), disturbed on purpose, must leave HubSpot
exactly as an undisturbed run does.

Disturbances, all in one run of a mid-sized webinar:

* the API is killed with SIGKILL in the middle of the webhook burst and started again on the same
  port; the sender behaves like Zoom (anything but a 200 is sent again a moment later);
* a worker is killed with SIGKILL at random moments (seeded) while the inbox is processed and while
  operations are delivered, and a fresh one is started each time;
* HubSpot answers a share of requests with 5xx, a burst of 429s and is down for a few seconds.

Checked afterwards: every delivery the API answered 200 is in the inbox (stored before the answer);
nothing is pending, failed or dead; the HubSpot sandbox snapshot (contacts and their properties,
timeline events with tokens and timestamps, the marketing event with every contact's state) equals the
snapshot of the same webinar delivered in order, in-process, with nothing disturbed.

A second test measures recovery after `kill -9` of the only worker while it is delivering: its
leases end within the lease time of its last heartbeat, and a fresh worker picks the operations up.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.db import make_engine
from app.migrations import upgrade_to_head
from app.sandbox.hubspot import create_hubspot_sandbox
from app.sandbox.zoom_webhooks import Delivery, big_webinar, make_delivery
from bench._common import UvicornProcess, free_port, start_uvicorn
from tests.fixtures.databases import Database, fresh_pg_database
from tests.fixtures.hubspot_views import hubspot_snapshot
from tests.fixtures.service import ACCOUNT_ID, ADMIN, ADMIN_TOKEN, PORTAL_ID, ZOOM_SECRET, make_settings
from tests.fixtures.service import running_app as running_app_in_process

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.anyio]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HS_TOKEN = "chaos-hs-token"
APP_ID = "1001"
WEBINAR_ID = "87000000001"
REGISTRANTS = 300
ATTENDEES = 200
SETTLE_S = 2.0
SEED = int(os.environ.get("CHAOS_SEED", "20261203"))
# Safety net only: a run that has not converged by then has failed (it takes well under a minute).
CONVERGE_TIMEOUT_S = 180.0
# What the service is told: more attempts than the faults can use up (10 % errors, a 429 burst, a few
# seconds down), quick retries, and the settle period of the in-process reference run.
SERVICE_ENV = {
    "ZOOM_WEBHOOK_SECRET_TOKEN": ZOOM_SECRET,
    "ADMIN_API_TOKEN": ADMIN_TOKEN,
    "ZOOM_ACCOUNT_ID": ACCOUNT_ID,
    "HUBSPOT_PORTAL_ID": str(PORTAL_ID),
    "HUBSPOT_ACCESS_TOKEN": HS_TOKEN,
    "HUBSPOT_APP_ID": APP_ID,
    "HUBSPOT_RATE_LIMIT_PER_10S": "1000",
    "ATTENDANCE_SETTLE_S": str(SETTLE_S),
    "RECONCILE_DELAY_S": "0",
    "DISPATCH_MAX_ATTEMPTS": "15",
    "DISPATCH_RETRY_BASE_S": "0.1",
    "WORKER_POLL_INTERVAL_S": "0.05",
    "LOG_LEVEL": "WARNING",
    "ZOOM_HUBSPOT_DEMO": "0",
}
# A developer's shell may carry settings that would point the processes elsewhere.
UNSET_ENV = (
    "ZOOM_CLIENT_ID",
    "ZOOM_CLIENT_SECRET",
    "HUBSPOT_CLIENT_SECRET",
    "WORKER_BATCH_SIZE",
    "PUBLIC_BASE_URL",
    "DATABASE_URL",
)


def envelopes() -> list[dict[str, Any]]:
    scenario = big_webinar(ACCOUNT_ID, WEBINAR_ID, registrants=REGISTRANTS, attendees=ATTENDEES, seed=3)
    return [dict(e) for e in scenario.envelopes]


def sandbox_kwargs() -> dict[str, Any]:
    """The HubSpot sandbox both runs use (the chaos run's is served by `python -m app.sandbox.hubspot`
    with the same arguments)."""
    return {"tokens": {HS_TOKEN: PORTAL_ID}, "app_id": APP_ID, "rate_limit": 1000, "window_s": 10.0}


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def process_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    env.update(SERVICE_ENV)
    env.update(extra)
    return env


@dataclass
class Cluster:
    """The service's processes: one API (`RUN_WORKER=false`) and a set of workers."""

    database_url: str
    hubspot_url: str
    logs: Path
    api_port: int = field(default_factory=free_port)
    api: UvicornProcess | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[str] = field(default_factory=list)
    _started: int = 0

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "HUBSPOT_API_BASE_URL": self.hubspot_url}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self) -> None:
        extra = {**self.env, "RUN_WORKER": "false", "AUTO_MIGRATE": "false"}
        self.api = start_uvicorn(
            "app.main:app", name="chaos_api", env=process_env(extra), port=self.api_port, timeout=60
        )

    def kill_api(self) -> None:
        assert self.api is not None
        self.api.process.send_signal(signal.SIGKILL)
        self.api.process.wait(10)
        self.api.stop()  # keeps its stderr, removes its log directory
        self.kills.append("api")

    def start_worker(self) -> subprocess.Popen[bytes]:
        self._started += 1
        log = (self.logs / f"worker{self._started}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "app.worker"],
            cwd=PROJECT_ROOT,
            env=process_env({**self.env, "RUN_WORKER": "true"}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.workers.append(process)
        return process

    def kill_worker(self, rng: random.Random) -> None:
        alive = [w for w in self.workers if w.poll() is None]
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.workers.remove(victim)
        self.kills.append(f"worker pid {victim.pid}")
        self.start_worker()

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(5)
        if self.api is not None:
            self.api.stop()

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker*.log")))


@contextmanager
def hubspot_sandbox_process() -> Iterator[UvicornProcess]:
    kwargs = sandbox_kwargs()
    [(token, portal)] = kwargs["tokens"].items()
    port = free_port()
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    cmd = [
        sys.executable,
        "-m",
        "app.sandbox.hubspot",
        str(port),
        "--token",
        f"{token}={portal}",
        "--app-id",
        kwargs["app_id"],
        "--rate-limit",
        str(kwargs["rate_limit"]),
        "--window",
        str(kwargs["window_s"]),
    ]
    process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = UvicornProcess(
        name="hubspot_sandbox", host="127.0.0.1", port=port, process=process, log_dir=log_dir
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.base_url}/_sandbox/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"HubSpot sandbox did not start: {process.stderr and process.stderr.read()!r}")
        time.sleep(0.1)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


# --------------------------------------------------------------------------------------------------
# Sending like Zoom: anything but a 200 is sent again
# --------------------------------------------------------------------------------------------------


@dataclass
class SendLog:
    answered_200: list[bytes] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)
    sent: int = 0

    def count(self, what: str) -> None:
        self.other[what] = self.other.get(what, 0) + 1


async def send_all(url: str, deliveries: Sequence[Delivery], log: SendLog, concurrency: int = 8) -> None:
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in deliveries:
        queue.put_nowait(d)

    async def sender(client: httpx.AsyncClient) -> None:
        while True:
            try:
                delivery = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while True:
                log.sent += 1
                try:
                    r = await client.post("/webhooks/zoom", content=delivery.body, headers=delivery.headers)
                except httpx.HTTPError as exc:
                    log.count(type(exc).__name__)
                else:
                    if r.status_code == 200:
                        log.answered_200.append(delivery.body)
                        break
                    log.count(str(r.status_code))
                await asyncio.sleep(0.2)

    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/v1/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_converged(client: httpx.AsyncClient, cluster: Cluster | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while True:
        body = await status(client)
        if body["pending"] == 0:
            return body
        if time.monotonic() > deadline:
            logs = cluster.worker_logs() if cluster else ""
            raise AssertionError(f"not converged after {CONVERGE_TIMEOUT_S} s: {body}\n{logs}")
        await asyncio.sleep(0.2)


def stored_bodies(engine: Engine) -> set[bytes]:
    with engine.connect() as conn:
        return {bytes(row[0]) for row in conn.execute(text("SELECT raw_body FROM inbox_event"))}


# --------------------------------------------------------------------------------------------------
# The undisturbed reference
# --------------------------------------------------------------------------------------------------


async def reference_snapshot(tmp_path: Path, all_envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    engine = make_engine(url)
    upgrade_to_head(engine, url)
    db = Database(url, engine, "sqlite")
    sandbox_app = create_hubspot_sandbox(**sandbox_kwargs())
    transport = httpx.ASGITransport(app=sandbox_app)
    settings = make_settings(
        db,
        run_worker=True,
        worker_poll_interval_s=0.05,
        hubspot_access_token=HS_TOKEN,
        hubspot_api_base_url="http://hubspot.test",
        hubspot_app_id=APP_ID,
        hubspot_rate_limit_per_10s=1000,
        dispatch_retry_base_s=0.05,
        attendance_settle_s=SETTLE_S,
        reconcile_delay_s=0,
    )
    try:
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs,
            running_app_in_process(settings, hubspot_transport=transport) as client,
        ):
            r = await client.patch(
                f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json={"webinar_sync_enabled": True}
            )
            assert r.status_code == 200, r.text
            for envelope in all_envelopes:
                d = make_delivery(ZOOM_SECRET, envelope)
                r = await client.post("/webhooks/zoom", content=d.body, headers=d.headers)
                assert r.status_code == 200, r.text
            done = await wait_converged(client)
            assert done["failed"] == 0 and done["dead"] == 0, done
            state: dict[str, Any] = (await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json()
    finally:
        engine.dispose()
    return hubspot_snapshot(state)


# --------------------------------------------------------------------------------------------------
# The disturbed run
# --------------------------------------------------------------------------------------------------


async def set_faults(hs: httpx.AsyncClient, **faults: Any) -> None:
    r = await hs.post("/_sandbox/faults", json=faults)
    assert r.status_code < 300, r.text


async def kill_workers_at_random(cluster: Cluster, rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(0.5, 2.5))
        except TimeoutError:
            await asyncio.to_thread(cluster.kill_worker, rng)


async def hubspot_faults(hs: httpx.AsyncClient, stop: asyncio.Event) -> None:
    """10 % 5xx from the start, then a burst of 429s, then HubSpot down for 3 s, then healthy."""
    await set_faults(hs, error_rate=0.1, seed=SEED)
    await asyncio.sleep(2.0)
    await set_faults(hs, burst_429=25)
    await asyncio.sleep(2.0)
    await set_faults(hs, down=True)
    await asyncio.sleep(3.0)
    await set_faults(hs, down=False)
    await stop.wait()
    await set_faults(hs, error_rate=0.0, burst_429=0, down=False)


async def disturbed_run(
    cluster: Cluster, hs: httpx.AsyncClient, all_envelopes: list[dict[str, Any]]
) -> tuple[dict[str, Any], SendLog, dict[str, Any]]:
    rng = random.Random(SEED)
    cluster.start_api()
    for _ in range(2):
        cluster.start_worker()
    log = SendLog()
    async with httpx.AsyncClient(base_url=cluster.api_url, timeout=10.0) as client:
        r = await client.patch(
            f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json={"webinar_sync_enabled": True}
        )
        assert r.status_code == 200, r.text
        stop_chaos = asyncio.Event()
        faults = asyncio.create_task(hubspot_faults(hs, stop_chaos))
        killer = asyncio.create_task(kill_workers_at_random(cluster, rng, stop_chaos))
        deliveries = [make_delivery(ZOOM_SECRET, e) for e in all_envelopes]
        sending = asyncio.create_task(send_all(cluster.api_url, deliveries, log))
        # The API dies in the middle of the burst and comes back on the same port.
        while len(log.answered_200) < len(deliveries) // 3:  # noqa: ASYNC110 - polls another task's count
            await asyncio.sleep(0.01)
        await asyncio.to_thread(cluster.kill_api)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.start_api)
        await sending
        # Keep killing workers while operations are delivered, then let the system settle.
        await asyncio.sleep(4.0)
        stop_chaos.set()
        await asyncio.gather(faults, killer)
        done = await wait_converged(client, cluster)
    state: dict[str, Any] = (await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json()
    return hubspot_snapshot(state), log, done


@pytest.fixture
def chaos_database(pg_server_url: str) -> Iterator[str]:
    with fresh_pg_database(pg_server_url, prefix="zh_chaos") as db:
        url = db.url
        yield url


async def test_kills_and_hubspot_faults_leave_hubspot_as_an_undisturbed_run(
    chaos_database: str, tmp_path: Path
) -> None:
    all_envelopes = envelopes()
    expected = await reference_snapshot(tmp_path, all_envelopes)
    assert len(expected["contacts"]) == REGISTRANTS, len(expected["contacts"])

    started = time.monotonic()
    with hubspot_sandbox_process() as sandbox:
        cluster = Cluster(chaos_database, sandbox.base_url, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10.0) as hs:
                actual, log, done = await disturbed_run(cluster, hs, all_envelopes)
        finally:
            cluster.stop()
    elapsed = time.monotonic() - started

    engine = make_engine(chaos_database)
    try:
        missing = [b for b in log.answered_200 if b not in stored_bodies(engine)]
    finally:
        engine.dispose()
    print(
        f"chaos run: {elapsed:.1f} s, kills {cluster.kills},"
        f" deliveries answered 200: {len(log.answered_200)}, other answers {log.other}, final status {done}"
    )
    assert "api" in cluster.kills and len(cluster.kills) >= 4, cluster.kills
    assert not missing, f"{len(missing)} deliveries answered 200 are not in the inbox"
    assert done["failed"] == 0 and done["dead"] == 0, done
    for part in expected:
        assert actual[part] == expected[part], part


# --------------------------------------------------------------------------------------------------
# Recovery after kill -9 of the only worker
# --------------------------------------------------------------------------------------------------


LEASE_S = 15.0  # Dispatcher's outbox lease, renewed by its heartbeat every third of it


def outbox_progress(engine: Engine) -> tuple[int, dict[int, datetime]]:
    """Versions delivered so far (only grows), and the lease end of each operation under a lease now."""
    with engine.connect() as conn:
        delivered = conn.execute(text("SELECT coalesce(sum(done_version), 0) FROM outbox_op")).scalar_one()
        leases = conn.execute(
            text("SELECT id, locked_until FROM outbox_op WHERE state = 'pending' AND locked_until > now()")
        ).all()
    return int(delivered), {int(op_id): until for op_id, until in leases}


def still_held(engine: Engine, leases: dict[int, datetime]) -> int:
    """How many of these operations are still pending under the same lease (nobody took them again)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, locked_until FROM outbox_op WHERE state = 'pending' AND id = ANY(:ids)"),
            {"ids": list(leases)},
        ).all()
    return sum(1 for op_id, until in rows if until is not None and until <= leases[int(op_id)])


async def test_kill_9_of_the_only_worker_stalls_delivery_for_at_most_one_lease(
    chaos_database: str, tmp_path: Path
) -> None:
    all_envelopes = envelopes()
    engine = make_engine(chaos_database)
    with hubspot_sandbox_process() as sandbox:
        cluster = Cluster(chaos_database, sandbox.base_url, tmp_path)
        try:
            async with (
                httpx.AsyncClient(base_url=sandbox.base_url, timeout=10.0) as hs,
                httpx.AsyncClient(base_url=cluster.api_url, timeout=10.0) as client,
            ):
                # Slow HubSpot answers keep the worker busy delivering when it is killed.
                await set_faults(hs, slow_ms=150)
                cluster.start_api()
                settings_url = f"/api/v1/portals/{PORTAL_ID}/settings"
                r = await client.patch(settings_url, headers=ADMIN, json={"webinar_sync_enabled": True})
                assert r.status_code == 200, r.text
                log = SendLog()
                await send_all(cluster.api_url, [make_delivery(ZOOM_SECRET, e) for e in all_envelopes], log)
                victim = cluster.start_worker()
                deadline = time.monotonic() + 60
                while True:
                    delivered, leases = outbox_progress(engine)
                    if delivered > 0 and leases:
                        break
                    assert time.monotonic() < deadline, "the worker never started delivering"
                    await asyncio.sleep(0.05)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed_at = datetime.now(UTC)
                killed_clock = time.monotonic()
                cluster.workers.remove(victim)
                delivered_at_kill, leases = outbox_progress(engine)
                # The dead worker's claims end within one lease of its last heartbeat, whatever it held.
                latest_lease = max(leases.values())
                assert (latest_lease - killed_at).total_seconds() <= LEASE_S + 1.0, latest_lease
                cluster.start_worker()
                while still_held(engine, leases):
                    assert time.monotonic() - killed_clock < 4 * LEASE_S, "the dead worker's claims stay"
                    await asyncio.sleep(0.05)
                reclaimed_s = time.monotonic() - killed_clock
                while outbox_progress(engine)[0] == delivered_at_kill:
                    assert time.monotonic() - killed_clock < 8 * LEASE_S, "delivery never resumed"
                    await asyncio.sleep(0.05)
                resumed_s = time.monotonic() - killed_clock
                await set_faults(hs, slow_ms=0)
                done = await wait_converged(client, cluster)
                drained_s = time.monotonic() - killed_clock
        finally:
            cluster.stop()
            engine.dispose()
    print(
        f"kill -9 recovery: {len(leases)} operations leased by the killed worker, taken again by a fresh"
        f" worker {reclaimed_s:.1f} s after the kill (lease {LEASE_S:.0f} s); its first round finished"
        f" after {resumed_s:.1f} s (HubSpot answering in 150 ms); all delivered after {drained_s:.1f} s"
    )
    assert done["failed"] == 0 and done["dead"] == 0, done
