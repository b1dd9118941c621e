"""HubSpot REST client: one instance per portal, on one shared `httpx.AsyncClient`.

Every method returns typed results (never raw responses) and raises `HubSpotError` subclasses.
`HubSpotClient` is one class made of one part per API area (`contacts`, `timeline`,
`marketing_events`, `engagements`, `notes`, `workflow_actions`), all on `transport.HubSpotTransport`,
which sends the requests: retries on 429, 5xx and transport errors only, the portal's rate limiter
before every attempt, the bearer token kept out of logs and exceptions.
"""

from __future__ import annotations

from app.integrations.hubspot.contacts import ContactsApi
from app.integrations.hubspot.engagements import CallsApi
from app.integrations.hubspot.marketing_events import MarketingEventsApi
from app.integrations.hubspot.notes import NotesApi
from app.integrations.hubspot.timeline import TimelineApi
from app.integrations.hubspot.transport import may_have_reached_hubspot
from app.integrations.hubspot.wire import BATCH_LIMIT
from app.integrations.hubspot.workflow_actions import WorkflowActionsApi

# BATCH_LIMIT and may_have_reached_hubspot: importers outside the package (app.actions.service,
# app.delivery.recordings) name this module for them.
__all__ = ["BATCH_LIMIT", "HubSpotClient", "may_have_reached_hubspot"]


class HubSpotClient(ContactsApi, TimelineApi, MarketingEventsApi, CallsApi, NotesApi, WorkflowActionsApi):
    """Typed access to the HubSpot APIs this service uses, for one portal.

    `http` is shared with the rest of the process and owned by the caller (built in the app's
    lifespan); this class never closes it.
    """

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self._base_url!r}, portal_id={self.portal_id!r})"
