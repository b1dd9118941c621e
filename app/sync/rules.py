"""Pure eligibility rules: which webinars, emails and recordings are synced to HubSpot.

Everything here is a function from *facts* to a *decision*: no I/O, no database, no clock.
The worker gathers the facts (portal settings, the Zoom host's settings, the webinar's switch,
what HubSpot knows about an email) and calls these functions; the returned reason values are the
``details.reason`` / ``details.counts`` keys of the audit log (CONTRACT.md §3).

Requirement IDs (MISSION.md) are named next to each rule:

* M3 - Zoom Events / Zoom Sessions webinars are never synced (:func:`classify_webinar`).
* M4 - a participant whose email Zoom removed cannot be synced.
* R2 / R3 / R4 / R5 - HubSpot users, secondary emails, deleted contacts and invalid emails are excluded.
* S1 - the account-level global sync and the portal's "sync webinar data" switch.
* S2 / S3 / S5 - recording settings, exclusion domains and the per-user / per-webinar switches.
* S4 - contact exclusion domains (the company's own domains are never created as new contacts).

A little over 500 lines on purpose: every eligibility rule of the mission sits here beside its
requirement ID, so "why was this email skipped" has one place to read.

Domains
-------
All domain sets are expected in the canonical form produced by :func:`normalize_domain` (lower-case,
no leading ``@``, no trailing ``.``); :func:`domain_matches` canonicalises them again defensively.
An email matches a domain when its domain *is* that domain or a subdomain of it:
``a@eu.acme.com`` matches ``acme.com``, ``a@notacme.com`` does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "RECORDING_SYNC_ALL",
    "RECORDING_SYNC_NONE",
    "RECORDING_SYNC_SELECTED",
    "EmailExclusion",
    "HostFacts",
    "HubSpotFacts",
    "PortalRules",
    "RecordingSkipReason",
    "WebinarFacts",
    "WebinarSkipReason",
    "classify_webinar",
    "domain_matches",
    "email_decision",
    "email_domain",
    "is_valid_email",
    "normalize_domain",
    "normalize_email",
    "recording_decision",
    "recording_status",
    "webinar_decision",
]

RECORDING_SYNC_NONE: Final = "none"
RECORDING_SYNC_ALL: Final = "all"
RECORDING_SYNC_SELECTED: Final = "selected"


# --------------------------------------------------------------------------------------------------
# Decisions and facts
# --------------------------------------------------------------------------------------------------


class WebinarSkipReason(StrEnum):
    """Why a whole webinar is not synced (``None`` from :func:`webinar_decision` means it syncs)."""

    GLOBAL_SYNC_OFF = "global_sync_off"  # S1: account-level global sync is off
    WEBINAR_SYNC_OFF = "webinar_sync_off"  # S1: portal switch "sync webinar data" is off
    HOST_EXCLUDED_DOMAIN = "host_excluded_domain"  # S3: host email domain in exclusion_domains
    HOST_DEFAULT_OFF = "host_default_off"  # S5: host default off and no per-webinar override
    WEBINAR_OFF = "webinar_off"  # S5: per-webinar switch explicitly off
    UNSUPPORTED_WEBINAR = "unsupported_webinar"  # M3: Zoom Events / Zoom Sessions webinar


class EmailExclusion(StrEnum):
    """Why an email creates / updates no contact and carries no activity (audit ``emails_excluded``)."""

    NO_EMAIL = "no_email"  # M4: guest whose email Zoom removed ("" or None)
    INVALID_EMAIL = "invalid_email"  # R5
    HUBSPOT_USER = "hubspot_user"  # R2
    SECONDARY_EMAIL = "secondary_email"  # R3
    DELETED_CONTACT = "deleted_contact"  # R4
    EXCLUDED_DOMAIN = "excluded_domain"  # S4


class RecordingSkipReason(StrEnum):
    """Why a webinar's recording / transcript is not synced (audit ``recording_not_synced``)."""

    SETTINGS_OFF = "settings_off"
    NO_PARTICIPANTS = "no_participants"
    NO_RECORDING = "no_recording"
    PROCESSING = "processing"


@dataclass(frozen=True, slots=True)
class PortalRules:
    """The portal-wide settings (S1-S4) the rules need."""

    global_sync_enabled: bool
    webinar_sync_enabled: bool
    exclusion_domains: frozenset[str]  # lower-case domains (S3, webinars of these hosts)
    contact_exclusion_domains: frozenset[str]  # S4
    recording_sync: str  # "none" | "all" | "selected" (S2)
    recording_sync_users: frozenset[str]  # Zoom user ids or emails (lower-case emails)
    recording_exclusion_domains: frozenset[str]  # S3, recordings of these hosts


