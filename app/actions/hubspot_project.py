"""The HubSpot developer-platform project (platform 2026.03) for this service: a private app with static
auth (one HubSpot account, a static access token; the default) or OAuth (the install link of CONTRACT.md
§7, up to 10 allow-listed accounts) and the workflow action "Add contact to Zoom webinar".

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
from pathlib import Path
from typing import Any, Literal
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
from app.integrations.hubspot.scopes import OPTIONAL_SCOPES, REQUIRED_SCOPES, SCOPES_BY_FEATURE

PLATFORM_VERSION = "2026.03"
# static: one account, a token copied by hand; oauth: the install link of CONTRACT.md §7, several accounts.
AuthType = Literal["static", "oauth"]
AUTH_TYPES: tuple[AuthType, ...] = ("static", "oauth")
OAUTH_CALLBACK_PATH = "/oauth/hubspot/callback"
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


def oauth_redirect_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + OAUTH_CALLBACK_PATH


def _app_component(public_base_url: str, auth: AuthType) -> dict[str, Any]:
    auth_config: dict[str, Any] = {
        "type": auth,
        "requiredScopes": list(REQUIRED_SCOPES),
        "optionalScopes": list(OPTIONAL_SCOPES),
    }
    if auth == "oauth":
        # HubSpot sends the install's code only to a listed redirect URL. Static auth may not list
        # any: its token is copied from HubSpot by hand.
        auth_config["redirectUrls"] = [oauth_redirect_url(public_base_url)]
    return {
        "uid": APP_UID,
        "type": "app",
        "config": {
            "name": APP_NAME,
            "description": APP_DESCRIPTION,
            "distribution": "private",
            "auth": auth_config,
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
    public_base_url: str, project_name: str, *, published: bool = True, auth: AuthType = "static"
) -> dict[str, dict[str, Any]]:
    """The project's JSON files, by path relative to the project folder."""
    validate_project_name(project_name)
    if auth not in AUTH_TYPES:
        raise ProjectError(f"auth must be one of {', '.join(AUTH_TYPES)}, not {auth!r}")
    return {
        PROJECT_FILE: {"name": project_name, "srcDir": "src", "platformVersion": PLATFORM_VERSION},
        APP_FILE: _app_component(public_base_url, auth),
        ACTION_FILE: _action_component(public_base_url, published=published),
    }


def _scope_rows() -> list[str]:
    rows = ["| scopes | needed for | required | why |", "|---|---|---|---|"]
    for need in SCOPES_BY_FEATURE:
        scopes = ", ".join(f"`{scope}`" for scope in need.scopes)
        rows.append(f"| {scopes} | {need.feature} | {'yes' if need.required else 'no'} | {need.why} |")
    return rows


def _oauth_steps(public_base_url: str) -> list[str]:
    return [
        "4. In HubSpot: Development → Projects → this project → the app → Auth tab. Copy into the",
        "   service's settings (`.env` or the environment), then restart it:",
        "   - the client ID → `HUBSPOT_CLIENT_ID`, the client secret → `HUBSPOT_CLIENT_SECRET`;",
        "   - `HUBSPOT_AUTH_MODE=oauth`, and `APP_SECRET_KEY` (a long random string, kept: it encrypts",
        "     the tokens the service stores).",
        "   A private OAuth app installs in up to 10 accounts you allow-list under Distribution.",
        f"5. Open `{public_base_url.rstrip('/')}/oauth/hubspot/install` in a browser signed in to HubSpot,",
        "   choose the account and accept the scopes: the service learns the account ID, stores the",
        "   tokens encrypted, refreshes them before they expire, creates the contact properties and",
        "   shows which account is connected. Repeat for each account.",
    ]


