"""A request's writes are committed once, by AdminRoute, before the answer goes out; wake-ups
registered with `after_commit` fire only once that commit succeeded, and a refusal (AdminError)
answers its status and detail with nothing kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.admin.errors import AdminError, ConflictError
from app.api.deps import AdminRoute, UnitOfWorkDep
from app.db import unit_of_work
from app.models import PortalSettings, SyncJob
from tests.fixtures.databases import Database
from tests.fixtures.service import ADMIN, PORTAL_ID, AppClient, make_settings, running_app

pytestmark = pytest.mark.anyio

NEW_PORTAL = 777001
TAKEN_PORTAL = 777002


def visible(database: Database, portal_id: int) -> bool:
    """Whether another session (another connection) sees the portal's settings row."""
    with Session(database.engine) as other:
        return other.get(PortalSettings, portal_id) is not None


@pytest.fixture
async def client(database: Database) -> AsyncIterator[AppClient]:
    async with running_app(make_settings(database, run_worker=False)) as c:
        yield c


def add_routes(client: AppClient, register: Callable[[APIRouter], None]) -> None:
    app = client.app
    router = APIRouter(route_class=AdminRoute)
    register(router)
    app.include_router(router)


async def test_a_wake_up_fires_after_the_commit_and_sees_the_row(
    database: Database, client: AppClient
) -> None:
    seen: list[bool] = []

    def routes(router: APIRouter) -> None:
        @router.post("/_test/write")
        def write(uow: UnitOfWorkDep) -> dict[str, bool]:
            uow.session.add(PortalSettings(portal_id=NEW_PORTAL))
            uow.after_commit(lambda: seen.append(visible(database, NEW_PORTAL)))
            return {"ok": True}

    add_routes(client, routes)
    r = await client.post("/_test/write")
    assert r.status_code == 200 and r.json() == {"ok": True}
    # Fired once, before the answer came back, and the row was already there for others.
    assert seen == [True]


async def test_a_wake_up_of_a_failed_commit_never_fires(database: Database, client: AppClient) -> None:
    with unit_of_work(database.engine) as session:
        session.add(PortalSettings(portal_id=TAKEN_PORTAL))
    fired: list[str] = []

    def routes(router: APIRouter) -> None:
        @router.post("/_test/duplicate")
        def duplicate(uow: UnitOfWorkDep) -> dict[str, bool]:
            # Inserted at the commit's flush: the primary key is taken, so the commit fails.
            uow.session.add(PortalSettings(portal_id=TAKEN_PORTAL))
            uow.session.add(PortalSettings(portal_id=NEW_PORTAL))
            uow.after_commit(lambda: fired.append("wake"))
            return {"ok": True}

    add_routes(client, routes)
    with pytest.raises(IntegrityError):
        await client.post("/_test/duplicate")
    assert fired == []
    assert not visible(database, NEW_PORTAL)


async def test_a_refusal_answers_its_detail_and_keeps_nothing(database: Database, client: AppClient) -> None:
    fired: list[str] = []

    def routes(router: APIRouter) -> None:
        @router.post("/_test/refuse")
        def refuse(uow: UnitOfWorkDep) -> None:
            uow.session.add(PortalSettings(portal_id=NEW_PORTAL))
            uow.session.flush()
            uow.after_commit(lambda: fired.append("wake"))
            raise ConflictError("enable global sync first")

        @router.get("/_test/refuse-with-headers")
        def with_headers() -> None:
            raise AdminError([{"loc": ["query", "x"], "msg": "no"}], headers={"Retry-After": "3"})

    add_routes(client, routes)
    r = await client.post("/_test/refuse")
    assert (r.status_code, r.content) == (409, b'{"detail":"enable global sync first"}')
    assert fired == []
    assert not visible(database, NEW_PORTAL)
    r = await client.get("/_test/refuse-with-headers")
    assert (r.status_code, r.json(), r.headers["retry-after"]) == (
        400,
        {"detail": [{"loc": ["query", "x"], "msg": "no"}]},
        "3",
    )


async def test_a_unit_of_work_outside_an_admin_route_fails_loudly(client: AppClient) -> None:
    """Only AdminRoute commits: elsewhere the writes would be dropped silently, so it refuses."""
    app = client.app

    @app.post("/_test/plain-route")
    def plain(uow: UnitOfWorkDep) -> None:
        uow.session.add(PortalSettings(portal_id=NEW_PORTAL))

    with pytest.raises(RuntimeError, match="AdminRoute"):
        await client.post("/_test/plain-route")


async def test_a_backfill_wakes_the_job_loop_once_its_job_is_committed(database: Database) -> None:
    settings = make_settings(database, zoom_client_id="cid", zoom_client_secret="secret")
    async with running_app(settings) as client:
        woken: list[list[str]] = []

        def wake() -> None:
            with Session(database.engine) as other:
                woken.append(list(other.exec(select(SyncJob.id)).all()))

        client.app.state.app_state.wake_jobs = wake
        body = {"from": "2026-01-01", "to": "2026-01-31"}
        r = await client.post(f"/api/v1/portals/{PORTAL_ID}/backfill", headers=ADMIN, json=body)
        assert r.status_code == 202, r.text
        assert woken == [[r.json()["job_id"]]]
        # A refused backfill (bad range) wakes nothing.
        r = await client.post(
            f"/api/v1/portals/{PORTAL_ID}/backfill",
            headers=ADMIN,
            json={"from": "2026-02-01", "to": "2026-01-01"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "to"]
        assert len(woken) == 1