@dataclass(frozen=True, slots=True)
class HostFacts:
    """The Zoom user hosting the webinar, with its S5 settings."""

    zoom_user_id: str
    email: str | None  # may be unknown
    sync_new_webinars_by_default: bool
    sync_recordings: bool


@dataclass(frozen=True, slots=True)
class WebinarFacts:
    """Per-webinar facts."""

    sync_enabled: bool | None  # per-webinar override (S5); None = follow the host default
    unsupported_reason: str | None  # from classify_webinar when it is a Zoom Events/Sessions webinar
    # The host's default as it was when the webinar was first seen (S5 applies it to newly scheduled
    # webinars only); None = not captured yet, the host's current default applies.
    host_default_sync: bool | None = None


@dataclass(frozen=True, slots=True)
class HubSpotFacts:
    """What HubSpot told us about an email. ``None`` = not known yet (HubSpot not consulted)."""

    is_account_user: bool | None = None
    is_secondary_email: bool | None = None
    is_deleted_contact: bool | None = None
    contact_exists: bool | None = None


# --------------------------------------------------------------------------------------------------
# Syntax: emails and domains
# --------------------------------------------------------------------------------------------------

_MAX_EMAIL_LENGTH: Final = 254
_MAX_LOCAL_LENGTH: Final = 64
_MAX_DOMAIN_LENGTH: Final = 253
_MAX_LABEL_LENGTH: Final = 63

_ASCII_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_DIGITS: Final = frozenset("0123456789")
_LABEL_CHARS: Final = _ASCII_LETTERS | _ASCII_DIGITS | {"-"}
# RFC 5322 "atext" (unquoted local part), plus "." handled separately.
_LOCAL_CHARS: Final = _ASCII_LETTERS | _ASCII_DIGITS | frozenset("!#$%&'*+/=?^_`{|}~-")


def _label_problem(label: str) -> str | None:
    """Why ``label`` is not a valid DNS label (letters, digits, hyphens; 1-63; no edge hyphen)."""
    if not label:
        return "it has an empty label (consecutive dots, or a leading or trailing dot)"
    if len(label) > _MAX_LABEL_LENGTH:
        return f"the label {label!r} is longer than {_MAX_LABEL_LENGTH} characters"
    bad = sorted({ch for ch in label if ch not in _LABEL_CHARS})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        return f"the label {label!r} contains {shown}; only letters, digits and hyphens are allowed"
    if label.startswith("-") or label.endswith("-"):
        return f"the label {label!r} starts or ends with a hyphen"
    return None


def _tld_problem(tld: str) -> str | None:
    """Why ``tld`` is not an acceptable top-level domain (>= 2 letters, or an ``xn--`` IDN label)."""
    if tld.startswith("xn--") and len(tld) > len("xn--"):
        return None
    if len(tld) < 2 or any(ch not in _ASCII_LETTERS for ch in tld):
        return f"the top-level domain {tld!r} must be at least two letters"
    return None


def _domain_problem(domain: str) -> str | None:
    """Why ``domain`` (already stripped) is not a valid domain name, or ``None`` if it is."""
    if not domain:
        return "it is empty"
    if not domain.isascii():
        return "it contains non-ASCII characters (use the punycode 'xn--' form for international names)"
    if len(domain) > _MAX_DOMAIN_LENGTH:
        return f"it is longer than {_MAX_DOMAIN_LENGTH} characters"
    labels = domain.split(".")
    if len(labels) < 2:
        return "it needs at least one dot (for example 'example.com')"
    for label in labels:
        problem = _label_problem(label)
        if problem is not None:
            return problem
    return _tld_problem(labels[-1])


def _local_part_ok(local: str) -> bool:
    if not local or len(local) > _MAX_LOCAL_LENGTH:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return all(ch in _LOCAL_CHARS or ch == "." for ch in local)


def normalize_email(raw: str | None) -> str | None:
    """Strip surrounding whitespace and lower-case; ``None`` and blank strings become ``None``.

    Zoom sends ``""`` for guests whose email it removed (M4), so both ``None`` and ``""`` mean
    "no email". Syntax is *not* checked here; see :func:`is_valid_email`.
    """
    if raw is None:
        return None
    email = raw.strip().lower()
    return email or None


