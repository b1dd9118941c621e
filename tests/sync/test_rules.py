"""Table-driven tests for app.sync.rules: one row (at least) per MISSION.md requirement ID."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from app.sync.rules import (
    EmailExclusion,
    HostFacts,
    HubSpotFacts,
    PortalRules,
    RecordingSkipReason,
    WebinarFacts,
    WebinarSkipReason,
    classify_webinar,
    domain_matches,
    email_decision,
    email_domain,
    is_valid_email,
    normalize_domain,
    normalize_email,
    recording_decision,
    webinar_decision,
)

# A portal where everything is allowed; each row changes only what it tests.
PORTAL = PortalRules(
    global_sync_enabled=True,
    webinar_sync_enabled=True,
    exclusion_domains=frozenset({"internal.example"}),
    contact_exclusion_domains=frozenset({"acme.com"}),
    recording_sync="all",
    recording_sync_users=frozenset(),
    recording_exclusion_domains=frozenset({"legal.example"}),
)
HOST = HostFacts(
    zoom_user_id="KdYKjnimT4KPd8FFgQt9FQ",
    email="host@zoomcustomer.com",
    sync_new_webinars_by_default=True,
    sync_recordings=True,
)
FOLLOW_HOST = WebinarFacts(sync_enabled=None, unsupported_reason=None)


def portal(**changes: Any) -> PortalRules:
    return dataclasses.replace(PORTAL, **changes)


def host(**changes: Any) -> HostFacts:
    return dataclasses.replace(HOST, **changes)


def webinar(sync_enabled: bool | None = None, unsupported_reason: str | None = None) -> WebinarFacts:
    return WebinarFacts(sync_enabled=sync_enabled, unsupported_reason=unsupported_reason)


# --------------------------------------------------------------------------------------------------
# webinar_decision (M3, S1, S3, S5)
# --------------------------------------------------------------------------------------------------

WEBINAR_ROWS = [
    pytest.param(PORTAL, HOST, FOLLOW_HOST, None, id="baseline-syncs"),
    pytest.param(
        PORTAL,
        HOST,
        webinar(unsupported_reason="events_field:event_id"),
        WebinarSkipReason.UNSUPPORTED_WEBINAR,
        id="M3-unsupported",
    ),
    pytest.param(
        portal(global_sync_enabled=False, webinar_sync_enabled=False),
        host(email="h@internal.example"),
        webinar(sync_enabled=True, unsupported_reason="webinar_type:4"),
        WebinarSkipReason.UNSUPPORTED_WEBINAR,
        id="M3-unsupported-beats-everything",
    ),
    pytest.param(
        portal(global_sync_enabled=False),
        HOST,
        FOLLOW_HOST,
        WebinarSkipReason.GLOBAL_SYNC_OFF,
        id="S1-global-off",
    ),
    pytest.param(
        portal(global_sync_enabled=False, webinar_sync_enabled=False),
        HOST,
        FOLLOW_HOST,
        WebinarSkipReason.GLOBAL_SYNC_OFF,
        id="S1-global-off-before-webinar-switch",
    ),
    pytest.param(
        portal(global_sync_enabled=False),
        HOST,
        webinar(sync_enabled=True),
        WebinarSkipReason.GLOBAL_SYNC_OFF,
        id="S1-global-off-beats-webinar-override",
    ),
    pytest.param(
        portal(webinar_sync_enabled=False),
        HOST,
        FOLLOW_HOST,
        WebinarSkipReason.WEBINAR_SYNC_OFF,
        id="S1-webinar-sync-off",
    ),
    pytest.param(
        portal(webinar_sync_enabled=False),
        HOST,
        webinar(sync_enabled=True),
        WebinarSkipReason.WEBINAR_SYNC_OFF,
        id="S1-webinar-sync-off-beats-override",
    ),
    pytest.param(
        PORTAL,
        host(email="boss@internal.example"),
        FOLLOW_HOST,
        WebinarSkipReason.HOST_EXCLUDED_DOMAIN,
        id="S3-host-excluded-domain",
    ),
    pytest.param(
        PORTAL,
        host(email="Boss@EU.Internal.Example"),
        FOLLOW_HOST,
        WebinarSkipReason.HOST_EXCLUDED_DOMAIN,
        id="S3-host-excluded-subdomain-any-case",
    ),
    pytest.param(
        PORTAL,
        host(email="boss@internal.example"),
        webinar(sync_enabled=True),
        WebinarSkipReason.HOST_EXCLUDED_DOMAIN,
        id="S3-host-excluded-beats-override",
    ),
    pytest.param(
        PORTAL,
        host(email="boss@notinternal.example"),
        FOLLOW_HOST,
        None,
        id="S3-lookalike-domain-not-excluded",
    ),
    pytest.param(PORTAL, host(email=None), FOLLOW_HOST, None, id="S3-unknown-host-email-not-excluded"),
    pytest.param(
        PORTAL,
        host(sync_new_webinars_by_default=False),
        FOLLOW_HOST,
        WebinarSkipReason.HOST_DEFAULT_OFF,
        id="S5-host-default-off",
    ),
    pytest.param(
        PORTAL,
        host(sync_new_webinars_by_default=False),
        webinar(sync_enabled=True),
        None,
        id="S5-override-on-beats-host-default-off",
    ),
    pytest.param(
        PORTAL,
        HOST,
        webinar(sync_enabled=False),
        WebinarSkipReason.WEBINAR_OFF,
        id="S5-override-off-beats-host-default-on",
    ),
    pytest.param(
        PORTAL,
        host(sync_new_webinars_by_default=False),
        webinar(sync_enabled=False),
        WebinarSkipReason.WEBINAR_OFF,
        id="S5-override-off-named-before-host-default",
    ),
    pytest.param(PORTAL, HOST, webinar(sync_enabled=True), None, id="S5-override-on-host-default-on"),
]


@pytest.mark.parametrize(("portal_rules", "host_facts", "webinar_facts", "expected"), WEBINAR_ROWS)
def test_webinar_decision(
    portal_rules: PortalRules,
    host_facts: HostFacts,
    webinar_facts: WebinarFacts,
    expected: WebinarSkipReason | None,
) -> None:
    assert webinar_decision(portal_rules, host_facts, webinar_facts) is expected


# --------------------------------------------------------------------------------------------------
# classify_webinar (M3)
# --------------------------------------------------------------------------------------------------

CLASSIC = {"uuid": "4444AAAiAAAAAiAiAiiAii==", "id": 81234567890, "topic": "Launch", "type": 5}

CLASSIFY_ROWS = [
    pytest.param(CLASSIC, None, id="M3-classic-type-5"),
    pytest.param({**CLASSIC, "type": 6}, None, id="M3-classic-type-6"),
    pytest.param({**CLASSIC, "type": 9}, None, id="M3-classic-type-9"),
    pytest.param({**CLASSIC, "type": "9"}, None, id="M3-classic-type-numeric-string"),
    pytest.param({**CLASSIC, "type": " 5 "}, None, id="M3-classic-type-padded-string"),
    pytest.param({**CLASSIC, "type": 5.0}, None, id="M3-classic-type-integral-float"),
    pytest.param({"id": 81234567890}, None, id="M3-missing-type-is-supported"),
    pytest.param({**CLASSIC, "type": None}, None, id="M3-null-type-is-supported"),
    pytest.param({}, None, id="M3-empty-object-is-supported"),
    pytest.param({**CLASSIC, "creation_source": "open_api"}, None, id="M3-classic-creation-source"),
    pytest.param({**CLASSIC, "event_id": None}, None, id="M3-null-event-id-is-absent"),
    pytest.param({**CLASSIC, "session_id": ""}, None, id="M3-empty-session-id-is-absent"),
    pytest.param(
        {"event_id": "ev1", "session_id": "s1", "host_id": "h", "name": "Keynote", "type": 2},
        "events_field:event_id",
        id="M3-events-session-payload",
    ),
    pytest.param({**CLASSIC, "session_id": "s1"}, "events_field:session_id", id="M3-session-id"),
    pytest.param({**CLASSIC, "hub_id": "hub1"}, "events_field:hub_id", id="M3-hub-id"),
    pytest.param(
        {**CLASSIC, "creation_source": "ZOOM_EVENTS"},
        "creation_source:zoom_events",
        id="M3-creation-source-zoom-events",
    ),
    pytest.param(
        {**CLASSIC, "creation_source": "Zoom Sessions"},
        "creation_source:zoom sessions",
        id="M3-creation-source-sessions",
    ),
    pytest.param(
        {**CLASSIC, "creation_source": "events_app"},
        "creation_source:events_app",
        id="M3-creation-source-events",
    ),
    pytest.param({**CLASSIC, "type": 2}, "webinar_type:2", id="M3-type-2-not-classic"),
    pytest.param({**CLASSIC, "type": "4"}, "webinar_type:4", id="M3-type-string-4-not-classic"),
    pytest.param({**CLASSIC, "type": "abc"}, "webinar_type:abc", id="M3-type-non-numeric"),
    pytest.param({**CLASSIC, "type": True}, "webinar_type:True", id="M3-type-bool-not-a-number"),
    pytest.param({**CLASSIC, "type": 5.5}, "webinar_type:5.5", id="M3-type-fractional"),
]


@pytest.mark.parametrize(("payload_object", "expected"), CLASSIFY_ROWS)
def test_classify_webinar(payload_object: Mapping[str, object], expected: str | None) -> None:
    assert classify_webinar(payload_object) == expected


def test_classify_feeds_webinar_decision() -> None:
    reason = classify_webinar({"event_id": "ev1", "session_id": "s1", "type": 2})
    facts = WebinarFacts(sync_enabled=True, unsupported_reason=reason)
    assert webinar_decision(PORTAL, HOST, facts) is WebinarSkipReason.UNSUPPORTED_WEBINAR


# --------------------------------------------------------------------------------------------------
# email_decision (M4, R2, R3, R4, R5, S4)
# --------------------------------------------------------------------------------------------------

NOTHING_KNOWN = HubSpotFacts()

EMAIL_ROWS = [
    pytest.param("jane@customer.io", NOTHING_KNOWN, None, id="baseline-valid-new-contact"),
    pytest.param("  Jane@Customer.IO ", NOTHING_KNOWN, None, id="baseline-padded-mixed-case"),
    pytest.param(None, NOTHING_KNOWN, EmailExclusion.NO_EMAIL, id="M4-none"),
    pytest.param("", NOTHING_KNOWN, EmailExclusion.NO_EMAIL, id="M4-empty-string"),
    pytest.param("   ", NOTHING_KNOWN, EmailExclusion.NO_EMAIL, id="M4-blank"),
    pytest.param(
        "",
        HubSpotFacts(is_account_user=True),
        EmailExclusion.NO_EMAIL,
        id="M4-before-everything",
    ),
    pytest.param("not-an-email", NOTHING_KNOWN, EmailExclusion.INVALID_EMAIL, id="R5-invalid"),
    pytest.param(
        "jane@@customer.io",
        HubSpotFacts(is_account_user=True),
        EmailExclusion.INVALID_EMAIL,
        id="R5-invalid-before-hubspot-user",
    ),
    pytest.param(
        "\u212aelvin@customer.io",
        NOTHING_KNOWN,
        EmailExclusion.INVALID_EMAIL,
        id="R5-non-ascii-checked-before-lowercasing",
    ),
    pytest.param(
        "user@customer.io",
        HubSpotFacts(is_account_user=True),
        EmailExclusion.HUBSPOT_USER,
        id="R2-hubspot-user",
    ),
    pytest.param(
        "user@customer.io",
        HubSpotFacts(is_account_user=True, contact_exists=True),
        EmailExclusion.HUBSPOT_USER,
        id="R2-hubspot-user-existing-contact-gets-no-activity",
    ),
    pytest.param(
        "user@customer.io",
        HubSpotFacts(is_account_user=True, is_secondary_email=True),
        EmailExclusion.HUBSPOT_USER,
        id="R2-before-R3",
    ),
    pytest.param(
        "alt@customer.io",
        HubSpotFacts(is_secondary_email=True, contact_exists=True),
        EmailExclusion.SECONDARY_EMAIL,
        id="R3-secondary-email",
    ),
    pytest.param(
        "alt@customer.io",
        HubSpotFacts(is_secondary_email=True, is_deleted_contact=True),
        EmailExclusion.SECONDARY_EMAIL,
        id="R3-before-R4",
    ),
    pytest.param(
        "gone@customer.io",
        HubSpotFacts(is_deleted_contact=True),
        EmailExclusion.DELETED_CONTACT,
        id="R4-deleted-contact",
    ),
    pytest.param(
        "gone@acme.com",
        HubSpotFacts(is_deleted_contact=True),
        EmailExclusion.DELETED_CONTACT,
        id="R4-before-S4",
    ),
    pytest.param(
        "staff@acme.com",
        NOTHING_KNOWN,
        EmailExclusion.EXCLUDED_DOMAIN,
        id="S4-excluded-domain-unknown-contact",
    ),
    pytest.param(
        "staff@acme.com",
        HubSpotFacts(contact_exists=False),
        EmailExclusion.EXCLUDED_DOMAIN,
        id="S4-excluded-domain-new-contact",
    ),
    pytest.param(
        "staff@eu.ACME.com",
        HubSpotFacts(contact_exists=False),
        EmailExclusion.EXCLUDED_DOMAIN,
        id="S4-excluded-subdomain",
    ),
    pytest.param(
        "staff@acme.com",
        HubSpotFacts(contact_exists=True),
        None,
        id="S4-existing-contact-is-updated",
    ),
    pytest.param("someone@notacme.com", NOTHING_KNOWN, None, id="S4-lookalike-domain-allowed"),
    pytest.param(
        "user@customer.io",
        HubSpotFacts(
            is_account_user=False, is_secondary_email=False, is_deleted_contact=False, contact_exists=True
        ),
        None,
        id="all-facts-no-existing-contact-syncs",
    ),
]


@pytest.mark.parametrize(("raw_email", "facts", "expected"), EMAIL_ROWS)
def test_email_decision(raw_email: str | None, facts: HubSpotFacts, expected: EmailExclusion | None) -> None:
    assert email_decision(raw_email, PORTAL, facts) is expected


# --------------------------------------------------------------------------------------------------
# recording_decision (S2, S3 recording exclusions, S5)
# --------------------------------------------------------------------------------------------------

OFF = RecordingSkipReason.SETTINGS_OFF
SELECTED = {"recording_sync": "selected"}

RECORDING_ROWS = [
    pytest.param(PORTAL, HOST, True, None, id="S2-all"),
    pytest.param(PORTAL, HOST, False, OFF, id="RC1-webinar-not-synced"),
    pytest.param(portal(recording_sync="none"), HOST, True, OFF, id="S2-none"),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({HOST.zoom_user_id})),
        HOST,
        True,
        None,
        id="S2-selected-by-zoom-user-id",
    ),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({"host@zoomcustomer.com"})),
        host(email="Host@ZoomCustomer.com"),
        True,
        None,
        id="S2-selected-by-email-any-case",
    ),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({"someone-else", "other@zoomcustomer.com"})),
        HOST,
        True,
        OFF,
        id="S2-selected-host-not-listed",
    ),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({HOST.zoom_user_id.lower()})),
        HOST,
        True,
        OFF,
        id="S2-selected-zoom-user-id-is-case-sensitive",
    ),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({"host@zoomcustomer.com"})),
        host(email=None),
        True,
        OFF,
        id="S2-selected-unknown-email-not-listed",
    ),
    pytest.param(portal(recording_sync="bogus"), HOST, True, OFF, id="S2-unknown-mode-fails-closed"),
    pytest.param(PORTAL, host(sync_recordings=False), True, OFF, id="S5-host-sync-recordings-off"),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({HOST.zoom_user_id})),
        host(sync_recordings=False),
        True,
        OFF,
        id="S5-host-off-even-when-selected",
    ),
    pytest.param(
        PORTAL,
        host(email="counsel@legal.example"),
        True,
        OFF,
        id="S3-recording-exclusion-domain",
    ),
    pytest.param(
        PORTAL,
        host(email="counsel@ny.legal.example"),
        True,
        OFF,
        id="S3-recording-exclusion-subdomain",
    ),
    pytest.param(
        portal(**SELECTED, recording_sync_users=frozenset({"counsel@legal.example"})),
        host(email="counsel@legal.example"),
        True,
        OFF,
        id="S3-recording-exclusion-beats-selection",
    ),
    pytest.param(PORTAL, host(email=None), True, None, id="S3-recording-unknown-host-email"),
]


@pytest.mark.parametrize(("portal_rules", "host_facts", "webinar_syncs", "expected"), RECORDING_ROWS)
def test_recording_decision(
    portal_rules: PortalRules,
    host_facts: HostFacts,
    webinar_syncs: bool,
    expected: RecordingSkipReason | None,
) -> None:
    assert recording_decision(portal_rules, host_facts, webinar_syncs) is expected


# --------------------------------------------------------------------------------------------------
# Email syntax (R5) and normalisation
# --------------------------------------------------------------------------------------------------

# "a@" + a 252-character domain (four 61-letter labels and "comm").
EMAIL_254 = "a@" + ("b" * 61 + ".") * 4 + "comm"

VALID_EMAILS = [
    pytest.param("jane@example.com", id="R5-valid-simple"),
    pytest.param("Jane.Doe@Example.COM", id="R5-valid-mixed-case"),
    pytest.param("jane.doe+webinar@mail.example.co.uk", id="R5-valid-plus-subdomains"),
    pytest.param("o'brien_x-y@ex-ample.io", id="R5-valid-apostrophe-underscore-hyphen"),
    pytest.param("a@b.co", id="R5-valid-shortest-practical"),
    pytest.param("x@123.example.com", id="R5-valid-numeric-label"),
    pytest.param("x@example.xn--p1ai", id="R5-valid-punycode-tld"),
    pytest.param("l" * 64 + "@example.com", id="R5-valid-local-64"),
    pytest.param("a@" + "b" * 63 + ".com", id="R5-valid-label-63"),
    pytest.param(EMAIL_254, id="R5-valid-total-254"),
]

INVALID_EMAILS = [
    pytest.param("", id="R5-invalid-empty"),
    pytest.param("plainaddress", id="R5-invalid-no-at"),
    pytest.param("@example.com", id="R5-invalid-empty-local"),
    pytest.param("jane@", id="R5-invalid-empty-domain"),
    pytest.param("jane@@example.com", id="R5-invalid-two-ats"),
    pytest.param("ja@ne@example.com", id="R5-invalid-at-in-local"),
    pytest.param("jane doe@example.com", id="R5-invalid-space-local"),
    pytest.param("jane@exa mple.com", id="R5-invalid-space-domain"),
    pytest.param(" jane@example.com", id="R5-invalid-leading-space"),
    pytest.param("jane\t@example.com", id="R5-invalid-tab"),
    pytest.param("jane..doe@example.com", id="R5-invalid-double-dot-local"),
    pytest.param("jane@example..com", id="R5-invalid-double-dot-domain"),
    pytest.param(".jane@example.com", id="R5-invalid-leading-dot-local"),
    pytest.param("jane.@example.com", id="R5-invalid-trailing-dot-local"),
    pytest.param("jane@.example.com", id="R5-invalid-leading-dot-domain"),
    pytest.param("jane@example.com.", id="R5-invalid-trailing-dot-domain"),
    pytest.param("jane@localhost", id="R5-invalid-no-tld"),
    pytest.param("jane@example.c", id="R5-invalid-one-letter-tld"),
    pytest.param("jane@example.c0m", id="R5-invalid-digit-tld"),
    pytest.param("jane@-example.com", id="R5-invalid-leading-hyphen-label"),
    pytest.param("jane@example-.com", id="R5-invalid-trailing-hyphen-label"),
    pytest.param("jane@exa_mple.com", id="R5-invalid-underscore-domain"),
    pytest.param("jos\u00e9@example.com", id="R5-invalid-unicode-local"),
    pytest.param("jane@b\u00fccher.de", id="R5-invalid-unicode-domain"),
    pytest.param("\u5f20\u4f1f@\u4f8b\u5b50.\u4e2d\u56fd", id="R5-invalid-unicode-all"),
    pytest.param('"jane doe"@example.com', id="R5-invalid-quoted-local"),
    pytest.param("jane@[192.168.0.1]", id="R5-invalid-ip-literal"),
    pytest.param("jane(comment)@example.com", id="R5-invalid-parenthesis"),
    pytest.param("l" * 65 + "@example.com", id="R5-invalid-local-65"),
    pytest.param("a@" + "b" * 64 + ".com", id="R5-invalid-label-64"),
    pytest.param("b" + EMAIL_254, id="R5-invalid-total-255"),
]


@pytest.mark.parametrize("email", VALID_EMAILS)
def test_is_valid_email_accepts(email: str) -> None:
    assert is_valid_email(email)


@pytest.mark.parametrize("email", INVALID_EMAILS)
def test_is_valid_email_rejects(email: str) -> None:
    assert not is_valid_email(email)


def test_length_fixtures_are_what_they_claim() -> None:
    assert len(EMAIL_254) == 254
    assert len("b" + EMAIL_254) == 255
    # The 255-character address fails only on total length: its parts are individually valid.
    assert len(email_domain(EMAIL_254)) == 252
    assert normalize_domain(email_domain(EMAIL_254)) == email_domain(EMAIL_254)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, None, id="M4-normalize-none"),
        pytest.param("", None, id="M4-normalize-empty"),
        pytest.param(" \t\n", None, id="M4-normalize-blank"),
        pytest.param("  Jane.Doe@Example.COM\n", "jane.doe@example.com", id="normalize-strip-lower"),
        pytest.param("not an email", "not an email", id="normalize-does-not-validate"),
    ],
)
def test_normalize_email(raw: str | None, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        pytest.param("jane@Example.COM", "example.com", id="domain-lower-cased"),
        pytest.param("odd@name@eu.acme.com", "eu.acme.com", id="domain-after-last-at"),
        pytest.param("jane@acme.com.", "acme.com", id="domain-trailing-dot-dropped"),
        pytest.param("no-at-sign", "", id="domain-missing"),
    ],
)
def test_email_domain(email: str, expected: str) -> None:
    assert email_domain(email) == expected


# --------------------------------------------------------------------------------------------------
# Domain matching (S3, S4)
# --------------------------------------------------------------------------------------------------

ACME = frozenset({"acme.com"})

DOMAIN_MATCH_ROWS = [
    pytest.param("a@acme.com", ACME, True, id="match-exact"),
    pytest.param("a@eu.acme.com", ACME, True, id="match-subdomain"),
    pytest.param("a@x.eu.acme.com", ACME, True, id="match-deep-subdomain"),
    pytest.param("A@EU.ACME.COM", ACME, True, id="match-case-insensitive-email"),
    pytest.param("a@acme.com", frozenset({"ACME.com"}), True, id="match-case-insensitive-list"),
    pytest.param("a@acme.com", frozenset({"@acme.com."}), True, id="match-tolerates-uncanonical-list"),
    pytest.param("a@notacme.com", ACME, False, id="no-match-lookalike-prefix"),
    pytest.param("a@acme.com.evil.io", ACME, False, id="no-match-domain-as-subdomain-elsewhere"),
    pytest.param("a@acme.co", ACME, False, id="no-match-other-tld"),
    pytest.param("a@com", ACME, False, id="no-match-parent-only"),
    pytest.param("a@eu.acme.com", frozenset({"eu.acme.com"}), True, id="match-listed-subdomain"),
    pytest.param("a@acme.com", frozenset({"eu.acme.com"}), False, id="no-match-parent-of-listed-subdomain"),
    pytest.param("a@acme.com", frozenset(), False, id="no-match-empty-list"),
    pytest.param("acme.com", ACME, False, id="no-match-no-at"),
    pytest.param("a@acme.com", frozenset({"", "other.org", "acme.com"}), True, id="match-among-several"),
]


@pytest.mark.parametrize(("email", "domains", "expected"), DOMAIN_MATCH_ROWS)
def test_domain_matches(email: str, domains: frozenset[str], expected: bool) -> None:
    assert domain_matches(email, domains) is expected


# --------------------------------------------------------------------------------------------------
# normalize_domain (admin input for S3/S4 lists)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("acme.com", "acme.com", id="domain-plain"),
        pytest.param("  ACME.Com  ", "acme.com", id="domain-strip-lower"),
        pytest.param("@acme.com", "acme.com", id="domain-leading-at"),
        pytest.param("acme.com.", "acme.com", id="domain-trailing-dot"),
        pytest.param(" @EU.Acme.com. ", "eu.acme.com", id="domain-all-cleanups"),
        pytest.param("my-company.co.uk", "my-company.co.uk", id="domain-hyphen-multi-label"),
        pytest.param("xn--bcher-kva.de", "xn--bcher-kva.de", id="domain-punycode"),
    ],
)
def test_normalize_domain_accepts(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message_part"),
    [
        pytest.param("", "empty", id="domain-empty"),
        pytest.param("  @ ", "empty", id="domain-only-at"),
        pytest.param("localhost", "at least one dot", id="domain-no-dot"),
        pytest.param("acme..com", "empty label", id="domain-double-dot"),
        pytest.param(".acme.com", "empty label", id="domain-leading-dot"),
        pytest.param("acme.com..", "empty label", id="domain-two-trailing-dots"),
        pytest.param("-acme.com", "hyphen", id="domain-leading-hyphen"),
        pytest.param("acme-.com", "hyphen", id="domain-trailing-hyphen"),
        pytest.param("ac me.com", "' '", id="domain-space"),
        pytest.param("user@acme.com", "'@'", id="domain-is-an-email"),
        pytest.param("https://acme.com", "':'", id="domain-is-a-url"),
        pytest.param("acme.c", "top-level domain", id="domain-short-tld"),
        pytest.param("acme.123", "top-level domain", id="domain-numeric-tld"),
        pytest.param("b\u00fccher.de", "non-ASCII", id="domain-unicode"),
        pytest.param("\u212acme.com", "non-ASCII", id="domain-unicode-lowercasing-to-ascii"),
        pytest.param("a" * 64 + ".com", "longer than 63", id="domain-label-too-long"),
        pytest.param(("a" * 63 + ".") * 4 + "com", "longer than 253", id="domain-too-long"),
    ],
)
def test_normalize_domain_rejects(raw: str, message_part: str) -> None:
    with pytest.raises(ValueError, match="is not a valid domain name") as excinfo:
        normalize_domain(raw)
    assert message_part in str(excinfo.value)


def test_normalized_domains_match_emails() -> None:
    domains = frozenset(normalize_domain(d) for d in ["@Acme.com", "partner.org."])
    rules = dataclasses.replace(PORTAL, contact_exclusion_domains=domains)
    assert email_decision("x@eu.acme.com", rules, NOTHING_KNOWN) is EmailExclusion.EXCLUDED_DOMAIN
    assert domain_matches("y@partner.org", domains)


def test_reason_values_match_contract() -> None:
    """CONTRACT.md §3 names these strings in audit details; they must not drift."""
    assert {e.value for e in EmailExclusion} == {
        "hubspot_user",
        "excluded_domain",
        "invalid_email",
        "secondary_email",
        "deleted_contact",
        "no_email",
    }
    assert RecordingSkipReason.SETTINGS_OFF.value == "settings_off"
    assert WebinarSkipReason.UNSUPPORTED_WEBINAR.value == "unsupported_webinar"
