"""What a HubSpot set-up run found, created or could not use: the report `setup` prints.

Also how a HubSpot failure becomes a report entry, shared by the property and template steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from app.integrations.hubspot import (
    HubSpotAuthError,
    HubSpotError,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
)
from app.models import TimelineBackend

# Errors that concern HubSpot or the connection as a whole, not one item: the rest of the section
# would fail the same way, so it stops after one problem entry.
SECTION_FATAL = (HubSpotAuthError, HubSpotUnavailable, HubSpotServerError, HubSpotRateLimited)


def is_conflict(exc: HubSpotError) -> bool:
    return exc.status == 409


class ItemKind(StrEnum):
    PROPERTY_GROUP = "property group"
    CONTACT_PROPERTY = "contact property"
    EVENT_TEMPLATE = "timeline event template"
    TIMELINE = "timeline backend"  # a forced backend that cannot work (CONTRACT §4.2)


class ItemStatus(StrEnum):
    CREATED = "created"
    FOUND = "found"  # already there, usable as is
    PROBLEM = "problem"  # exists but does not fit, or could not be checked/created
    SKIPPED = "skipped"  # not attempted (e.g. no app id for templates)
    # HubSpot refused to create it (classic templates of an app that never had any); the set-up turns
    # it into SKIPPED (auto: notes instead) or PROBLEM (classic forced) before the report is returned.
    REFUSED = "refused"


@dataclass(frozen=True)
class SetupItem:
    kind: ItemKind
    name: str
    status: ItemStatus
    external_id: str | None = None  # template id; for groups and properties their name
    detail: str | None = None


@dataclass
class SetupReport:
    portal_id: int
    app_id: str | None
    items: list[SetupItem] = field(default_factory=list)
    # The portal's timeline writer chosen by this run (stored in hubspot_portal.timeline_backend).
    timeline_backend: TimelineBackend | None = None
    timeline_reason: str = ""

    def _with(self, status: ItemStatus) -> list[SetupItem]:
        return [item for item in self.items if item.status is status]

    @property
    def created(self) -> list[SetupItem]:
        return self._with(ItemStatus.CREATED)

    @property
    def found(self) -> list[SetupItem]:
        return self._with(ItemStatus.FOUND)

    @property
    def problems(self) -> list[SetupItem]:
        return self._with(ItemStatus.PROBLEM)

    @property
    def skipped(self) -> list[SetupItem]:
        return self._with(ItemStatus.SKIPPED)

    @property
    def ok(self) -> bool:
        """No problems. Skipped templates (no app id) are not a problem of the set-up itself."""
        return not self.problems

    @property
    def templates_skipped(self) -> bool:
        return any(item.kind is ItemKind.EVENT_TEMPLATE for item in self.skipped)

    @property
    def template_ids(self) -> dict[str, str]:
        """Usable templates of this run: name → HubSpot template id."""
        return {
            item.name: item.external_id
            for item in self.items
            if item.kind is ItemKind.EVENT_TEMPLATE
            and item.status in (ItemStatus.CREATED, ItemStatus.FOUND)
            and item.external_id is not None
        }

    def render(self) -> str:
        """A readable summary for operators (the `setup` command prints it)."""
        app = self.app_id if self.app_id is not None else "not set"
        lines = [f"HubSpot set-up for portal {self.portal_id} (app id: {app})"]
        sections = (
            ("Created", self.created),
            ("Already there", self.found),
            ("Skipped", self.skipped),
            ("Problems", self.problems),
        )
        for title, items in sections:
            if not items and title in ("Skipped", "Problems"):
                continue
            lines.append(f"{title} ({len(items)}):")
            if not items:
                lines.append("  (none)")
            for item in items:
                ident = (
                    f" [id {item.external_id}]"
                    if item.kind is ItemKind.EVENT_TEMPLATE and item.external_id
                    else ""
                )
                lines.append(f"  - {item.kind.value}: {item.name}{ident}")
                if item.detail:
                    lines.append(f"      {item.detail}")
        if self.timeline_backend is not None:
            lines.append(f"Timeline activities: {self.timeline_backend.value} ({self.timeline_reason})")
        lines.append("Result: " + ("OK" if self.ok else f"{len(self.problems)} problem(s) to fix in HubSpot"))
        return "\n".join(lines)
