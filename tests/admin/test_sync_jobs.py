"""Sync now and backfill need Zoom API access for the account: the env app or one stored on a connection."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session

from app.admin.errors import NoZoomApiAccess
from app.admin.sync_jobs import request_sync, start_backfill, zoom_api_accounts
from app.models import Connection, Webinar
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, make_settings

PORTAL = 7300
STORED, BARE = "acct_with_app", "acct_without_app"


def _seed(database: Database) -> None:
    with Session(database.engine) as session:
        session.add(
            Connection(
                portal_id=PORTAL, zoom_account_id=STORED, zoom_client_id="c", zoom_client_secret="v1:x"
            )
        )
        session.add(Connection(portal_id=PORTAL + 1, zoom_account_id=BARE))
        session.add(Connection(portal_id=PORTAL + 2, zoom_account_id=ACCOUNT_ID))
        for account in (STORED, BARE, ACCOUNT_ID):
            session.add(Webinar(zoom_account_id=account, webinar_id="81000000001"))
        session.commit()


def test_accounts_with_an_app(database: Database) -> None:
    _seed(database)
    with_env = make_settings(database, zoom_client_id="env", zoom_client_secret="env-secret")
    with Session(database.engine) as session:
        assert zoom_api_accounts(session, make_settings(database), [STORED, BARE, ACCOUNT_ID]) == {STORED}
        assert zoom_api_accounts(session, with_env, [STORED, BARE, ACCOUNT_ID]) == {STORED, ACCOUNT_ID}


def test_sync_now_and_backfill_for_an_api_connection(database: Database) -> None:
    _seed(database)
    settings = make_settings(database)  # no env Zoom app at all
    with Session(database.engine) as session:
        job, new = request_sync(session, settings, PORTAL, "81000000001")
        assert new and job.zoom_account_id == STORED
        backfill, _ = start_backfill(session, settings, PORTAL, date(2026, 1, 1), date(2026, 1, 31), [])
        assert backfill.zoom_account_id == STORED
        with pytest.raises(NoZoomApiAccess):
            request_sync(session, settings, PORTAL + 1, "81000000001")
        with pytest.raises(NoZoomApiAccess):
            start_backfill(session, settings, PORTAL + 1, date(2026, 1, 1), date(2026, 1, 31), [])
