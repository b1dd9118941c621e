"""A portal's contacts (with their primary and secondary email indexes) and contact property
definitions in the fake HubSpot. The base of the other :class:`~app.sandbox.hubspot_state.PortalState`
mixins: calls, timeline and marketing events all point at contacts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from app.integrations.hubspot.wire import iso_utc, property_value
from app.sandbox.hubspot_bodies import (
    ContactBatchRead,
    ContactUpsertInput,
    PropertyCreate,
    PropertyGroupCreate,
    SeedContact,
)
from app.sandbox.hubspot_common import (
    DEFAULT_READ,
    FIELD_TYPES,
    JSON,
    PROPERTY_TYPES,
    BatchOutcome,
    SandboxError,
    check_batch_size,
    is_number,
    item_error,
    not_found,
    now_utc,
    order_key,
    valid_email,
    validation_error,
)
from app.sandbox.hubspot_records import (
    Contact,
    PropertyDefinition,
    PropertyGroup,
    id_order,
)


class ContactsMixin:
    """A portal's contacts (with their email indexes) and contact property definitions."""

    portal_id: int
    clock: Callable[[], float]
    contacts: dict[str, Contact]
    _primary: dict[str, list[str]]
    _secondary: dict[str, list[str]]
    property_groups: dict[str, PropertyGroup]
    properties: dict[str, PropertyDefinition]
    _next_id: Counter[str]

    def _new_id(self, kind: str) -> str:
        self._next_id[kind] += 1
        return str(self._next_id[kind])

    # ---- contacts: indexes -------------------------------------------------------------------------

    def _index(self, contact: Contact, *, add: bool) -> None:
        keys = [(self._primary, contact.email)] + [(self._secondary, e) for e in contact.secondary_emails]
        for index, email in keys:
            if not email:
                continue
            ids = index.setdefault(email, [])
            if add and contact.id not in ids:
                ids.append(contact.id)
            elif not add and contact.id in ids:
                ids.remove(contact.id)

    def find_by_email(self, email: str, *, archived: bool) -> Contact | None:
        """The contact whose primary (first) or secondary address is ``email``."""
        email = email.strip().lower()
        for index in (self._primary, self._secondary):
            for cid in index.get(email, ()):
                contact = self.contacts[cid]
                if contact.archived == archived:
                    return contact
        return None

    def live_contact(self, contact_id: str) -> Contact | None:
        contact = self.contacts.get(contact_id)
        return contact if contact is not None and not contact.archived else None

    def _set_properties(self, contact: Contact, values: Mapping[str, str], moment: datetime) -> None:
        changed = any(contact.properties.get(k) != v for k, v in values.items())
        self._index(contact, add=False)
        contact.properties.update(values)
        contact.writes += 1
        if changed:
            contact.updated_at = moment
        contact.properties["hs_object_id"] = contact.id
        contact.properties["createdate"] = iso_utc(contact.created_at)
        contact.properties["lastmodifieddate"] = iso_utc(contact.updated_at)
        self._index(contact, add=True)

    def _create_contact(self, values: Mapping[str, str], moment: datetime, contact_id: str | None) -> Contact:
        if contact_id is None:
            contact_id = self._new_id("contact")
        else:
            if contact_id in self.contacts:
                raise SandboxError(409, "CONFLICT", f"Contact {contact_id} already exists.")
            if contact_id.isdigit():
                self._next_id["contact"] = max(self._next_id["contact"], int(contact_id))
        contact = Contact(contact_id, {}, moment, moment)
        self.contacts[contact_id] = contact
        self._set_properties(contact, values, moment)
        contact.writes = 0
        return contact

    def _property_errors(self, values: Mapping[str, str], strict: bool, ident: str) -> JSON | None:
        """A 207 entry for the first undefined property or invalid number, if any."""
        if not strict:
            return None
        for name, value in values.items():
            definition = self.properties.get(name)
            if definition is None:
                return item_error(
                    "VALIDATION_ERROR",
                    f'Property "{name}" does not exist',
                    context={"id": [ident], "propertyName": [name]},
                    code="PROPERTY_DOESNT_EXIST",
                )
            if definition.type == "number" and value != "" and not is_number(value):
                return item_error(
                    "VALIDATION_ERROR",
                    f'Property "{name}" value "{value}" is not a valid number',
                    context={"id": [ident], "propertyName": [name]},
                    code="INVALID_NUMBER",
                )
        return None

    # ---- contacts: API ------------------------------------------------------------------------------

    def upsert_contacts(self, inputs: Sequence[ContactUpsertInput], *, strict: bool) -> BatchOutcome:
        check_batch_size(inputs)
        seen = Counter(item.id.strip().lower() for item in inputs)
        duplicates = sorted(k for k, n in seen.items() if n > 1)
        if duplicates:
            raise validation_error(f"Duplicate IDs found in batch input: {duplicates}", ids=duplicates)
        outcome = BatchOutcome()
        moment = now_utc()
        for item in inputs:
            self._upsert_one(item, strict, moment, outcome)
        return outcome

    def _upsert_one(
        self, item: ContactUpsertInput, strict: bool, moment: datetime, outcome: BatchOutcome
    ) -> None:
        ident = item.id
        if item.idProperty != "email":
            outcome.errors.append(
                item_error(
                    "VALIDATION_ERROR",
                    f"Unsupported idProperty {item.idProperty!r}: the sandbox upserts by email only.",
                    context={"id": [ident]},
                    code="INVALID_ID_PROPERTY",
                )
            )
            return
        email = ident.strip().lower()
        if not valid_email(email):
            message = (
                'Property values were not valid: [{"isValid":false,"message":"Email address '
                f'{ident} is invalid","error":"INVALID_EMAIL","name":"email"}}]'
            )
            outcome.errors.append(
                item_error("VALIDATION_ERROR", message, context={"id": [ident]}, code="INVALID_EMAIL")
            )
            return
        values = {k: property_value(v) for k, v in item.properties.items() if k != "email"}
        problem = self._property_errors(values, strict, ident)
        if problem is not None:
            outcome.errors.append(problem)
            return
        contact = self.find_by_email(email, archived=False)
        if contact is not None:
            self._set_properties(contact, values, moment)
            outcome.results.append(contact.to_json(new=False))
            return
        archived = self.find_by_email(email, archived=True)
        if archived is not None:
            outcome.errors.append(
                item_error(
                    "CONFLICT",
                    f"Contact {archived.id} with email {email} is archived; the sandbox does not restore "
                    "archived contacts through upsert.",
                    context={"id": [ident], "objectId": [archived.id]},
                    code="CONTACT_ARCHIVED",
                )
            )
            return
        contact = self._create_contact({**values, "email": email}, moment, None)
        outcome.results.append(contact.to_json(new=True))

    def read_contacts(self, body: ContactBatchRead, *, archived: bool) -> BatchOutcome:
        check_batch_size(body.inputs)
        id_property = body.idProperty or "hs_object_id"
        if id_property not in ("email", "hs_object_id", "id"):
            raise validation_error(f"Unsupported idProperty {id_property!r}.")
        properties = body.properties if body.properties is not None else list(DEFAULT_READ)
        outcome = BatchOutcome()
        missing: list[str] = []
        returned: set[str] = set()
        for ref in body.inputs:
            contact = self._lookup(ref.id, id_property, archived=archived)
            if contact is None:
                missing.append(ref.id)
            elif contact.id not in returned:
                returned.add(contact.id)
                outcome.results.append(contact.to_json(properties))
        if missing:
            outcome.errors.append(
                item_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some CONTACT objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    context={"ids": missing},
                )
            )
        return outcome

    def _lookup(self, ident: str, id_property: str, *, archived: bool) -> Contact | None:
        if id_property == "email":
            return self.find_by_email(ident, archived=archived)
        contact = self.contacts.get(ident)
        return contact if contact is not None and contact.archived == archived else None

    def get_contact(
        self, ident: str, *, archived: bool, id_property: str | None, properties: Sequence[str] | None
    ) -> JSON:
        contact = self._lookup(ident, id_property or "hs_object_id", archived=archived)
        if contact is None:
            raise not_found(f"Contact {ident} not found.")
        return contact.to_json(properties if properties else DEFAULT_READ)

    def archive_contact(self, contact_id: str) -> None:
        contact = self.contacts.get(contact_id)
        if contact is not None and not contact.archived:
            contact.archived = True
            contact.archived_at = now_utc()

    def purge_contact(self, ident: str, id_property: str | None) -> None:
        """GDPR delete: the contact is gone for good (no archived copy either)."""
        if (id_property or "hs_object_id") == "email":
            contact = self.find_by_email(ident, archived=False) or self.find_by_email(ident, archived=True)
        else:
            contact = self.contacts.get(ident)
        if contact is not None:
            self._index(contact, add=False)
            del self.contacts[contact.id]

    def list_contacts(
        self, *, limit: int, after: str | None, archived: bool, properties: Sequence[str] | None
    ) -> JSON:
        if not 1 <= limit <= 100:
            raise validation_error("limit must be between 1 and 100.")
        start = order_key(after) if after else (-1, "")
        ordered = sorted(
            (c for c in self.contacts.values() if c.archived == archived and id_order(c) > start),
            key=id_order,
        )
        page = ordered[:limit]
        body: JSON = {"results": [c.to_json(properties if properties else DEFAULT_READ) for c in page]}
        if len(ordered) > limit:
            body["paging"] = {"next": {"after": page[-1].id}}
        return body

    def seed_contact(self, seed: SeedContact) -> Contact:
        email = (seed.email or str(seed.properties.get("email", ""))).strip().lower()
        values = {k: property_value(v) for k, v in seed.properties.items()}
        if email:
            values["email"] = email
        moment = now_utc()
        contact = self._create_contact(values, moment, seed.id)
        if seed.archived:
            contact.archived = True
            contact.archived_at = moment
        return contact

    # ---- properties ---------------------------------------------------------------------------------

    def create_group(self, body: PropertyGroupCreate) -> JSON:
        if body.name in self.property_groups:
            raise SandboxError(
                409, "OBJECT_ALREADY_EXISTS", f"A property group named '{body.name}' already exists."
            )
        group = PropertyGroup(body.name, body.label, body.displayOrder)
        self.property_groups[body.name] = group
        return group.to_json()

    def get_group(self, name: str) -> JSON:
        group = self.property_groups.get(name)
        if group is None:
            raise not_found(f"Property group {name} does not exist.")
        return group.to_json()

    def create_property(self, body: PropertyCreate) -> JSON:
        if body.name in self.properties:
            raise SandboxError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"Property named '{body.name}' already exists.",
                sub_category="PropertyValidationError.PROPERTY_EXISTS",
            )
        if body.groupName not in self.property_groups:
            raise validation_error(f"Property group {body.groupName} does not exist.")
        if body.type not in PROPERTY_TYPES:
            raise validation_error(f"Invalid property type {body.type!r}.")
        if body.fieldType not in FIELD_TYPES:
            raise validation_error(f"Invalid fieldType {body.fieldType!r}.")
        if body.type == "enumeration" and not body.options:
            raise validation_error("Enumeration properties need options.")
        spec = body.model_dump(exclude={"name", "type", "groupName"}, exclude_none=True)
        definition = PropertyDefinition(body.name, body.type, body.groupName, spec, now_utc())
        self.properties[body.name] = definition
        return definition.to_json()

    def get_property(self, name: str) -> JSON:
        definition = self.properties.get(name)
        if definition is None:
            raise not_found(f"Property {name} does not exist.")
        return definition.to_json()
