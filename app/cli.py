"""Command line: `zoom-hubspot <command>` or `python -m app.cli <command>`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer

from app.config import Settings
from app.db import make_engine
from app.migrations import upgrade_to_head

cli = typer.Typer(help="Zoom webinars → HubSpot sync service.", no_args_is_help=True, add_completion=False)


def _local_admin_token(settings: Settings) -> str | None:
    """On the embedded default, make (once) and reuse a local admin token so the admin API works."""
    if settings.admin_api_token is not None or not settings.is_sqlite:
        return None
    path = Path("data") / "admin-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="port"),
    workers: int = typer.Option(
        1, help="uvicorn processes (use RUN_WORKER=false and separate workers with >1)"
    ),
) -> None:
    """Migrate the database, then run the API (and, with RUN_WORKER=true, the worker). With no Zoom or
    HubSpot setting at all on SQLite (or ZOOM_HUBSPOT_DEMO=1), run the demo: both sandboxes
    in-process and a webinar played through them (ZOOM_HUBSPOT_DEMO=0 turns it off)."""
    from app import server
    from app.demo import URL_ENV as DEMO_URL_ENV
    from app.demo import demo_wanted

    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine, settings.database_url)
    engine.dispose()
    token = _local_admin_token(settings)
    if token is not None:
        os.environ["ADMIN_API_TOKEN"] = token
    demo = demo_wanted(settings)
    _print_banner(settings, host, port, token, demo=demo)
    if demo:
        # The demo prints its commands with the address it is reached at.
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        os.environ[DEMO_URL_ENV] = f"http://{shown}:{port}"
        # One process: the sandboxes and the demo's database belong to it.
        server.run("app.demo:create_demo_app", factory=True, host=host, port=port)
        return
    server.run("app.main:app", host=host, port=port, workers=workers)


def _print_banner(settings: Settings, host: str, port: int, token: str | None, *, demo: bool = False) -> None:
    from app.demo import demo_database_url, real_settings_set

    base = f"http://{host}:{port}"
    database = demo_database_url(settings.database_url) if demo else settings.database_url
    lines = [
        f"Zoom → HubSpot sync on {base}  (database: {database.split('@')[-1]})",
        f"  API docs:   {base}/docs",
        f"  Status:     curl -H 'Authorization: Bearer {token or '$ADMIN_API_TOKEN'}' {base}/api/v1/status",
    ]
    if token is not None:
        lines.append("  Admin token (kept in ./data/admin-token): " + token)
    if demo:
        real = real_settings_set(settings)
        why = (
            f"ZOOM_HUBSPOT_DEMO=1 asked for it; the configured {', '.join(real)} is ignored"
            if real
            else "no Zoom or HubSpot setting is configured"
        )
        rule = "  " + "=" * 78
        lines += [
            rule,
            "  DEMO MODE: " + why + ".",
            "  Zoom and HubSpot are in-process sandboxes, open WITHOUT AUTH under /sandbox/*; nothing",
            "  reaches a real account, and the demo database is made afresh at every start.",
            "  Set ZOOM_WEBHOOK_SECRET_TOKEN, HUBSPOT_ACCESS_TOKEN, ZOOM_* … (README) to run for real;",
            "  ZOOM_HUBSPOT_DEMO=0 never runs the demo.",
            rule,
            "  demo mode: a webinar is played through the Zoom and HubSpot sandboxes; its summary follows.",
        ]
    else:
        if not settings.zoom_webhook_secrets:
            lines.append("  Zoom webhooks: disabled until ZOOM_WEBHOOK_SECRET_TOKEN is set")
        if not settings.has_env_connection:
            lines.append("  No connection: set ZOOM_ACCOUNT_ID and HUBSPOT_PORTAL_ID (see README)")
    print("\n".join(lines), file=sys.stderr, flush=True)


@cli.command()
def worker(until_idle: bool = typer.Option(False, help="exit once the inbox is idle")) -> None:
    """Run a worker process (next to API replicas started with RUN_WORKER=false)."""
    from app.worker.__main__ import main as worker_main

    raise typer.Exit(worker_main(["--until-idle"] if until_idle else []))


@cli.command()
def migrate() -> None:
    """Bring the database schema to head (same as `alembic upgrade head`)."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine, settings.database_url)
    engine.dispose()
    typer.echo("database schema is at head")