def is_valid_email(email: str) -> bool:
    """Practical syntax check for an address HubSpot can hold as a contact email (R5).

    Accepts ``local@domain`` where: there is exactly one ``@``; the local part is 1-64 unquoted
    RFC 5322 "atext" characters and dots, with no leading, trailing or consecutive dot; the domain has
    at least one dot and labels of ASCII letters, digits and hyphens (1-63 chars, no leading/trailing
    hyphen); the top-level domain is at least two letters (or a punycode ``xn--`` label); the whole
    address is at most 254 characters. No whitespace and no non-ASCII characters are accepted
    (quoted local parts, IP-literal domains and SMTPUTF8 addresses are rejected on purpose).
    The check is case-insensitive and does not strip: pass an already stripped string.
    """
    if not email or len(email) > _MAX_EMAIL_LENGTH or not email.isascii():
        return False
    local, sep, domain = email.partition("@")
    if not sep or "@" in domain:
        return False
    return _local_part_ok(local) and _domain_problem(domain) is None


def email_domain(email: str) -> str:
    """The lower-cased domain of ``email`` (text after the last ``@``, without a trailing dot).

    Returns ``""`` when there is no ``@``. Does not validate.
    """
    _, sep, domain = email.strip().rpartition("@")
    if not sep:
        return ""
    return domain.strip().rstrip(".").lower()


def _canonical_domain(domain: str) -> str:
    domain = domain.strip().lower()
    domain = domain.removeprefix("@")
    return domain.removesuffix(".")


@lru_cache(maxsize=512)
def _canonical_domains(domains: frozenset[str]) -> frozenset[str]:
    return frozenset(c for c in (_canonical_domain(d) for d in domains) if c)


def domain_matches(email: str, domains: frozenset[str]) -> bool:
    """True when the email's domain equals one of ``domains`` or is a subdomain of one.

    ``a@eu.acme.com`` matches ``acme.com``; ``a@notacme.com`` does not (matching is label-wise,
    never a plain suffix test). Case-insensitive. An email without a domain matches nothing.
    """
    if not domains:
        return False
    domain = email_domain(email)
    if not domain:
        return False
    wanted = _canonical_domains(domains)
    labels = domain.split(".")
    # Check "eu.acme.com", then "acme.com", then "com": each is a whole-label suffix.
    return any(".".join(labels[i:]) in wanted for i in range(len(labels)))


def normalize_domain(raw: str) -> str:
    """Canonicalise a domain typed by an admin (exclusion lists, S3/S4), or raise ``ValueError``.

    Strips whitespace, lower-cases, removes one leading ``@`` (``@acme.com``) and one trailing ``.``
    (``acme.com.``), then requires a valid domain name: ASCII labels of letters, digits and hyphens
    (1-63 characters, no leading/trailing hyphen), at least one dot, a top-level domain of at least
    two letters (or a punycode ``xn--`` label), at most 253 characters.
    """
    text = raw.strip()
    # Check ASCII before lower-casing: some non-ASCII characters lower-case to ASCII (U+212A -> "k").
    if not text.isascii():
        raise ValueError(
            f"{raw!r} is not a valid domain name: it contains non-ASCII characters "
            "(use the punycode 'xn--' form for international names)"
        )
    domain = _canonical_domain(text)
    problem = _domain_problem(domain)
    if problem is not None:
        raise ValueError(f"{raw!r} is not a valid domain name: {problem}")
    return domain


# --------------------------------------------------------------------------------------------------
# M3: classic webinar or Zoom Events / Sessions?
# --------------------------------------------------------------------------------------------------

_CLASSIC_WEBINAR_TYPES: Final = frozenset({5, 6, 9})  # 5 webinar, 6 recurring no fixed time, 9 recurring
_EVENTS_KEYS: Final = ("event_id", "session_id", "hub_id")
_EVENTS_SOURCE_MARKERS: Final = ("zoom_events", "events", "sessions")


