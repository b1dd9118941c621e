"""Schema version checks and programmatic `alembic upgrade head`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SchemaBehindError(RuntimeError):
    """The database schema is not at the revision this code expects."""


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    # The scripts do not change while the process runs; reading them on every /readyz is waste.
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine, database_url: str) -> None:
    cfg = alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_problem(engine: Engine) -> str | None:
    """None when the schema is at head, else a message an operator can act on."""
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return None
    return (
        f"database schema is at revision {current or 'none (empty database)'}, this code needs {head}: "
        "run `alembic upgrade head` (or set AUTO_MIGRATE=true)"
    )


def ensure_schema(engine: Engine, database_url: str, *, auto_migrate: bool) -> None:
    if auto_migrate:
        upgrade_to_head(engine, database_url)
    problem = schema_problem(engine)
    if problem is not None:
        raise SchemaBehindError(problem)
