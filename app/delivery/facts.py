"""What HubSpot knows of an email (R2 account users, R3 secondary emails, R4 deleted contacts).

Facts are asked of HubSpot in batches when contacts are about to be written, and kept in the
`hubspot_contact` table, where the planner reads them too: an email found to be excluded is then
excluded everywhere it appears, with its reason in the audit log and the excluded-email list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.db import unit_of_work, utcnow
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.models import Contact
from app.models import HubSpotContact
from app.sync.rules import HubSpotFacts, normalize_email
from app.util import chunks

READ_PROPERTIES = ("email", "hs_additional_emails", "firstname", "lastname")


def facts_from_row(row: HubSpotContact | None) -> HubSpotFacts:
    if row is None:
        return HubSpotFacts()
    return HubSpotFacts(
        is_account_user=row.is_account_user,
        is_secondary_email=row.secondary_of is not None,
        is_deleted_contact=row.archived,
        contact_exists=row.contact_id is not None and not row.archived,
    )


def db_hubspot_facts(session: Session, portal_id: int, emails: Iterable[str]) -> dict[str, HubSpotFacts]:
    """The planner's view: what was learnt from HubSpot so far (unknown emails: nothing)."""
    wanted = sorted(set(emails))
    rows: dict[str, HubSpotFacts] = {}
    for part in chunks(wanted, 400):
        for row in session.exec(
            select(HubSpotContact).where(
                HubSpotContact.portal_id == portal_id, col(HubSpotContact.email).in_(part)
            )
        ).all():
            rows[row.email] = facts_from_row(row)
    return rows


class FactsResolver:
    """Asks HubSpot about emails and records the answers; account users are cached for a while."""

    def __init__(self, engine: Engine, *, users_ttl_s: float = 600.0, facts_ttl_s: float = 60.0) -> None:
        self.engine = engine
        self.users_ttl_s = users_ttl_s
        self.facts_ttl_s = facts_ttl_s
        self._users_loaded_at: dict[int, float] = {}

    async def refresh_users(self, client: HubSpotClient, portal_id: int, *, force: bool = False) -> None:
        loaded = self._users_loaded_at.get(portal_id)
        if not force and loaded is not None and time.monotonic() - loaded < self.users_ttl_s:
            return
        users = await client.list_users()
        emails = {e for u in users if (e := normalize_email(u.email))}
        await asyncio.to_thread(self._record_users, portal_id, emails)
        self._users_loaded_at[portal_id] = time.monotonic()

    def _record_users(self, portal_id: int, emails: set[str]) -> None:
        now = utcnow()
        with unit_of_work(self.engine) as session:
            session.execute(
                update(HubSpotContact)
                .where(
                    col(HubSpotContact.portal_id) == portal_id, col(HubSpotContact.is_account_user).is_(True)
                )
                .values(is_account_user=False)
            )
            existing = _rows_for(session, portal_id, emails)
            for email in sorted(emails):
                row = existing.get(email) or HubSpotContact(portal_id=portal_id, email=email)
                row.is_account_user = True
                row.checked_at = now
                session.add(row)

    async def resolve(
        self, client: HubSpotClient, portal_id: int, emails: Sequence[str]
    ) -> dict[str, HubSpotFacts]:
        """Facts for up to any number of emails (read in batches of 100), recorded in the database."""
        await self.refresh_users(client, portal_id)
        known = await asyncio.to_thread(self._fresh_facts, portal_id, emails)
        if known:
            # Checked a moment ago (a contact re-sent because its values changed): no need to ask
            # HubSpot again within facts_ttl_s. Kept short: a contact deleted in HubSpot inside this
            # window could otherwise be written again (R4).
            rest = [e for e in emails if e not in known]
            return known | (await self._resolve_with_hubspot(client, portal_id, rest) if rest else {})
        return await self._resolve_with_hubspot(client, portal_id, emails)

    def _fresh_facts(self, portal_id: int, emails: Sequence[str]) -> dict[str, HubSpotFacts]:
        cutoff = utcnow() - timedelta(seconds=self.facts_ttl_s)
        with unit_of_work(self.engine) as session:
            rows = _rows_for(session, portal_id, emails)
        return {
            email: facts_from_row(row)
            for email, row in rows.items()
            if row.checked_at is not None and row.checked_at >= cutoff and row.contact_id is not None
        }

    async def _resolve_with_hubspot(
        self, client: HubSpotClient, portal_id: int, emails: Sequence[str]
    ) -> dict[str, HubSpotFacts]:
        live: dict[str, Contact] = {}
        secondary: dict[str, Contact] = {}
        for part in chunks(sorted(set(emails)), 100):
            result = await client.batch_read_contacts(part, id_property="email", properties=READ_PROPERTIES)
            for contact in result.results:
                primary = normalize_email(contact.email)
                if primary:
                    live[primary] = contact
                for extra in contact.additional_emails:
                    if (address := normalize_email(extra)) is not None:
                        secondary.setdefault(address, contact)
        missing = [e for e in emails if e not in live and e not in secondary]
        archived: set[str] = set()
        for part in chunks(sorted(set(missing)), 100):
            result = await client.batch_read_contacts(
                part, id_property="email", properties=READ_PROPERTIES, archived=True
            )
            archived |= {e for c in result.results if c.archived and (e := normalize_email(c.email))}
        # Database work off the event loop (see Dispatcher).
        return await asyncio.to_thread(self._record, portal_id, emails, live, secondary, archived)

    def _record(
        self,
        portal_id: int,
        emails: Sequence[str],
        live: dict[str, Contact],
        secondary: dict[str, Contact],
        archived: set[str],
    ) -> dict[str, HubSpotFacts]:
        now = utcnow()
        facts: dict[str, HubSpotFacts] = {}
        with unit_of_work(self.engine) as session:
            existing = _rows_for(session, portal_id, emails)
            for email in sorted(set(emails)):
                row = existing.get(email) or HubSpotContact(portal_id=portal_id, email=email)
                if email in live:
                    row.contact_id, row.secondary_of, row.archived = live[email].id, None, False
                    row.has_firstname = _has(live[email], "firstname")
                    row.has_lastname = _has(live[email], "lastname")
                elif email in secondary:
                    row.contact_id, row.secondary_of, row.archived = None, secondary[email].id, False
                elif email in archived or row.synced:
                    # Archived in HubSpot, or written by this service once and gone now: deleted (R4).
                    row.contact_id, row.secondary_of, row.archived = None, None, True
                else:
                    row.contact_id, row.secondary_of, row.archived = None, None, False
                row.checked_at = now
                session.add(row)
                facts[email] = facts_from_row(row)
        return facts

    def record_written(
        self,
        portal_id: int,
        written: dict[str, str],
        at: datetime | None = None,
        *,
        names: dict[str, NamesWritten] | None = None,
    ) -> None:
        """Contacts this service created or updated: their ids, that they were synced once, and
        (``names``) which of first/last name the write set, so a name still empty at HubSpot is
        known to be empty without reading the contact again."""
        now = at or utcnow()
        with unit_of_work(self.engine) as session:
            existing = _rows_for(session, portal_id, written)
            for email, contact_id in sorted(written.items()):
                row = existing.get(email) or HubSpotContact(portal_id=portal_id, email=email)
                was_live = row.contact_id is not None and not row.archived
                row.contact_id = contact_id
                row.archived = False
                row.synced = True
                row.synced_at = now
                row.checked_at = row.checked_at or now
                sent = (names or {}).get(email)
                if sent is not None:
                    # A name sent is set now; one not sent stays as it was, or is empty on a contact
                    # this write created.
                    row.has_firstname = True if sent.firstname else (row.has_firstname if was_live else False)
                    row.has_lastname = True if sent.lastname else (row.has_lastname if was_live else False)
                session.add(row)


