"""The pure rules' inputs, read from the database: a portal's settings and rules, a host's facts,
whether a webinar syncs at all. Shared by the planner, the audit and the dispatcher (which applies the
rules again when it sends)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlmodel import Session, col, select

from app.models import Connection, PortalSettings, Recording, Webinar, ZoomUser
from app.sync.rules import HostFacts, PortalRules, WebinarFacts, WebinarSkipReason, webinar_decision


def portal_rules(settings: PortalSettings) -> PortalRules:
    return PortalRules(
        global_sync_enabled=settings.global_sync_enabled,
        webinar_sync_enabled=settings.webinar_sync_enabled,
        exclusion_domains=frozenset(settings.exclusion_domains or ()),
        contact_exclusion_domains=frozenset(settings.contact_exclusion_domains or ()),
        recording_sync=settings.recording_sync,
        recording_sync_users=frozenset(settings.recording_sync_users or ()),
        recording_exclusion_domains=frozenset(settings.recording_exclusion_domains or ()),
    )


def host_facts(session: Session, webinar: Webinar, host_id: str | None = None) -> HostFacts:
    host_id = host_id or webinar.host_id
    user = session.get(ZoomUser, (webinar.zoom_account_id, host_id)) if host_id else None
    return host_facts_of(user, host_id)


def host_facts_of(user: ZoomUser | None, host_id: str | None) -> HostFacts:
    """A host's facts from its stored user; a host never seen keeps the defaults (syncs new
    webinars, no recordings)."""
    if user is None:
        return HostFacts(
            zoom_user_id=host_id or "",
            email=None,
            sync_new_webinars_by_default=True,
            sync_recordings=False,
        )
    return HostFacts(
        zoom_user_id=user.zoom_user_id,
        email=user.email,
        sync_new_webinars_by_default=user.sync_new_webinars_by_default,
        sync_recordings=user.sync_recordings,
    )


def recording_host(session: Session, webinar: Webinar, recording: Recording) -> HostFacts:
    """The host's facts; the recording event's `host_email` fills in an email never seen before."""
    host = host_facts(session, webinar, webinar.host_id or recording.host_id)
    if host.email is None and recording.host_email:
        host = replace(host, email=recording.host_email)
    return host


def webinar_skip_reason(
    session: Session, settings: PortalSettings, webinar: Webinar
) -> WebinarSkipReason | None:
    return webinar_decision(
        portal_rules(settings),
        host_facts(session, webinar),
        WebinarFacts(
            sync_enabled=webinar.sync_enabled,
            unsupported_reason=webinar.unsupported_reason,
            host_default_sync=webinar.host_default_sync,
        ),
    )


def connections_for(session: Session, account_id: str) -> list[Connection]:
    return list(session.exec(select(Connection).where(Connection.zoom_account_id == account_id)).all())


def accounts_with_zoom_app(session: Session, accounts: Iterable[str]) -> set[str]:
    """Those of `accounts` whose Server-to-Server app is stored on a connection (admin API): the
    service can call Zoom's REST API for them (the env account's app is in the settings instead)."""
    wanted = sorted(set(accounts))
    if not wanted:
        return set()
    found = session.exec(
        select(Connection.zoom_account_id).where(
            col(Connection.zoom_account_id).in_(wanted),
            col(Connection.zoom_client_id).is_not(None),
            col(Connection.zoom_client_secret).is_not(None),
        )
    ).all()
    return set(found)


def load_settings(session: Session, portal_id: int) -> PortalSettings:
    """The portal's settings row, created with the defaults when missing (for writers)."""
    settings = session.get(PortalSettings, portal_id)
    if settings is None:
        settings = PortalSettings(portal_id=portal_id)
        session.add(settings)
        session.flush()
    return settings
