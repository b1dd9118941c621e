"""The HubSpot developer-platform project (platform 2026.03) for this service: a private app with static
auth (one HubSpot account, a static access token) and the workflow action "Add contact to Zoom webinar".

`zoom-hubspot hubspot-project --out DIR` writes it; the customer uploads it with HubSpot's CLI
(`hs project upload`), installs the app and copies its token and client secret into the service's
settings. Legacy public apps keep `zoom-hubspot register-action` (the v4 API): both are built from the
same pieces of `app/actions/definition.py`, so they describe the same action.

Everything here is pure except `write_project` and `run_hubspot_project_command`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.actions.definition import (
    ACTION_PATH,
    CONTACT_PROPERTIES,
    action_labels,
    action_url,
    execution_rules,
    input_fields,
    output_fields,
)

PLATFORM_VERSION = "2026.03"
DEFAULT_PROJECT_NAME = "zoom-webinar-sync"
# Stable: HubSpot identifies the app and the action by uid across uploads, so renaming one would make
# HubSpot see a new app (or a second action) instead of an update.
APP_UID = "zoom_webinar_sync_app"
ACTION_UID = "add_to_zoom_webinar"
APP_NAME = "Zoom webinar sync"
APP_DESCRIPTION = (
    "Syncs Zoom webinars (registrations, attendance, recordings) into HubSpot and adds the workflow "
    "action that registers contacts for a Zoom webinar."
)

PROJECT_FILE = "hsproject.json"
APP_FILE = "src/app/app-hsmeta.json"
ACTION_FILE = "src/app/workflow-actions/add-to-webinar-hsmeta.json"
README_FILE = "README.md"

# HubSpot's CLI only refuses an empty project name and HubSpot publishes no rule of its own, so this is
# a conservative subset that is safe in a folder name and a URL; 214 is our own bound, not HubSpot's.
PROJECT_NAME_MAX = 214
_PROJECT_NAME = re.compile(r"[A-Za-z0-9_-]([A-Za-z0-9 _-]*[A-Za-z0-9_-])?")


@dataclass(frozen=True)
class ScopeNeed:
    """What one feature of the service needs from HubSpot, and why."""

    feature: str
    scopes: tuple[str, ...]
    required: bool
    why: str


# The one table of scopes: the app's hsmeta file and the rendered README are both built from it.
# Required scopes are what the service cannot work without; optional ones only turn a feature off.
SCOPES_BY_FEATURE: tuple[ScopeNeed, ...] = (
    ScopeNeed("app", ("oauth",), True, "HubSpot's base scope that every app declares."),
    ScopeNeed(
        "contacts",
        ("crm.objects.contacts.read", "crm.objects.contacts.write"),
        True,
        "Find contacts by email, create or update them with the Zoom properties, and log calls "
        "(recordings) on them: HubSpot's 2026-03 specs write calls and notes with the contacts write scope.",
    ),
    ScopeNeed(
        "contact properties",
        ("crm.schemas.contacts.write",),
        True,
        "`zoom-hubspot setup` creates the `zoom_webinars` property group and its contact properties.",
    ),
    ScopeNeed(
        "marketing events",
        ("crm.objects.marketing_events.read", "crm.objects.marketing_events.write"),
        True,
        "Each webinar is a marketing event; registrations, attendance and cancellations are recorded on it.",
    ),
    ScopeNeed(
        "workflow action",
        ("automation",),
        True,
        "Completes blocked workflow-action executions through HubSpot's callbacks API.",
    ),
    ScopeNeed(
        "account users",
        ("settings.users.read",),
        True,
        "Lists the account's users: an email of a user is never made a contact (R2), so contact "
        "delivery cannot go on without it.",
    ),
    ScopeNeed(
        "owners",
        ("crm.objects.owners.read",),
        False,
        "Looks up HubSpot owners by email (the webinar host as owner of activities); without it, "
        "activities carry no owner.",
    ),
    ScopeNeed(
        "timeline",
        ("timeline",),
        False,
        "Timeline events for registrations and attendance; HubSpot grants it only to some apps, and "
        "without it those events are skipped while contacts and marketing events still sync.",
    ),
)


def _scopes(required: bool) -> tuple[str, ...]:
    found: list[str] = []
    for need in SCOPES_BY_FEATURE:
        if need.required is required:
            found.extend(s for s in need.scopes if s not in found)
    return tuple(found)


REQUIRED_SCOPES = _scopes(True)
OPTIONAL_SCOPES = _scopes(False)


class ProjectError(ValueError):
    """Input the project cannot be rendered or written with; the message says why."""


def validate_project_name(name: str) -> str:
    if not name:
        raise ProjectError("the project name is empty")
    if len(name) > PROJECT_NAME_MAX:
        raise ProjectError(f"the project name is {len(name)} characters long; at most {PROJECT_NAME_MAX}")
    if _PROJECT_NAME.fullmatch(name) is None:
        raise ProjectError(
            f"the project name {name!r} may use only letters, digits, dashes, underscores and spaces "
            "(not at the start or end)"
        )
    return name


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_public_base_url(url: str) -> list[str]:
    """Refuse a URL HubSpot could not call over https; a loopback one is let through with a warning
    (good for trying the command, useless once uploaded). Returns the warnings."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ProjectError(f"the public base URL {url!r} is not an http(s) URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ProjectError(f"the public base URL {url!r} must not carry credentials, a query or a fragment")
    if _is_local(host):
        return [
            f"{url} is this machine's own address: HubSpot cannot reach it, so the workflow action fails "
            "until the project is rendered again with the public https URL and uploaded"
        ]
    if parts.scheme != "https":
        raise ProjectError(f"the public base URL {url!r} must use https: HubSpot calls the action over https")
    return []