@dataclass(frozen=True, slots=True)
class NamesWritten:
    firstname: bool
    lastname: bool


@dataclass(frozen=True, slots=True)
class NamesAtHubSpot:
    """Whether a contact's names are empty at HubSpot (False: known to be set, or not known)."""

    firstname_empty: bool
    lastname_empty: bool


def _has(contact: Contact, name: str) -> bool:
    value = contact.properties.get(name)
    return bool(value and str(value).strip())


def names_at_hubspot(session: Session, portal_id: int, emails: Iterable[str]) -> dict[str, NamesAtHubSpot]:
    """Which names are known to be empty at HubSpot, per email (only what a read or a write told)."""
    return {
        email: NamesAtHubSpot(row.has_firstname is False, row.has_lastname is False)
        for email, row in _rows_for(session, portal_id, emails).items()
    }


def _rows_for(session: Session, portal_id: int, emails: Iterable[str]) -> dict[str, HubSpotContact]:
    """Existing rows for these emails, in a few IN queries instead of one query per email."""
    found: dict[str, HubSpotContact] = {}
    for part in chunks(sorted(set(emails)), 400):
        for row in session.exec(
            select(HubSpotContact).where(
                HubSpotContact.portal_id == portal_id, col(HubSpotContact.email).in_(part)
            )
        ).all():
            found[row.email] = row
    return found


def contact_ids(session: Session, portal_id: int, emails: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(emails))
    found: dict[str, str] = {}
    for part in chunks(wanted, 400):
        for email, contact_id in session.exec(
            select(HubSpotContact.email, HubSpotContact.contact_id).where(
                HubSpotContact.portal_id == portal_id,
                col(HubSpotContact.email).in_(part),
                col(HubSpotContact.contact_id).is_not(None),
                col(HubSpotContact.archived).is_(False),
            )
        ).all():
            if contact_id is not None:
                found[email] = contact_id
    return found
