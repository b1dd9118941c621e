"""Request dependencies, defined once as Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlmodel import Session

from app.config import Settings
from app.db import read_session, unit_of_work
from app.security import bearer_token_matches
from app.state import AppState


async def get_state(request: Request) -> AppState:
    # async on purpose: a plain `def` dependency costs a threadpool hop on every webhook request.
    state: AppState = request.app.state.app_state
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_read_session(state: StateDep) -> Iterator[Session]:
    """For handlers that only read (every admin GET): a read-only session that never commits.

    On SQLite it never waits for the write lock the worker and the webhook writer take, so a GET
    answers while a batch is being written; on both databases a write through it fails loudly.
    """
    with read_session(state.read_engine) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def get_session(state: StateDep) -> Iterator[Session]:
    # The request is the unit of work: commit once at the end, roll back on any error. Handlers
    # that only read take ReadSessionDep instead.
    with unit_of_work(state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    token = settings.admin_api_token
    if token is None or not token.get_secret_value():
        raise HTTPException(503, detail="admin API disabled: set ADMIN_API_TOKEN")
    if not bearer_token_matches(authorization, token.get_secret_value()):
        raise HTTPException(
            401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


AdminAuth = Depends(require_admin)
