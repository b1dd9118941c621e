"""HubSpot notes: the activity any account can receive (`notes` timeline backend, CONTRACT §4.2).

Like calls, notes have no idempotency key: the caller stores the id at once, and after a lost answer
looks the note up among the contact's associated notes (an association read, not CRM search, so a
note just made is listed at once rather than after the search index's lag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from app.integrations.hubspot.models import CrmObject, HubSpotModel, PropertyValue
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import check_batch, properties_json, segment

# HubSpot-defined association type "note to contact" (CRM associations v4 reference).
NOTE_TO_CONTACT_ASSOCIATION_TYPE_ID = 202
_ASSOCIATION_PAGE = 500


class NotesApi(HubSpotTransport):
    """Notes: create one on a contact (at most once when asked), list a contact's notes, read them."""

    async def create_note(
        self, properties: Mapping[str, PropertyValue], contact_id: str | int, *, at_most_once: bool = False
    ) -> CrmObject:
        """Create a note associated with one contact. With `at_most_once`, a failure after which HubSpot
        may have made the note (5xx, answer lost) is raised instead of retried."""
        body = {
            "properties": properties_json(properties),
            "associations": [
                {
                    "to": {"id": str(contact_id)},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": NOTE_TO_CONTACT_ASSOCIATION_TYPE_ID,
                        }
                    ],
                }
            ],
        }
        return await self._call(
            CrmObject, "POST", "/crm/v3/objects/notes", body=body, at_most_once=at_most_once
        )

    async def contact_note_ids(self, contact_id: str | int) -> list[str]:
        """The ids of every note associated with the contact (v4 associations, all pages)."""
        path = f"/crm/v4/objects/contacts/{segment(contact_id)}/associations/notes"
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": str(_ASSOCIATION_PAGE)}
            if after is not None:
                params["after"] = after
            page = await self._call(_AssociationPage, "GET", path, params=params)
            ids.extend(item.to_object_id for item in page.results)
            after = page.paging.next.after if page.paging and page.paging.next else None
            if not after:
                return ids

    async def read_notes(self, note_ids: Sequence[str | int], properties: Sequence[str]) -> list[CrmObject]:
        """Up to 100 notes by id with the named properties (unknown ids are left out)."""
        check_batch(note_ids, "read_notes")
        if not note_ids:
            return []
        body = {"inputs": [{"id": str(i)} for i in note_ids], "properties": list(properties)}
        page = await self._call(_ReadPage, "POST", "/crm/v3/objects/notes/batch/read", body=body)
        return list(page.results)


class _AssociatedId(HubSpotModel):
    to_object_id: str  # HubSpot sends it as a number


class _Next(HubSpotModel):
    after: str | None = None


class _Paging(HubSpotModel):
    next: _Next | None = None


class _AssociationPage(HubSpotModel):
    results: list[_AssociatedId] = []
    paging: _Paging | None = None


class _ReadPage(BaseModel):
    results: list[CrmObject] = []
