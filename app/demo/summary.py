"""The summary printed when the scenario is done: what landed in the HubSpot sandbox, what was
excluded and why, the audit log, and commands to look around."""

from __future__ import annotations

import textwrap
from collections import Counter

from app.demo.run import DemoRun
from app.demo.settings import DEMO_ENV, HUBSPOT_MOUNT, PORTAL_ID, ZOOM_MOUNT

ZOOM_PROPERTIES = (
    "zoom_webinar_registration_count",
    "zoom_webinar_attendance_count",
    "zoom_webinar_average_attendance_percent",
    "zoom_last_registered_webinar_url",
)


def _percent(value: str | None) -> str:
    return "-" if value in (None, "") else f"{float(value):.1f}%"


def summary(run: DemoRun) -> str:
    o = run.outcome
    state, webinar = o["hubspot"], o["webinar"]
    n = webinar["counts"]
    email_of = {c["id"]: c["properties"].get("email") for c in state["contacts"]}
    templates = {t["id"]: t["name"] for t in state["event_templates"]}
    events = Counter(templates.get(e["eventTemplateId"], "?") for e in state["timeline_events"])
    base, wid, token = run.base_url, run.webinar_id, run.admin_token
    auth = f"-H 'Authorization: Bearer {token}'"
    api = f"{base}/api/v1/portals/{PORTAL_ID}"
    rule = "=" * 100
    lines = [
        "",
        rule,
        f" DEMO  Zoom webinar {wid} '{webinar['topic']}'",
        f"       played: {n['registrants']} registrations ({n['cancelled']} cancelled), {n['attendees']} "
        "attendees (one rejoined, one guest), the end, a recording;",
        f"       {o['webhooks_ok']} of {o['webhooks']} signed webhooks accepted; all work done in "
        f"{o['seconds']:.1f}s (pending {o['status']['pending']}, failed {o['status']['failed']})",
        rule,
        f"HubSpot sandbox, portal {PORTAL_ID}: contacts with their zoom_* properties",
        f"  {'contact':<24} {'registrations':>13} {'attendances':>12} {'avg attendance':>15}",
    ]
    urls: dict[str, str] = {}
    untouched: list[str] = []
    for c in (c for c in state["contacts"] if not c.get("archived")):
        p = c["properties"]
        email = str(p.get("email") or c["id"])
        if not any(p.get(name) for name in ZOOM_PROPERTIES):
            untouched.append(email)
            continue
        urls[email] = p.get("zoom_last_registered_webinar_url") or "-"
        lines.append(
            f"  {email:<24} {p.get('zoom_webinar_registration_count') or '0':>13} "
            f"{p.get('zoom_webinar_attendance_count') or '0':>12} "
            f"{_percent(p.get('zoom_webinar_average_attendance_percent')):>15}"
        )
    lines += [
        f"  {email:<24} untouched (an existing contact; its secondary email registered)"
        for email in untouched
    ]
    if len(set(urls.values())) == 1:
        lines.append(f"  last registered webinar (all {len(urls)}): {next(iter(urls.values()))}")
    else:
        lines += [f"  last registered webinar of {email}: {url}" for email, url in urls.items()]
    lines.append("Timeline events: " + ", ".join(f"{n} x {name}" for name, n in sorted(events.items())))
    for m in state["marketing_events"]:
        states = sorted(f"{email_of.get(cid, cid)} {a['state']}" for cid, a in m["attendance"].items())
        done = "completed" if m.get("eventCompleted") else "open"
        text = f"Marketing event ({done}), contact states: " + ", ".join(states)
        lines += textwrap.wrap(text, width=100, subsequent_indent="  ")
    for call in state["calls"]:
        p = call["properties"]
        on = sorted(str(email_of.get(a["id"], a["id"])) for a in call["associations"]["contacts"]["results"])
        body = p.get("hs_call_body") or ""
        lines.append(f"Call record {call['id']} with the transcript ({len(body)} chars), on {', '.join(on)}")
    lines.append("Not created in HubSpot, with the reason (excluded-emails):")
    for e in o["excluded"]:
        lines.append(f"  {e['email'] or '(guest, no email)':<30} {e['reason']:<16} ({e['role']})")
    codes = [a["code"] + ("" if a["status"] == "success" else f" ({a['status']})") for a in o["audit"]]
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(o["excluded_counts"].items()))
    lines += textwrap.wrap(
        f"Audit log ({len(codes)} entries): {', '.join(codes)}; emails_excluded counts: {counts}",
        width=100,
        subsequent_indent="  ",
    )
    lines += [
        rule,
        f"Look around (admin token: {token}):",
        f"  curl {auth} {base}/api/v1/status",
        f"  curl {auth} {api}/webinars",
        f"  curl {auth} {api}/webinars/{wid}/audit-log",
        f"  curl {auth} {api}/webinars/{wid}/excluded-emails",
        f"  curl '{base}{HUBSPOT_MOUNT}/_sandbox/state?portal={PORTAL_ID}'    # everything in HubSpot",
        f"  curl '{base}{ZOOM_MOUNT}/_sandbox/webinars/{wid}'    # the webinar at Zoom",
        f"  API docs: {base}/docs",
        f"  Sandboxes: {base}{HUBSPOT_MOUNT}/_sandbox/docs  {base}{ZOOM_MOUNT}/_sandbox/docs",
        f"Real accounts: set HUBSPOT_ACCESS_TOKEN / ZOOM_* (see README). {DEMO_ENV}=0 turns the demo off.",
        rule,
    ]
    return "\n".join(lines)
