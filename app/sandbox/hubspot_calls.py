"""A portal's calls in the fake HubSpot: create, update, search (with the ``search_lag_s`` fault) and
associations to contacts. One mixin of :class:`~app.sandbox.hubspot_state.PortalState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from app.integrations.hubspot.wire import iso_utc, property_value
from app.sandbox.hubspot_bodies import (
    AssociationPair,
    CallAssociation,
    CallCreate,
    CallUpdateInput,
    SearchBody,
    SearchFilter,
)
from app.sandbox.hubspot_common import (
    CALL_TO_CONTACT,
    JSON,
    SEARCH_MAX_FILTERS,
    SEARCH_MAX_FILTERS_PER_GROUP,
    SEARCH_MAX_GROUPS,
    SEARCH_OPERATORS,
    BatchOutcome,
    SandboxError,
    check_batch_size,
    item_error,
    not_found,
    now_utc,
    order_key,
    validation_error,
)
from app.sandbox.hubspot_contacts import ContactsMixin
from app.sandbox.hubspot_records import (
    Call,
    Contact,
)


class CallsMixin(ContactsMixin):
    """Calls, their search and their associations to contacts."""

    calls: dict[str, Call]

    # ---- calls --------------------------------------------------------------------------------------

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise not_found(f"Call {call_id} not found.")
        return call

    def _contact_for_association(self, contact_id: str) -> Contact:
        contact = self.live_contact(contact_id)
        if contact is None:
            raise not_found(f"Contact {contact_id} does not exist.")
        return contact

    def create_call(self, body: CallCreate) -> JSON:
        values = _call_properties(body.properties)
        if not values.get("hs_timestamp"):
            raise validation_error("hs_timestamp is required.", propertyName=["hs_timestamp"])
        for association in body.associations:
            _check_call_association(association)
            self._contact_for_association(association.to.id)
        moment = now_utc()
        call = Call(self._new_id("call"), values, moment, moment)
        call.properties["hs_object_id"] = call.id
        call.written(self.clock())
        for association in body.associations:
            call.associate(association.to.id)
        self.calls[call.id] = call
        return call.to_json(with_associations=bool(call.contact_ids))

    def update_call(self, call_id: str, properties: Mapping[str, Any]) -> JSON:
        call = self._call(call_id)
        call.properties.update(_call_properties(properties))
        call.updated_at = now_utc()
        call.written(self.clock())
        return call.to_json()

    def search_calls(self, body: SearchBody, *, lag_s: float = 0.0) -> JSON:
        """CRM search over calls as the index saw them `lag_s` seconds ago (filter groups are ORed,
        the filters of a group ANDed)."""
        _check_search(body)
        as_of = self.clock() - lag_s
        matches: list[tuple[Call, dict[str, str]]] = []
        for call in sorted(self.calls.values(), key=lambda c: order_key(c.id)):
            seen = call.indexed(as_of)
            if seen is None:
                continue
            if not body.filterGroups or any(
                all(_matches(f, seen) for f in group.filters) for group in body.filterGroups
            ):
                matches.append((call, seen))
        start = int(body.after) if body.after and body.after.isdigit() else 0
        page = matches[start : start + body.limit]
        wanted = ["hs_object_id", *(body.properties or [])]
        results = [
            {
                "id": call.id,
                "properties": {name: seen.get(name) for name in dict.fromkeys(wanted)},
                "createdAt": iso_utc(call.created_at),
                "updatedAt": iso_utc(call.updated_at),
                "archived": False,
            }
            for call, seen in page
        ]
        out: JSON = {"total": len(matches), "results": results}
        if start + body.limit < len(matches):
            out["paging"] = {"next": {"after": str(start + body.limit)}}
        return out

    def get_call(self, call_id: str, *, with_associations: bool) -> JSON:
        return self._call(call_id).to_json(with_associations=with_associations)

    def batch_update_calls(self, inputs: Sequence[CallUpdateInput]) -> BatchOutcome:
        check_batch_size(inputs)
        outcome = BatchOutcome()
        for item in inputs:
            try:
                outcome.results.append(self.update_call(item.id, item.properties))
            except SandboxError as exc:
                outcome.errors.append(item_error(exc.category, exc.message, context={"id": [item.id]}))
        return outcome

    def associate_call(self, call_id: str, contact_id: str) -> JSON:
        call = self._call(call_id)
        self._contact_for_association(contact_id)
        call.associate(contact_id)
        return {
            "from": {"id": call_id},
            "to": {"id": contact_id},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": CALL_TO_CONTACT,
            },
        }

    def batch_associate_calls(self, inputs: Sequence[AssociationPair]) -> BatchOutcome:
        check_batch_size(inputs)
        outcome = BatchOutcome()
        for pair in inputs:
            try:
                outcome.results.append(self.associate_call(pair.from_.id, pair.to.id))
            except SandboxError as exc:
                context = {"fromId": [pair.from_.id], "toId": [pair.to.id]}
                outcome.errors.append(item_error(exc.category, exc.message, context=context))
        return outcome


def _call_properties(properties: Mapping[str, Any]) -> dict[str, str]:
    values = {k: property_value(v) for k, v in properties.items()}
    url = values.get("hs_call_recording_url")
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise validation_error(
                "hs_call_recording_url must be a secure (https) URL.", propertyName=["hs_call_recording_url"]
            )
    return values


def _check_search(body: SearchBody) -> None:
    groups = body.filterGroups
    filters = [f for group in groups for f in group.filters]
    if (
        len(groups) > SEARCH_MAX_GROUPS
        or any(len(g.filters) > SEARCH_MAX_FILTERS_PER_GROUP for g in groups)
        or len(filters) > SEARCH_MAX_FILTERS
    ):
        raise validation_error(
            f"Too many filters: at most {SEARCH_MAX_GROUPS} filterGroups, "
            f"{SEARCH_MAX_FILTERS_PER_GROUP} filters per group and {SEARCH_MAX_FILTERS} in all."
        )
    for f in filters:
        if f.operator not in SEARCH_OPERATORS:
            raise validation_error(
                f"The sandbox's search supports only {', '.join(sorted(SEARCH_OPERATORS))}; "
                f"got {f.operator!r}."
            )
        if f.operator in ("IN", "NOT_IN") and not f.values:
            raise validation_error(f"{f.operator} needs 'values'.")
        if f.operator in ("EQ", "NEQ") and f.value is None:
            raise validation_error(f"{f.operator} needs 'value'.")
    if body.sorts or body.query:
        raise validation_error("The sandbox's search supports neither 'sorts' nor 'query'.")


def _matches(f: SearchFilter, properties: Mapping[str, str]) -> bool:
    value = properties.get(f.propertyName)
    has = value not in (None, "")
    if f.operator == "HAS_PROPERTY":
        return has
    if f.operator == "NOT_HAS_PROPERTY":
        return not has
    if f.operator in ("IN", "NOT_IN"):
        inside = has and value in {property_value(v) for v in f.values or []}
        return inside if f.operator == "IN" else not inside
    equal = has and value == property_value(f.value)
    return equal if f.operator == "EQ" else not equal


def _check_call_association(association: CallAssociation) -> None:
    for spec in association.types:
        if (
            str(spec.associationTypeId) != str(CALL_TO_CONTACT)
            or spec.associationCategory != "HUBSPOT_DEFINED"
        ):
            raise validation_error(
                "The sandbox supports only the call-to-contact association (HUBSPOT_DEFINED, 194)."
            )
