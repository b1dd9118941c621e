"""Command line: `zoom-hubspot <command>` or `python -m app.cli <command>`."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import typer
import uvicorn

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
    """Migrate the database, then run the API (and, with RUN_WORKER=true, the worker)."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine, settings.database_url)
    engine.dispose()
    token = _local_admin_token(settings)
    if token is not None:
        os.environ["ADMIN_API_TOKEN"] = token
    _print_banner(settings, host, port, token)
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, log_level="warning")


def _print_banner(settings: Settings, host: str, port: int, token: str | None) -> None:
    base = f"http://{host}:{port}"
    lines = [
        f"Zoom → HubSpot sync on {base}  (database: {settings.database_url.split('@')[-1]})",
        f"  API docs:   {base}/docs",
        f"  Status:     curl -H 'Authorization: Bearer {token or '$ADMIN_API_TOKEN'}' {base}/api/v1/status",
    ]
    if token is not None:
        lines.append("  Admin token (kept in ./data/admin-token): " + token)
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
    from app.hubspot_setup import run_setup_command

    raise typer.Exit(run_setup_command())


@cli.command("register-action")
def register_action(
    unpublished: bool = typer.Option(False, help="keep the action visible only in the developer portal"),
) -> None:
    """Register (or update) the workflow action "Add contact to Zoom webinar" at HubSpot, pointing at
    PUBLIC_BASE_URL/hubspot/actions/add-to-webinar. Needs HUBSPOT_APP_ID, HUBSPOT_ACCESS_TOKEN,
    HUBSPOT_PORTAL_ID (and HUBSPOT_DEVELOPER_API_KEY where HubSpot asks for the developer key)."""
    from app.actions.definition import run_register_action_command

    raise typer.Exit(run_register_action_command(Settings(), published=not unpublished))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