@cli.command()
def setup() -> None:
    """Create what the service needs in HubSpot if missing (property group, contact properties,
    timeline event templates) and record their ids. Migrates nothing. Exit 1 on problems, 2 when
    credentials are missing or the schema is behind."""
    from app.integrations.hubspot.setup import run_setup_command

    raise typer.Exit(run_setup_command())


@cli.command()
def backfill(
    start: str = typer.Option(
        ..., "--from", help="first day, YYYY-MM-DD (webinars starting that day or later)"
    ),
    end: str = typer.Option(..., "--to", help="last day, YYYY-MM-DD (inclusive)"),
    user: list[str] = typer.Option(None, "--user", help="only these Zoom users (id or email); default: all"),
) -> None:
    """Pull the connected Zoom account's webinars in a date range, like a Sync now of each.
    Resumable: run the same range again after an interruption. The running service (or a worker)
    then syncs what was pulled, as the settings allow."""
    from app.pull.commands import run_backfill_command

    raise typer.Exit(run_backfill_command(start, end, list(user) if user else None))


@cli.command()
def replay(
    webinar_id: str = typer.Argument(..., help="the Zoom webinar id"),
    account: str = typer.Option(None, help="the Zoom account id, when several are connected"),
) -> None:
    """Process a webinar's stored Zoom events again (after a rule or settings change). Idempotent:
    HubSpot converges on the same state."""
    from app.pull.commands import run_replay_command

    raise typer.Exit(run_replay_command(webinar_id, account))


@cli.command("register-action")
def register_action(
    unpublished: bool = typer.Option(False, help="keep the action visible only in the developer portal"),
) -> None:
    """Register (or update) the workflow action "Add contact to Zoom webinar" at HubSpot, pointing at
    PUBLIC_BASE_URL/hubspot/actions/add-to-webinar. Needs HUBSPOT_APP_ID, HUBSPOT_ACCESS_TOKEN,
    HUBSPOT_PORTAL_ID (and HUBSPOT_DEVELOPER_API_KEY where HubSpot asks for the developer key)."""
    from app.actions.definition import run_register_action_command

    raise typer.Exit(run_register_action_command(Settings(), published=not unpublished))


@cli.command("hubspot-project")
def hubspot_project(
    out: Path = typer.Option(..., "--out", help="folder to write the project to (new or empty)"),
    name: str = typer.Option(
        "zoom-webinar-sync",
        "--name",
        help="HubSpot project name: letters, digits, dashes, underscores, spaces",
    ),
    public_base_url: str | None = typer.Option(
        None, "--public-base-url", help="the service's public https URL; default: PUBLIC_BASE_URL"
    ),
    force: bool = typer.Option(False, "--force", help="write into a non-empty folder, overwriting our files"),
    auth: str = typer.Option(
        "static",
        "--auth",
        help="static (one account, token copied by hand) or oauth (install link, several accounts)",
    ),
) -> None:
    """Write the HubSpot developer project (platform 2026.03: a private app with static or OAuth auth
    and the workflow action) for `hs project upload`. A URL that is not https is refused, except this
    machine's own address (127.0.0.1, localhost), which only warns since HubSpot cannot reach it. Exit 2 when
    refused. Legacy public apps use register-action instead."""
    from app.actions.hubspot_project import run_hubspot_project_command

    url = public_base_url.rstrip("/") if public_base_url else Settings().public_base_url
    raise typer.Exit(
        run_hubspot_project_command(out, project_name=name, public_base_url=url, force=force, auth=auth)
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