def _app_component() -> dict[str, Any]:
    return {
        "uid": APP_UID,
        "type": "app",
        "config": {
            "name": APP_NAME,
            "description": APP_DESCRIPTION,
            "distribution": "private",
            # Static auth declares no redirect URLs: the token is copied from HubSpot by hand.
            "auth": {
                "type": "static",
                "requiredScopes": list(REQUIRED_SCOPES),
                "optionalScopes": list(OPTIONAL_SCOPES),
            },
        },
    }


def _action_component(public_base_url: str, *, published: bool) -> dict[str, Any]:
    return {
        "uid": ACTION_UID,
        "type": "workflow-action",
        "config": {
            "actionUrl": action_url(public_base_url),
            "isPublished": published,
            "supportedClients": [{"client": "WORKFLOWS"}],
            "objectTypes": ["CONTACT"],
            "objectRequestOptions": {"properties": list(CONTACT_PROPERTIES)},
            "inputFields": input_fields(),
            "outputFields": output_fields(),
            "executionRules": execution_rules(),
            "labels": action_labels(),
        },
    }


def render_project(
    public_base_url: str, project_name: str, *, published: bool = True
) -> dict[str, dict[str, Any]]:
    """The project's JSON files, by path relative to the project folder."""
    validate_project_name(project_name)
    return {
        PROJECT_FILE: {"name": project_name, "srcDir": "src", "platformVersion": PLATFORM_VERSION},
        APP_FILE: _app_component(),
        ACTION_FILE: _action_component(public_base_url, published=published),
    }


def _scope_rows() -> list[str]:
    rows = ["| scopes | needed for | required | why |", "|---|---|---|---|"]
    for need in SCOPES_BY_FEATURE:
        scopes = ", ".join(f"`{scope}`" for scope in need.scopes)
        rows.append(f"| {scopes} | {need.feature} | {'yes' if need.required else 'no'} | {need.why} |")
    return rows


