"""Finding a webinar's marketing event by objectId, never making it twice (`app.delivery.marketing_ids`):
the pure choice among identifiers, then the store and its lookups against respx on both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlmodel import Session, select

from app.db import unit_of_work
from app.delivery.marketing_ids import PENDING, MarketingEventIds, Resolved, Waiting, pick_event, same_app
from app.integrations.hubspot import HubSpotClient, HubSpotValidationError, MarketingEvent
from app.integrations.hubspot.models import AppInfo, MarketingEventIdentifier
from app.models import AuditEntry, Connection, HubSpotMarketingEvent, HubSpotPortal, InboxEvent, Webinar
from tests.fixtures.databases import Database

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
ME = "/marketing/v3/marketing-events"
PORTAL, ACCOUNT, WEBINAR = 4242, "acct_1", "85000000001"
KEY = (ACCOUNT, WEBINAR)
EVENT = MarketingEvent(
    external_account_id=ACCOUNT, external_event_id=WEBINAR, event_name="Launch", event_organizer="Ada"
)
NOT_FOUND = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not found"}


def ident(object_id: str, app: str | None = None, account: str | None = ACCOUNT) -> MarketingEventIdentifier:
    return MarketingEventIdentifier(
        object_id=object_id,
        external_account_id=account,
        app_info=AppInfo(id=app, name="app") if app else None,
    )


# ---- the choice ------------------------------------------------------------------------------------


def test_pick_prefers_the_current_app_then_the_oldest() -> None:
    found = [ident("900", "2002"), ident("1000", "1001"), ident("95", "3003")]
    assert pick_event(found, ACCOUNT, "1001") == found[1]
    assert pick_event(found, ACCOUNT, None) == found[2]  # numerically smallest: "95" < "900"
    assert pick_event(found, ACCOUNT, "4004") == found[2]


def test_pick_keeps_to_the_account_and_leaves_out_a_deleted_id() -> None:
    found = [ident("10", "1001", account="other"), ident("11", "1001", account=None), ident("12", "1001")]
    assert pick_event(found, ACCOUNT, "1001") == found[1]  # no account named: taken as a match
    assert pick_event(found, ACCOUNT, "1001", exclude="11") == found[2]
    assert pick_event(found[:1], ACCOUNT, "1001") is None
    assert pick_event([], ACCOUNT, "1001") is None


def test_same_app_only_when_both_are_known_and_equal() -> None:
    assert same_app("1001", "1001")
    assert not same_app("1001", "2002")
    assert not same_app(None, None)
    assert not same_app(None, "1001")


# ---- the store and its lookups ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


class NoLimit:
    async def acquire(self, portal_id: int) -> None:
        return None

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        return None


@pytest.fixture
async def client() -> AsyncIterator[HubSpotClient]:
    async with httpx.AsyncClient() as http:
        yield HubSpotClient(
            http, base_url=BASE, access_token="t", portal_id=PORTAL, rate_limiter=NoLimit(), max_attempts=1
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ids(database: Database, clock: Clock) -> MarketingEventIds:
    return MarketingEventIds(database.engine, clock, search_lag_s=600.0, search_poll_s=5.0)


def identifiers(router: respx.MockRouter, *results: dict[str, Any]) -> respx.Route:
    return router.get(f"{ME}/{WEBINAR}/identifiers").respond(
        200, json={"results": list(results), "total": len(results)}
    )


def rows(database: Database) -> list[tuple[str, str | None]]:
    with Session(database.engine) as session:
        return [(r.object_id, r.app_id) for r in session.exec(select(HubSpotMarketingEvent)).all()]


def store(database: Database, object_id: str, app_id: str | None, at: datetime) -> None:
    with unit_of_work(database.engine) as session:
        session.add(
            HubSpotMarketingEvent(
                portal_id=PORTAL,
                zoom_account_id=ACCOUNT,
                webinar_id=WEBINAR,
                external_event_id=WEBINAR,
                object_id=object_id,
                app_id=app_id,
                updated_at=at,
            )
        )


def current_app(database: Database, app_id: str) -> None:
    with unit_of_work(database.engine) as session:
        session.merge(HubSpotPortal(portal_id=PORTAL, app_id=app_id))


async def test_a_stored_id_costs_no_request(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter, clock: Clock
) -> None:
    store(database, "555", "1001", clock.at)
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("555", created=False)
    assert router.calls.call_count == 0


async def test_an_event_of_any_app_is_adopted_before_anything_is_made(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter
) -> None:
    current_app(database, "2002")
    identifiers(
        router,
        {"objectId": "700", "externalAccountId": "other", "appInfo": {"id": "2002", "name": "B"}},
        {"objectId": "555", "externalAccountId": ACCOUNT, "appInfo": {"id": "1001", "name": "A"}},
    )
    upsert = router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"objectId": "999"})
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("555", created=False)
    assert upsert.call_count == 0
    assert rows(database) == [("555", "1001")]


async def test_none_found_makes_it_once_and_stores_its_id(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter
) -> None:
    current_app(database, "1001")
    identifiers(router)
    upsert = router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"id": "901", "objectId": "901"})
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("901", created=True)
    assert body(upsert)["externalEventId"] == WEBINAR
    assert rows(database) == [("901", "1001")]


def body(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


async def test_a_lost_answer_waits_out_the_search_lag_when_another_app_may_have_made_it(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter, clock: Clock
) -> None:
    lookup = identifiers(router)
    upsert = router.put(f"{ME}/events/{WEBINAR}").mock(
        side_effect=[
            httpx.Response(504, text="<html>504</html>"),
            httpx.Response(200, json={"objectId": "902"}),
        ]
    )
    own = router.get(f"{ME}/events/{WEBINAR}").respond(404, json=NOT_FOUND)
    with pytest.raises(Exception, match="504"):
        await ids.resolve(client, PORTAL, EVENT)
    assert rows(database) == [(PENDING, None)]  # the attempt, kept: HubSpot may have made it

    clock.at += timedelta(seconds=598)
    assert await ids.resolve(client, PORTAL, EVENT) == Waiting(2.0)  # what is left of the lag
    clock.at -= timedelta(seconds=590)
    assert await ids.resolve(client, PORTAL, EVENT) == Waiting(5.0)  # looked up again every 5 s
    assert upsert.call_count == 1 and own.call_count == 2 and lookup.call_count == 3

    clock.at += timedelta(seconds=600)
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("902", created=True)
    assert upsert.call_count == 2
    assert rows(database) == [("902", None)]


async def test_a_lost_answer_is_found_at_once_by_the_app_that_made_it(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter, clock: Clock
) -> None:
    store(database, PENDING, None, clock.at)
    identifiers(router)  # the search does not show it yet
    router.get(f"{ME}/events/{WEBINAR}").respond(200, json={"id": "555", "objectId": "555"})
    upsert = router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"objectId": "999"})
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("555", created=False)
    assert upsert.call_count == 0
    assert rows(database) == [("555", None)]


async def test_a_lost_answer_of_the_same_known_app_is_sent_again_without_waiting(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter, clock: Clock
) -> None:
    # The same app's upsert updates its own event: sending it again cannot make a second one.
    current_app(database, "1001")
    store(database, PENDING, "1001", clock.at)
    identifiers(router)
    router.get(f"{ME}/events/{WEBINAR}").respond(404, json=NOT_FOUND)  # it was never made
    router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"objectId": "903"})
    assert await ids.resolve(client, PORTAL, EVENT) == Resolved("903", created=True)


async def test_a_refused_create_leaves_no_attempt(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter
) -> None:
    identifiers(router)
    router.put(f"{ME}/events/{WEBINAR}").respond(
        400, json={"status": "error", "category": "VALIDATION_ERROR", "message": "bad"}
    )
    with pytest.raises(HubSpotValidationError):
        await ids.resolve(client, PORTAL, EVENT)
    assert rows(database) == []


async def test_an_answer_without_an_id_keeps_the_attempt_for_the_lookup(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter
) -> None:
    identifiers(router)
    router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"eventName": "Launch"})
    with pytest.raises(Exception, match="no objectId"):
        await ids.resolve(client, PORTAL, EVENT)
    assert rows(database) == [(PENDING, None)]


async def test_a_deleted_event_is_forgotten_audited_and_planned_again(
    database: Database, ids: MarketingEventIds, client: HubSpotClient, router: respx.MockRouter, clock: Clock
) -> None:
    with unit_of_work(database.engine) as session:
        session.add(Connection(portal_id=PORTAL, zoom_account_id=ACCOUNT))
        session.add(Webinar(zoom_account_id=ACCOUNT, webinar_id=WEBINAR, topic="Launch"))
    store(database, "555", None, clock.at)
    await ids.forget(PORTAL, KEY, "444", "PATCH /{objectId}")  # not the stored one: left alone
    assert rows(database) == [("555", None)]

    await ids.forget(PORTAL, KEY, "555", "PATCH /{objectId}")
    assert rows(database) == []
    with Session(database.engine) as session:
        [entry] = session.exec(select(AuditEntry)).all()
        assert (entry.code, entry.status, entry.webinar_id) == ("webinar_data_not_synced", "warning", WEBINAR)
        assert entry.details["reason"] == "marketing_event_deleted" and entry.details["object_id"] == "555"
        [replan] = session.exec(select(InboxEvent)).all()
        assert (replan.zoom_account_id, replan.webinar_id) == KEY

    # Made again: the deleted id is never adopted, even while the search still lists it.
    identifiers(router, {"objectId": "555", "externalAccountId": ACCOUNT})
    router.put(f"{ME}/events/{WEBINAR}").respond(200, json={"objectId": "904"})
    assert await ids.resolve(client, PORTAL, EVENT, exclude="555") == Resolved("904", created=True)
