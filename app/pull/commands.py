"""`zoom-hubspot backfill` and `zoom-hubspot replay`: catching up by hand, from the command line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config import Settings
from app.db import make_engine, unit_of_work, utcnow
from app.delivery.zoom_gateway import ZoomGateway
from app.ingest.replan import enqueue_replan
from app.ingest.zoom_events import HANDLED_EVENTS
from app.integrations.zoom.errors import ZoomError
from app.migrations import schema_problem
from app.models import InboxEvent, InboxState, JobState, SyncJob, Webinar
from app.pull.backfill import find_webinars, finish_if_complete, open_backfill, parse_range, record_webinars
from app.pull.jobs import JobRunner

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class BackfillSummary:
    job_id: str = ""
    resumed: bool = False
    webinars: int = 0
    already_done: int = 0
    pulled: int = 0
    failed: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _open_engine(settings: Settings, console: Console) -> Engine | None:
    engine = make_engine(settings.database_url, pool_size=2)
    problem = schema_problem(engine)
    if problem is not None:
        console.print(f"[red]error:[/red] {problem}")
        engine.dispose()
        return None
    return engine


async def backfill(
    settings: Settings,
    engine: Engine,
    start: str,
    end: str,
    users: list[str] | None,
    console: Console,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> BackfillSummary:
    period = parse_range(start, end)
    account, portal = settings.zoom_account_id, settings.hubspot_portal_id
    if account is None or portal is None:
        raise ValueError("backfill needs ZOOM_ACCOUNT_ID and HUBSPOT_PORTAL_ID")
    gateway = ZoomGateway(settings, transport=transport)
    summary = BackfillSummary()
    try:
        zoom = gateway.client_for(account)
        if zoom is None:
            raise ValueError(f"no Zoom API credentials for account {account}")
        job, summary.resumed = await asyncio.to_thread(
            open_backfill, engine, portal, account, period, users=users
        )
        summary.job_id = job.id
        webinars = job.params.get("webinars")
        if webinars is None:
            with console.status("listing the account's webinars at Zoom..."):
                webinars = await find_webinars(zoom, period, users)
        items = await asyncio.to_thread(record_webinars, engine, job, webinars)
        summary.webinars = len(items)
        runner = JobRunner(engine, lambda account_id: gateway.client_for(account_id))
        todo = [item for item in items if item.state != JobState.DONE]
        summary.already_done = len(items) - len(todo)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("pulling webinars", total=len(items), completed=summary.already_done)
            for item in todo:
                bar.update(task, description=f"webinar {item.webinar_id}")
                item.attempts += 1
                ok = await runner.run_job(item)
                done = await asyncio.to_thread(_reload, engine, item.id)
                if ok and done is not None:
                    summary.pulled += 1
                    for name, value in (done.counts or {}).items():
                        summary.totals[name] = summary.totals.get(name, 0) + int(value)
                else:
                    summary.failed += 1
                    summary.errors.append(f"{item.webinar_id}: {done.error if done else 'gone'}")
                bar.advance(task)
        await asyncio.to_thread(finish_if_complete, engine, job.id)
    finally:
        await gateway.aclose()
    return summary


def _reload(engine: Engine, job_id: str) -> SyncJob | None:
    with unit_of_work(engine) as session:
        return session.get(SyncJob, job_id)


def run_backfill_command(
    start: str,
    end: str,
    users: list[str] | None = None,
    *,
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    console: Console | None = None,
) -> int:
    settings = settings or Settings()
    console = console or Console(stderr=True)
    if not settings.has_zoom_api or settings.hubspot_portal_id is None:
        console.print(
            "[red]error:[/red] backfill needs ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET "
            "and HUBSPOT_PORTAL_ID"
        )
        return EXIT_CONFIG
    try:
        parse_range(start, end)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return EXIT_CONFIG
    engine = _open_engine(settings, console)
    if engine is None:
        return EXIT_CONFIG
    try:
        summary = asyncio.run(backfill(settings, engine, start, end, users, console, transport=transport))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/yellow] run the same command again to resume where it stopped")
        return EXIT_INTERRUPTED
    except ZoomError as exc:
        console.print(f"[red]error:[/red] Zoom: {exc}")
        return EXIT_PROBLEMS
    finally:
        engine.dispose()
    t = summary.totals
    lines = [
        f"backfill {start}..{end} (job {summary.job_id}{', resumed' if summary.resumed else ''}):",
        f"  webinars in range: {summary.webinars}; pulled now: {summary.pulled}; "
        f"already done before: {summary.already_done}; failed: {summary.failed}",
        f"  read from Zoom: {t.get('registrants', 0)} registrants, {t.get('participant_sessions', 0)} "
        f"participant sessions, {t.get('recordings', 0)} recordings; {t.get('stored', 0)} new events stored",
        "  the service's worker syncs them to HubSpot as the settings allow "
        "(GET /api/v1/status shows progress)",
    ]
    lines += [f"  failed: {e}" for e in summary.errors[:20]]
    print("\n".join(lines))
    return EXIT_OK if summary.failed == 0 else EXIT_PROBLEMS


def replay(engine: Engine, webinar_id: str, account_id: str | None = None) -> int:
    """Queue the webinar's stored events again, and a full re-plan; returns how many events."""
    with unit_of_work(engine) as session:
        stmt = update(InboxEvent).where(
            col(InboxEvent.webinar_id) == webinar_id,
            col(InboxEvent.event).in_(sorted(HANDLED_EVENTS)),
            col(InboxEvent.state).in_([InboxState.DONE, InboxState.FAILED, InboxState.PENDING]),
        )
        if account_id is not None:
            stmt = stmt.where(col(InboxEvent.zoom_account_id) == account_id)
        result = session.execute(
            stmt.values(state=InboxState.PENDING, attempts=0, next_attempt_at=utcnow(), processed_at=None)
        )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        accounts = {account_id} if account_id else _accounts_of(session, webinar_id)
        for account in sorted(accounts):
            enqueue_replan(session, account, webinar_id)
        return count


def _accounts_of(session: Session, webinar_id: str) -> set[str]:
    return set(session.exec(select(Webinar.zoom_account_id).where(Webinar.webinar_id == webinar_id)).all())


def run_replay_command(
    webinar_id: str, account_id: str | None = None, *, settings: Settings | None = None
) -> int:
    settings = settings or Settings()
    console = Console(stderr=True)
    if not webinar_id.isdigit():
        console.print(f"[red]error:[/red] {webinar_id!r} is not a Zoom webinar id")
        return EXIT_CONFIG
    engine = _open_engine(settings, console)
    if engine is None:
        return EXIT_CONFIG
    try:
        count = replay(engine, webinar_id, account_id)
    finally:
        engine.dispose()
    if count == 0:
        console.print(f"no stored events for webinar {webinar_id}")
        return EXIT_PROBLEMS
    print(
        f"replay: {count} stored events of webinar {webinar_id} queued again with a full re-plan; "
        "the worker processes them and HubSpot converges on the same state (values are recomputed, "
        "timeline events keep their ids)"
    )
    return EXIT_OK
