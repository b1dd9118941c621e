"""HubSpot contacts, their properties (and property groups) and the account's users."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from app.integrations.hubspot.errors import HubSpotError, HubSpotNotFound
from app.integrations.hubspot.models import (
    BatchResult,
    Contact,
    ContactUpsert,
    HubSpotUser,
    PropertyDefinition,
    PropertyGroup,
)
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import JsonBody, check_batch, properties_json, segment

USERS_PAGE_SIZE = 100


class ContactsApi(HubSpotTransport):
    """Contacts by email, contact properties and property groups, the account's users."""

    async def batch_upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> BatchResult[Contact]:
        """Create or update contacts by email. Partial upserts are not supported by email, so each
        input's properties are written as given."""
        check_batch(inputs, "batch_upsert_contacts")
        if not inputs:
            return BatchResult[Contact]()
        body = {
            "inputs": [
                {"id": item.email, "idProperty": "email", "properties": properties_json(item.properties)}
                for item in inputs
            ]
        }
        return await self._call(
            BatchResult[Contact], "POST", "/crm/v3/objects/contacts/batch/upsert", body=body
        )

    async def batch_read_contacts(
        self,
        ids: Sequence[str],
        *,
        id_property: str | None = "email",
        properties: Sequence[str],
        archived: bool = False,
    ) -> BatchResult[Contact]:
        """Read contacts by `id_property` (None: by HubSpot object id). Ids HubSpot does not know
        come back in `errors` (their `ids`), not as an exception.

        A read by email also matches secondary addresses without saying which input matched:
        request `hs_additional_emails` to map results back.
        """
        check_batch(ids, "batch_read_contacts")
        if not ids:
            return BatchResult[Contact]()
        body: JsonBody = {
            "inputs": [{"id": str(item)} for item in ids],
            "properties": list(properties),
            "propertiesWithHistory": [],
        }
        if id_property is not None:
            body["idProperty"] = id_property
        return await self._call(
            BatchResult[Contact],
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            params={"archived": "true" if archived else "false"},
            body=body,
        )

    # --- users ----------------------------------------------------------------------------------

    async def list_users(self) -> list[HubSpotUser]:
        """Every user of the account, all pages."""
        path = "/settings/v3/users/"
        users: list[HubSpotUser] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(USERS_PAGE_SIZE)}
            if after is not None:
                params["after"] = after
            data = await self._request_json("GET", path, params=params)
            page = self._parse(_UsersPage, data, method="GET", path=path)
            users.extend(page.results)
            after = page.next_after
            if after is None:
                return users
            if after in seen:  # a cursor that does not move would loop forever
                raise HubSpotError(
                    None, "UNEXPECTED_RESPONSE", "paging cursor repeated", method="GET", path=path
                )
            seen.add(after)

    # --- contact properties ---------------------------------------------------------------------

    async def get_property_group(self, name: str) -> PropertyGroup | None:
        try:
            return await self._call(
                PropertyGroup, "GET", f"/crm/v3/properties/contacts/groups/{segment(name)}"
            )
        except HubSpotNotFound:
            return None

    async def create_property_group(self, group: PropertyGroup) -> PropertyGroup:
        body = group.model_dump(mode="json", by_alias=True, exclude_none=True)
        return await self._call(PropertyGroup, "POST", "/crm/v3/properties/contacts/groups", body=body)

    async def get_contact_property(self, name: str) -> PropertyDefinition | None:
        try:
            return await self._call(PropertyDefinition, "GET", f"/crm/v3/properties/contacts/{segment(name)}")
        except HubSpotNotFound:
            return None

    async def create_contact_property(self, definition: PropertyDefinition) -> PropertyDefinition:
        body = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        return await self._call(PropertyDefinition, "POST", "/crm/v3/properties/contacts", body=body)


# --- response envelopes that never leave this module --------------------------------------------


class _NextPage(BaseModel):
    after: str | None = None


class _Paging(BaseModel):
    next: _NextPage | None = None


class _UsersPage(BaseModel):
    results: list[HubSpotUser] = []
    paging: _Paging | None = None

    @property
    def next_after(self) -> str | None:
        if self.paging is None or self.paging.next is None:
            return None
        return self.paging.next.after or None