def render_readme(public_base_url: str, project_name: str) -> str:
    """The upload steps, for the customer who receives the rendered folder."""
    url = action_url(public_base_url)
    lines = [
        f"# {project_name}: the HubSpot app for the Zoom webinar sync service",
        "",
        f"A HubSpot developer project (platform {PLATFORM_VERSION}) with one private app using static "
        f'auth and the workflow action "Add contact to Zoom webinar", which HubSpot calls at `{url}`.',
        "Rendered by `zoom-hubspot hubspot-project`; render it again rather than editing it by hand.",
        "",
        "## Upload and install",
        "",
        "1. Install HubSpot's CLI (it needs Node.js): `npm install -g @hubspot/cli`.",
        "2. Connect it to the HubSpot account the service will sync into: `hs account auth`, with a",
        "   personal access key of that account.",
        "3. From this folder, run `hs project upload` (the first upload creates the project). The auth",
        "   type (static) and the distribution (private) cannot be changed after this first upload.",
        "4. In HubSpot: Development → Projects → this project → the app → Distribution → Install. A",
        "   static-auth app installs in this one account.",
        "5. Copy into the service's settings (`.env` or the environment), then restart it:",
        "   - the app's static access token (Auth tab, *Show*) → `HUBSPOT_ACCESS_TOKEN`;",
        "   - the app's client secret (Auth tab) → `HUBSPOT_CLIENT_SECRET` (it checks the signature",
        "     of HubSpot's workflow-action requests);",
        "   - the HubSpot account ID → `HUBSPOT_PORTAL_ID`.",
        "6. Run `zoom-hubspot setup` once to create the contact properties the service writes.",
        "",
        'The action "Add contact to Zoom webinar" then appears in contact-based workflows (workflows',
        "with custom actions need a Professional or Enterprise subscription).",
        "",
        "When the service's public address changes, render the project again with",
        "`zoom-hubspot hubspot-project --out <this folder> --public-base-url <new URL> --force` and run",
        f"`hs project upload` again. The service answers the action at `{ACTION_PATH}`.",
        "",
        "## Scopes",
        "",
        "Optional scopes only turn a feature off when they are missing.",
        "",
        *_scope_rows(),
        "",
    ]
    return "\n".join(lines)


def project_files(public_base_url: str, project_name: str, *, published: bool = True) -> dict[str, str]:
    """Every file of the project as the text written to disk (JSON indented, newline at the end)."""
    files = {
        path: json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        for path, body in render_project(public_base_url, project_name, published=published).items()
    }
    files[README_FILE] = render_readme(public_base_url, project_name)
    return files


def write_project(out: Path, files: dict[str, str], *, force: bool = False) -> list[Path]:
    """Write `files` under `out`. A non-empty `out` is refused unless `force` (then our files are
    overwritten and any others are left alone). Returns the paths written."""
    if out.exists() and not out.is_dir():
        raise ProjectError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ProjectError(f"{out} is not empty: choose an empty folder, or pass --force to overwrite")
    written: list[Path] = []
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def run_hubspot_project_command(
    out: Path, *, project_name: str, public_base_url: str, force: bool = False
) -> int:
    """`zoom-hubspot hubspot-project`: 0 written, 2 refused (bad name, URL or a non-empty folder)."""
    try:
        validate_project_name(project_name)
        warnings = check_public_base_url(public_base_url)
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        written = write_project(out, project_files(public_base_url, project_name), force=force)
    except (ProjectError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"HubSpot project {project_name!r} written to {out}:")
    for path in written:
        print(f"  {path}")
    print(f"The workflow action will call {action_url(public_base_url)}")
    print("Next steps (also in the project's README.md):")
    print("  1. npm install -g @hubspot/cli, then hs account auth")
    print(f"  2. cd {out} && hs project upload")
    print("  3. in HubSpot, install the app (Development → Projects → the app → Distribution)")
    print("  4. copy the static token, the client secret and the account ID into HUBSPOT_ACCESS_TOKEN,")
    print("     HUBSPOT_CLIENT_SECRET and HUBSPOT_PORTAL_ID, restart, and run zoom-hubspot setup")
    return 0