def _static_steps() -> list[str]:
    return [
        "4. In HubSpot: Development → Projects → this project → the app → Distribution → Install. A",
        "   static-auth app installs in this one account.",
        "5. Copy into the service's settings (`.env` or the environment), then restart it:",
        "   - the app's static access token (Auth tab, *Show*) → `HUBSPOT_ACCESS_TOKEN`;",
        "   - the app's client secret (Auth tab) → `HUBSPOT_CLIENT_SECRET` (it checks the signature",
        "     of HubSpot's workflow-action requests);",
        "   - the HubSpot account ID → `HUBSPOT_PORTAL_ID`.",
        "6. Run `zoom-hubspot setup` once to create the contact properties the service writes.",
    ]


def render_readme(public_base_url: str, project_name: str, auth: AuthType = "static") -> str:
    """The upload steps, for the customer who receives the rendered folder."""
    url = action_url(public_base_url)
    lines = [
        f"# {project_name}: the HubSpot app for the Zoom webinar sync service",
        "",
        f"A HubSpot developer project (platform {PLATFORM_VERSION}) with one private app using {auth} "
        f'auth and the workflow action "Add contact to Zoom webinar", which HubSpot calls at `{url}`.',
        "Rendered by `zoom-hubspot hubspot-project`; render it again rather than editing it by hand.",
        "",
        "## Upload and install",
        "",
        "1. Install HubSpot's CLI (it needs Node.js): `npm install -g @hubspot/cli`.",
        "2. Connect it to the HubSpot account the service will sync into: `hs account auth`, with a",
        "   personal access key of that account.",
        "3. From this folder, run `hs project upload` (the first upload creates the project). The auth",
        f"   type ({auth}) and the distribution (private) cannot be changed after this first upload.",
        *(_oauth_steps(public_base_url) if auth == "oauth" else _static_steps()),
        "",
        'The action "Add contact to Zoom webinar" then appears in contact-based workflows (workflows',
        "with custom actions need a Professional or Enterprise subscription).",
        "",
        "When the service's public address changes, render the project again with",
        "`zoom-hubspot hubspot-project --out <this folder> --public-base-url <new URL> "
        f"--auth {auth} --force` and run",
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


def project_files(
    public_base_url: str, project_name: str, *, published: bool = True, auth: AuthType = "static"
) -> dict[str, str]:
    """Every file of the project as the text written to disk (JSON indented, newline at the end)."""
    rendered = render_project(public_base_url, project_name, published=published, auth=auth)
    files = {path: json.dumps(body, indent=2, ensure_ascii=False) + "\n" for path, body in rendered.items()}
    files[README_FILE] = render_readme(public_base_url, project_name, auth)
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


def _auth_type(value: str) -> AuthType:
    for known in AUTH_TYPES:
        if value == known:
            return known
    raise ProjectError(f"--auth must be static or oauth, not {value!r}")


def run_hubspot_project_command(
    out: Path, *, project_name: str, public_base_url: str, force: bool = False, auth: str = "static"
) -> int:
    """`zoom-hubspot hubspot-project`: 0 written, 2 refused (bad name, URL or a non-empty folder)."""
    try:
        validate_project_name(project_name)
        auth_type = _auth_type(auth)
        warnings = check_public_base_url(public_base_url)
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        written = write_project(
            out, project_files(public_base_url, project_name, auth=auth_type), force=force
        )
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
    if auth_type == "oauth":
        print(
            "  3. copy the app's client ID and secret into HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET, set"
        )
        print("     HUBSPOT_AUTH_MODE=oauth and APP_SECRET_KEY, restart the service")
        print(f"  4. open {public_base_url.rstrip('/')}/oauth/hubspot/install and install it in each account")
    else:
        print("  3. in HubSpot, install the app (Development → Projects → the app → Distribution)")
        print("  4. copy the static token, the client secret and the account ID into HUBSPOT_ACCESS_TOKEN,")
        print("     HUBSPOT_CLIENT_SECRET and HUBSPOT_PORTAL_ID, restart, and run zoom-hubspot setup")
    return 0