def _as_int(value: object) -> int | None:
    """``value`` as an int when it is an int, an integral float or a numeric string; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in {"+", "-"}:
            sign, digits = text[0], text[1:]
        else:
            sign, digits = "", text
        if digits.isascii() and digits.isdigit():
            return int(sign + digits)
    return None


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def classify_webinar(payload_object: Mapping[str, object]) -> str | None:
    """Return a short reason when ``payload_object`` is a Zoom Events / Zoom Sessions webinar (M3).

    ``payload_object`` is a webhook ``payload.object`` or a ``GET /webinars/{id}`` response.
    ``None`` means "treat as a classic webinar". The object is classified as unsupported when:

    1. it carries a non-empty ``event_id``, ``session_id`` or ``hub_id`` (Zoom Events session,
       ticket and hub payloads have these; classic webinars do not) -> ``"events_field:<key>"``;
    2. its ``creation_source`` contains ``zoom_events``, ``events`` or ``sessions``
       (case-insensitive) -> ``"creation_source:<value>"``;
    3. its ``type`` is present and is not a classic webinar type 5, 6 or 9 (an int, integral float or
       numeric string is read as a number; anything else, such as ``"abc"`` or ``true``, counts as
       not classic) -> ``"webinar_type:<value>"``.

    Missing fields are tolerated: a missing or null ``type`` is *not* a reason to skip, and a key
    whose value is null or an empty string counts as absent.

    Limits: Zoom documents that classic webinars have ``type`` 5/6/9 and that Zoom Events sessions
    carry ``event_id``/``session_id`` without a classic ``uuid``/``topic``. Whether classic
    ``webinar.*`` events also fire for Events-backed webinars, and whether any field (such as
    ``creation_source``) marks them, is UNVERIFIED: an Events-backed webinar that looks exactly like
    a classic one passes as classic. The only reliable test is to map ``webinar_id`` values from the
    Zoom Events API (``GET /zoom_events/events/{eventId}/sessions/{sessionId}``), which is I/O and
    therefore not done here; a caller that knows it can set ``WebinarFacts.unsupported_reason``.
    """
    for key in _EVENTS_KEYS:
        if key in payload_object and not _is_blank(payload_object[key]):
            return f"events_field:{key}"

    source = payload_object.get("creation_source")
    if isinstance(source, str):
        lowered = source.strip().lower()
        if any(marker in lowered for marker in _EVENTS_SOURCE_MARKERS):
            return f"creation_source:{lowered}"

    raw_type = payload_object.get("type")
    if not _is_blank(raw_type):
        webinar_type = _as_int(raw_type)
        if webinar_type not in _CLASSIC_WEBINAR_TYPES:
            shown = str(raw_type).strip() if webinar_type is None else str(webinar_type)
            return f"webinar_type:{shown[:40]}"
    return None


# --------------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------------


def webinar_decision(portal: PortalRules, host: HostFacts, webinar: WebinarFacts) -> WebinarSkipReason | None:
    """Decide whether a webinar's data (registrants, attendees, marketing event) is synced.

    Returns ``None`` when it syncs, else the first reason that applies, in this order:

    1. ``UNSUPPORTED_WEBINAR`` (M3) - Zoom Events / Sessions webinars never sync, whatever the
       settings, so the audit log always names the real cause;
    2. ``GLOBAL_SYNC_OFF`` (S1) - the account-level global sync is off;
    3. ``WEBINAR_SYNC_OFF`` (S1) - the portal switch "sync webinar data" is off;
    4. ``HOST_EXCLUDED_DOMAIN`` (S3) - the host's email is in (a subdomain of) an exclusion domain;
       a host whose email is unknown is not excluded;
    5. the per-webinar switch (S5): explicit ``True`` syncs even when the host's default is off,
       explicit ``False`` gives ``WEBINAR_OFF``;
    6. ``HOST_DEFAULT_OFF`` (S5) - no per-webinar override and the host's "sync newly scheduled
       webinars by default" was off when the webinar was first seen (the host's current default
       when that was not captured): changing the default later does not move webinars already seen.
    """
    if webinar.unsupported_reason is not None:
        return WebinarSkipReason.UNSUPPORTED_WEBINAR
    if not portal.global_sync_enabled:
        return WebinarSkipReason.GLOBAL_SYNC_OFF
    if not portal.webinar_sync_enabled:
        return WebinarSkipReason.WEBINAR_SYNC_OFF
    if host.email is not None and domain_matches(host.email, portal.exclusion_domains):
        return WebinarSkipReason.HOST_EXCLUDED_DOMAIN
    if webinar.sync_enabled is True:
        return None
    if webinar.sync_enabled is False:
        return WebinarSkipReason.WEBINAR_OFF
    default = webinar.host_default_sync
    if default is None:
        default = host.sync_new_webinars_by_default
    if not default:
        return WebinarSkipReason.HOST_DEFAULT_OFF
    return None


def email_decision(
    raw_email: str | None, portal: PortalRules, hubspot: HubSpotFacts
) -> EmailExclusion | None:
    """Decide whether an email may create / update a contact and carry Zoom activity.

    Returns ``None`` when it may, else the first reason that applies, in this order:

    1. ``NO_EMAIL`` (M4) - ``None`` or blank (Zoom removed a guest's email);
    2. ``INVALID_EMAIL`` (R5) - fails :func:`is_valid_email` (checked on the stripped input, before
       lower-casing, so odd characters cannot lower-case into a valid address);
    3. ``HUBSPOT_USER`` (R2) - a user of the HubSpot account: never created, and even an existing
       contact gets no activity;
    4. ``SECONDARY_EMAIL`` (R3) - a contact's secondary email: no contact, event or registration;
    5. ``DELETED_CONTACT`` (R4) - deleted in HubSpot: never re-created automatically;
    6. ``EXCLUDED_DOMAIN`` (S4) - in a contact exclusion domain *and* no contact exists for it yet
       (the company's own people are never created as *new* contacts; an existing contact with
       such an email is still updated).

    Unknown (``None``) HubSpot facts count as "no"; in particular an unknown ``contact_exists``
    counts as "does not exist", so S4 fails closed.
    """
    stripped = raw_email.strip() if raw_email is not None else ""
    if not stripped:
        return EmailExclusion.NO_EMAIL
    if not is_valid_email(stripped):
        return EmailExclusion.INVALID_EMAIL
    if hubspot.is_account_user is True:
        return EmailExclusion.HUBSPOT_USER
    if hubspot.is_secondary_email is True:
        return EmailExclusion.SECONDARY_EMAIL
    if hubspot.is_deleted_contact is True:
        return EmailExclusion.DELETED_CONTACT
    if hubspot.contact_exists is not True and domain_matches(stripped, portal.contact_exclusion_domains):
        return EmailExclusion.EXCLUDED_DOMAIN
    return None


def recording_decision(
    portal: PortalRules, host: HostFacts, webinar_syncs: bool
) -> RecordingSkipReason | None:
    """Decide whether a webinar's recordings and transcripts are synced (RC1, subject to S2/S3/S5).

    Interpretation: the portal's list (S2) and the host's own switch (S5) must *both* allow it,
    and the recording exclusion domains (S3) can still veto it. ``None`` (sync) only when all hold:

    * ``webinar_syncs`` - the webinar's data syncs at all (see :func:`webinar_decision`);
    * S2: ``recording_sync`` is ``"all"``, or ``"selected"`` with the host's ``zoom_user_id``
      (exact) or email (case-insensitive) in ``recording_sync_users``; ``"none"`` or any unknown
      value allows nothing;
    * S5: the host's ``sync_recordings`` is on;
    * S3: the host's email is not in (a subdomain of) ``recording_exclusion_domains``; a host whose
      email is unknown is not excluded.

    Otherwise ``SETTINGS_OFF`` (audit ``recording_not_synced`` with ``details.reason`` ``settings_off``).
    """
    if not webinar_syncs:
        return RecordingSkipReason.SETTINGS_OFF
    if not _host_selected_for_recordings(portal, host):
        return RecordingSkipReason.SETTINGS_OFF
    if not host.sync_recordings:
        return RecordingSkipReason.SETTINGS_OFF
    if host.email is not None and domain_matches(host.email, portal.recording_exclusion_domains):
        return RecordingSkipReason.SETTINGS_OFF
    return None


RECORDING_MEDIA_TYPES = frozenset({"MP4", "M4A", "TRANSCRIPT"})


def recording_status(
    decision: RecordingSkipReason | None, files: Sequence[Mapping[str, Any]], synced_attendees: int
) -> RecordingSkipReason | None:
    """Whether one recording becomes a call record now, given the settings decision (A1 b).

    * the settings decision (:func:`recording_decision`) comes first;
    * ``NO_RECORDING``: no video, audio or transcript file (never recorded, or deleted at Zoom);
    * ``PROCESSING``: a file Zoom is still processing: wait for the transcript event or Sync now;
    * ``NO_PARTICIPANTS``: nobody who attended can be synced, so there is no contact to attach it to.
    """
    if decision is not None:
        return decision
    media = [
        f
        for f in files
        if str(f.get("file_type") or "").upper() in RECORDING_MEDIA_TYPES and not f.get("deleted_time")
    ]
    if not media:
        return RecordingSkipReason.NO_RECORDING
    if any(str(f.get("status") or "completed").lower() != "completed" for f in media):
        return RecordingSkipReason.PROCESSING
    if synced_attendees <= 0:
        return RecordingSkipReason.NO_PARTICIPANTS
    return None


def _host_selected_for_recordings(portal: PortalRules, host: HostFacts) -> bool:
    if portal.recording_sync == RECORDING_SYNC_ALL:
        return True
    if portal.recording_sync != RECORDING_SYNC_SELECTED:
        return False
    if host.zoom_user_id and host.zoom_user_id in portal.recording_sync_users:
        return True
    email = normalize_email(host.email)
    return email is not None and email in portal.recording_sync_users
