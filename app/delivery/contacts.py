"""Contact refreshes (P1-P4): one batch upsert per 100 emails, values read from the local model when sent.

HubSpot's facts about the emails are asked first (R2-R4): an email they exclude is not written, and its
webinars are re-planned so the exclusion is recorded everywhere. Names only fill what the CRM has empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from app.db import unit_of_work
from app.delivery.context import DeliveryContext, connections_for_portal, syncing
from app.delivery.facts import FactsResolver, NamesAtHubSpot, NamesWritten, names_at_hubspot
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict, hubspot_failure
from app.delivery.values import PersonWebinar, contact_properties, load_people
from app.ingest.replan import enqueue_replan
from app.integrations.hubspot import ContactUpsert, HubSpotClient, HubSpotError
from app.sync.inputs import load_settings, portal_rules
from app.sync.local_model import WebinarKey
from app.sync.rules import HubSpotFacts, PortalRules, email_decision
from app.util import chunks


class ContactDelivery:
    def __init__(self, ctx: DeliveryContext, facts: FactsResolver) -> None:
        self.ctx = ctx
        self.facts = facts

    async def run(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: object
    ) -> dict[int, Result]:
        emails = sorted({op.email for op in ops if op.email})
        try:
            facts = await self.facts.resolve(client, portal_id, emails)
        except HubSpotError as exc:
            return {op.id: hubspot_failure(exc, "contact_update_failed") for op in ops}
        now = self.ctx.now()
        rules, people, sync, names_known = await asyncio.to_thread(self._load, portal_id, emails)
        replan: set[WebinarKey] = set()
        upserts: dict[str, ContactUpsert] = {}
        names_sent: dict[str, NamesWritten] = {}
        results: dict[int, Result] = {}
        for op in ops:
            email = op.email
            if email is None:
                results[op.id] = DONE
                continue
            mine = people.get(email, [])
            if email_decision(email, rules, facts.get(email) or HubSpotFacts()) is not None:
                # Excluded by what HubSpot told us (R2-R4): the planner records it everywhere.
                replan |= {pw.key for pw in mine}
                results[op.id] = DONE
                continue
            values = contact_properties(mine, sync, now)
            exists = bool(facts.get(email) and facts[email].contact_exists)
            if not exists and not any(pw.key in sync for pw in mine):
                results[op.id] = DONE  # nothing of this person syncs (any more): create nothing
                continue
            properties: dict[str, Any] = {"email": email, **values}
            first, last = _names(mine)
            # Never overwrite a name the CRM has; fill one that is empty there (a contact first met
            # through attendance, before its registration arrived, was created without one).
            known = names_known.get(email)
            if not exists or known is None:
                fill_first = fill_last = not exists
            else:
                fill_first, fill_last = known.firstname_empty, known.lastname_empty
            if fill_first and first:
                properties["firstname"] = first
            if fill_last and last:
                properties["lastname"] = last
            names_sent[email] = NamesWritten("firstname" in properties, "lastname" in properties)
            upserts[email] = ContactUpsert(email=email, properties=properties)
        written: dict[str, str] = {}
        failed: dict[str, Result] = {}
        for part in chunks(sorted(upserts), self.ctx.config.batch_size):
            try:
                batch = await client.batch_upsert_contacts([upserts[e] for e in part])
            except HubSpotError as exc:
                failed |= {e: hubspot_failure(exc, "contact_update_failed") for e in part}
                continue
            for contact in batch.results:
                address = (contact.email or "").lower()
                if address in upserts:
                    written[address] = contact.id
            for error in batch.errors:
                for item in error.ids or part:
                    key = item.lower()
                    if key not in written:
                        failed[key] = Result(
                            Verdict.RETRY,
                            error=f"{error.category}: {error.message}"[:500],
                            retryable=False,
                            reason="contact_update_failed",
                        )
        await asyncio.to_thread(self.facts.record_written, portal_id, written, names=names_sent)
        for op in ops:
            if op.id in results or op.email is None:
                continue
            if op.email in written:
                results[op.id] = DONE
            else:
                results[op.id] = failed.get(
                    op.email,
                    Result(
                        Verdict.RETRY,
                        error="HubSpot did not return the contact",
                        reason="contact_update_failed",
                    ),
                )
        if replan:
            await asyncio.to_thread(self._replan, replan)
        return results

    def _load(
        self, portal_id: int, emails: Sequence[str]
    ) -> tuple[PortalRules, dict[str, list[PersonWebinar]], set[WebinarKey], dict[str, NamesAtHubSpot]]:
        with self.ctx.session() as session:
            rules = portal_rules(load_settings(session, portal_id))
            accounts = [c.zoom_account_id for c in connections_for_portal(session, portal_id)]
            people = load_people(session, accounts, emails)
            all_webinars = [pw.webinar for pws in people.values() for pw in pws]
            sync = syncing(session, portal_id, all_webinars)
            return rules, people, sync, names_at_hubspot(session, portal_id, emails)

    def _replan(self, keys: set[WebinarKey]) -> None:
        with unit_of_work(self.ctx.engine) as session:
            for account_id, webinar_id in sorted(keys):
                enqueue_replan(session, account_id, webinar_id)


def _names(webinars: Sequence[PersonWebinar]) -> tuple[str | None, str | None]:
    """The name of the person's newest registration that has one (registrations without a time first)."""
    regs = sorted(
        (r for pw in webinars for r in pw.registrations),
        key=lambda r: (r.registered_at is None, r.registered_at),
        reverse=True,
    )
    for reg in regs:
        if reg.first_name or reg.last_name:
            return reg.first_name, reg.last_name
    return None, None
