"""HubSpot calls (the engagement that carries a recording) and their contact associations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from app.integrations.hubspot.models import AssociationResult, BatchResult, CrmObject, PropertyValue
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import check_batch, properties_json, segment

CALL_TO_CONTACT_ASSOCIATION_TYPE_ID = 194


class CallsApi(HubSpotTransport):
    """Calls: create (at most once when asked), find, update, associate with contacts."""

    async def create_call(
        self,
        properties: Mapping[str, PropertyValue],
        contact_ids: Sequence[str | int],
        *,
        at_most_once: bool = False,
    ) -> CrmObject:
        """Create a call associated with up to 100 contacts (more: `associate_calls_to_contacts`).

        With `at_most_once`, a failure after which HubSpot may have made the call (5xx, answer lost)
        is raised instead of retried, so the caller can look for it before creating another.
        """
        check_batch(contact_ids, "create_call contact_ids")
        body = {
            "properties": properties_json(properties),
            "associations": [
                {
                    "to": {"id": str(contact_id)},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": CALL_TO_CONTACT_ASSOCIATION_TYPE_ID,
                        }
                    ],
                }
                for contact_id in contact_ids
            ],
        }
        path = "/crm/v3/objects/calls"
        return await self._call(CrmObject, "POST", path, body=body, at_most_once=at_most_once)

    async def find_calls(
        self, property_name: str, value: str, properties: Sequence[str] = (), *, limit: int = 10
    ) -> list[CrmObject]:
        """Calls whose `property_name` equals `value` (CRM search: new records appear with a lag)."""
        equal = {"propertyName": property_name, "operator": "EQ", "value": value}
        body = {
            "filterGroups": [{"filters": [equal]}],
            "properties": [property_name, *properties],
            "limit": limit,
        }
        page = await self._call(_SearchPage, "POST", "/crm/v3/objects/calls/search", body=body)
        return list(page.results)

    async def update_call(self, call_id: str | int, properties: Mapping[str, PropertyValue]) -> CrmObject:
        path = f"/crm/v3/objects/calls/{segment(call_id)}"
        return await self._call(CrmObject, "PATCH", path, body={"properties": properties_json(properties)})

    async def associate_calls_to_contacts(
        self, pairs: Sequence[tuple[str | int, str | int]]
    ) -> BatchResult[AssociationResult]:
        """Default (type 194) associations, one per `(call_id, contact_id)` pair."""
        check_batch(pairs, "associate_calls_to_contacts")
        if not pairs:
            return BatchResult[AssociationResult]()
        body = {
            "inputs": [
                {"from": {"id": str(call_id)}, "to": {"id": str(contact_id)}} for call_id, contact_id in pairs
            ]
        }
        return await self._call(
            BatchResult[AssociationResult],
            "POST",
            "/crm/v4/associations/calls/contacts/batch/associate/default",
            body=body,
        )


class _SearchPage(BaseModel):
    total: int = 0
    results: list[CrmObject] = []
