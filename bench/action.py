"""Workflow-action benchmark: 500 "add contact to Zoom webinar" requests against the Zoom sandbox.

    python bench/action.py [--requests 500] [--concurrency 20] [--zoom-light-per-s 30] [--json out.json]

Three subprocesses on free localhost ports: the HubSpot sandbox (it receives the callbacks), the Zoom
sandbox (``python -m app.sandbox.zoom``, its per-second rate limits ON: add-registrant is a LIGHT call,
30/s by default) and the service (``uvicorn app.main:app`` on a fresh SQLite file, worker in-process).
Every request is a signed (v3) HubSpot action execution for a distinct contact and the same webinar,
sent over ``--concurrency`` connections. Zoom's rate limit makes part of them wait: the service then
answers BLOCK at once and completes them later through HubSpot's callbacks API.

Printed: the synchronous answer's p50/p99 (target p99 <= 1 s), the answers by state, registrations
made at Zoom (must be exactly N distinct), callbacks received by HubSpot for the BLOCKed ones, and the
time from the first request until every BLOCKed one was completed. A benchmark, not a test: exits 0
whatever the figures are (1 only if it could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    REPO_ROOT,
    LatencySummary,
    UvicornProcess,
    _wait_ready,
    free_port,
    machine_info,
    temp_postgres_database,
    temp_sqlite_database,
    uvicorn_server,
)

PORTAL = 4242
ACCOUNT = "bench-zoom-account"
HS_TOKEN = "bench-hs-token"
CLIENT_SECRET = "bench-hubspot-client-secret"
ZOOM_ID, ZOOM_SECRET = "bench-zoom-client", "bench-zoom-secret"
WEBHOOK_SECRET = "bench-webhook-secret"
PATH = "/hubspot/actions/add-to-webinar"


@contextlib.contextmanager
def module_server(
    name: str, module: str, args: Sequence[str], port: int, ready: str
) -> Iterator[UvicornProcess]:
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench_{name}_logs_"))
    cmd = [sys.executable, "-m", module, str(port), *args]
    with (log_dir / "stdout.log").open("wb") as out, (log_dir / "stderr.log").open("wb") as err:
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=err)
    server = UvicornProcess(name=name, host="127.0.0.1", port=port, process=process, log_dir=log_dir)
    try:
        _wait_ready(server, ready, 60.0)
        yield server
    finally:
        server.stop()


def signed(body: dict[str, Any], base_url: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = str(int(time.time() * 1000))
    message = b"POST" + (base_url + PATH).encode() + raw + ts.encode()
    sig = base64.b64encode(hmac.new(CLIENT_SECRET.encode(), message, hashlib.sha256).digest()).decode()
    return raw, {
        "content-type": "application/json",
        "x-hubspot-signature-v3": sig,
        "x-hubspot-request-timestamp": ts,
    }


def action(i: int, webinar_id: str) -> dict[str, Any]:
    return {
        "callbackId": f"bench-{i}-{secrets.token_hex(4)}",
        "origin": {"portalId": PORTAL, "actionDefinitionId": 1, "actionDefinitionVersion": 1},
        "object": {
            "objectId": 10_000 + i,
            "objectType": "CONTACT",
            "properties": {"email": f"bench{i}@example.com", "firstname": f"Bench{i}", "lastname": "Tester"},
        },
        "inputFields": {"webinar_id": webinar_id},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    hs_port, zoom_port, svc_port = free_port(), free_port(), free_port()
    svc_url, zoom_url, hs_url = (f"http://127.0.0.1:{p}" for p in (svc_port, zoom_port, hs_port))
    admin = secrets.token_urlsafe(16)
    zoom_args = [
        *("--account-id", ACCOUNT, "--client-id", ZOOM_ID, "--client-secret", ZOOM_SECRET),
        *("--webhook-url", f"{svc_url}/webhooks/zoom", "--webhook-secret", WEBHOOK_SECRET),
        *("--public-url", zoom_url),
    ]
    hs_args = ["--token", f"{HS_TOKEN}={PORTAL}", "--rate-limit", "1000"]
    ready = "/_sandbox/health"
    make_db = temp_postgres_database if args.db == "postgresql" else temp_sqlite_database
    with (
        module_server("hubspot", "app.sandbox.hubspot", hs_args, hs_port, ready) as _hs,
        module_server("zoom", "app.sandbox.zoom", zoom_args, zoom_port, ready) as _zoom,
        make_db("bench_action") as db_url,
    ):  # fmt: skip
        env = {
            "DATABASE_URL": db_url,
            "AUTO_MIGRATE": "true",
            "RUN_WORKER": "true",
            "ADMIN_API_TOKEN": admin,
            "ZOOM_WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
            "ZOOM_ACCOUNT_ID": ACCOUNT,
            "ZOOM_CLIENT_ID": ZOOM_ID,
            "ZOOM_CLIENT_SECRET": ZOOM_SECRET,
            "ZOOM_API_BASE_URL": f"{zoom_url}/v2",
            "ZOOM_OAUTH_BASE_URL": zoom_url,
            "HUBSPOT_PORTAL_ID": str(PORTAL),
            "HUBSPOT_ACCESS_TOKEN": HS_TOKEN,
            "HUBSPOT_API_BASE_URL": hs_url,
            "HUBSPOT_APP_ID": "1001",
            "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
            "HUBSPOT_RATE_LIMIT_PER_10S": "1000",
            "PUBLIC_BASE_URL": svc_url,
            "LOG_LEVEL": "DEBUG" if args.service_log else "WARNING",
            **dict(kv.split("=", 1) for kv in args.env),
        }
        with uvicorn_server("app.main:app", name="service", env=env, port=svc_port) as service:
            async with httpx.AsyncClient(
                timeout=30.0, limits=httpx.Limits(max_connections=args.concurrency)
            ) as http:
                await http.post(
                    f"{zoom_url}/_sandbox/faults",
                    json={"rate_limits": {"LIGHT": args.zoom_light_per_s}, "rate_limit_enabled": True},
                )
                created = (
                    await http.post(
                        f"{zoom_url}/_sandbox/webinars", json={"topic": "Bench webinar", "emit": True}
                    )
                ).json()
                webinar_id = str(created["result"]["id"])
                result = await load(http, args, svc_url, zoom_url, hs_url, admin, webinar_id)
            service.stop()
            if args.service_log:
                args.service_log.write_text(service.stderr_text())
            return result
    raise AssertionError("unreachable")


async def load(
    http: httpx.AsyncClient,
    args: argparse.Namespace,
    svc_url: str,
    zoom_url: str,
    hs_url: str,
    admin: str,
    webinar_id: str,
) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    answers: dict[str, dict[str, str]] = {}

    async def one(i: int) -> None:
        body = action(i, webinar_id)
        raw, headers = signed(body, svc_url)
        async with semaphore:
            start = time.perf_counter()
            r = await http.post(svc_url + PATH, content=raw, headers=headers)
            latencies.append(time.perf_counter() - start)
        r.raise_for_status()
        answers[body["callbackId"]] = r.json()["outputFields"]

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.requests)))
    answered_s = time.monotonic() - started
    states = Counter(a["hs_execution_state"] for a in answers.values())
    blocked = {cb for cb, a in answers.items() if a["hs_execution_state"] == "BLOCK"}
    # Until every BLOCKed execution has been completed at HubSpot.
    completed_s = None
    callbacks: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + args.timeout_s
    while time.monotonic() < deadline:
        state = (await http.get(f"{hs_url}/_sandbox/state", params={"portal": PORTAL})).json()
        callbacks = {c["callbackId"]: c["outputFields"] for c in state["callbacks"]}
        if blocked <= set(callbacks):
            completed_s = time.monotonic() - started
            break
        await asyncio.sleep(0.25)
    zoom_state = (await http.get(f"{zoom_url}/_sandbox/webinars/{webinar_id}")).json()
    registrants = [r for r in zoom_state["registrants"] if r.get("status") != "cancelled"]
    finals = {cb: callbacks.get(cb, a) for cb, a in answers.items()}
    final_states = Counter(f["hs_execution_state"] for f in finals.values())
    zoom_stats = (await http.get(f"{zoom_url}/_sandbox/state")).json()["stats"]
    status = (await http.get(f"{svc_url}/api/v1/status", headers={"Authorization": f"Bearer {admin}"})).json()
    return {
        "requests": args.requests,
        "db": args.db,
        "concurrency": args.concurrency,
        "zoom_light_per_s": args.zoom_light_per_s,
        "latency_ms": {k: round(v, 1) for k, v in _latency(latencies).items()},
        "answered_s": round(answered_s, 2),
        "sync_states": dict(states),
        "final_states": dict(final_states),
        "blocked": len(blocked),
        "callbacks_received": len(set(callbacks) & blocked),
        "all_blocked_completed_s": round(completed_s, 2) if completed_s is not None else None,
        "zoom_registrants": len(registrants),
        "zoom_distinct_emails": len({r["email"] for r in registrants}),
        "zoom_429s": zoom_stats.get("throttled_total"),
        "service_status": status,
    }


def _latency(latencies: list[float]) -> dict[str, float]:
    summary = LatencySummary.of(latencies)
    return {"p50": summary.p50_ms, "p95": summary.p95_ms, "p99": summary.p99_ms, "max": summary.max_ms}


def report(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    n = result["requests"]
    print(
        f"workflow action benchmark ({result['db']}): {n} requests, {result['concurrency']} concurrent, "
        f"Zoom LIGHT limit {result['zoom_light_per_s']}/s"
    )
    print(
        f"  synchronous answer: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"
    )
    print(f"  all answered in {result['answered_s']} s; answers: {result['sync_states']}")
    print(
        f"  BLOCKed: {result['blocked']}, completed through callbacks: {result['callbacks_received']}, "
        f"all completed {result['all_blocked_completed_s']} s after the first request"
    )
    print(f"  final states: {result['final_states']}; Zoom 429s seen: {result['zoom_429s']}")
    print(
        f"  registrations at Zoom: {result['zoom_registrants']} "
        f"({result['zoom_distinct_emails']} distinct emails)"
    )
    ok_p99 = lat["p99"] <= 1000.0
    ok_regs = result["zoom_registrants"] == n and result["zoom_distinct_emails"] == n
    ok_done = result["callbacks_received"] == result["blocked"] and result["final_states"].get("SUCCESS") == n
    print(f"  target p99 <= 1 s: {'PASS' if ok_p99 else 'MISS'}")
    print(f"  exactly {n} distinct registrations: {'PASS' if ok_regs else 'MISS'}")
    print(f"  every BLOCKed one completed as SUCCESS: {'PASS' if ok_done else 'MISS'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--zoom-light-per-s", type=int, default=30)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service (repeatable)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--service-log", type=Path, default=None, help="keep the service's debug log here")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except Exception as exc:  # a benchmark that cannot run says why
        print(f"benchmark could not run: {exc!r}", file=sys.stderr)
        return 1
    result["machine"] = machine_info()
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
