"""The fake HubSpot's OAuth server: consent, both grants, expiry by its clock, uninstall, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox

pytestmark = pytest.mark.anyio

CLIENT = {"client_id": "cid", "client_secret": "csecret"}
REDIRECT = "https://sync.example.com/oauth/hubspot/callback"
API_ROUTE = "/crm/v3/properties/contacts/groups"


@pytest.fixture
async def hs() -> AsyncIterator[tuple[httpx.AsyncClient, HubSpotSandbox]]:
    app = create_hubspot_sandbox(oauth_client_id="cid", oauth_client_secret="csecret", oauth_access_ttl_s=600)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hubspot.test"
    ) as http:
        yield http, sandbox_of(app)


async def _code(http: httpx.AsyncClient, portal: int | None = None) -> str:
    params: dict[str, Any] = {
        "client_id": "cid",
        "redirect_uri": REDIRECT,
        "scope": "oauth timeline",
        "state": "s1",
    }
    if portal is not None:
        params["portal"] = portal
    r = await http.get("/oauth/authorize", params=params)
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == "s1"
    return query["code"]


async def _token(http: httpx.AsyncClient, route: str = "/oauth/2026-03/token", **form: str) -> httpx.Response:
    return await http.post(route, data={**CLIENT, **form})


async def _install(http: httpx.AsyncClient, portal: int | None = None) -> dict[str, Any]:
    code = await _code(http, portal)
    r = await _token(http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_code_exchange_gives_tokens_that_open_the_api(
    hs: tuple[httpx.AsyncClient, HubSpotSandbox],
) -> None:
    http, sandbox = hs
    tokens = await _install(http, portal=777)
    assert tokens["hub_id"] == 777 and tokens["expires_in"] == 600
    assert 777 in sandbox.portals  # a portal the sandbox did not serve before
    r = await http.get(API_ROUTE, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200
    info = await http.get(f"/oauth/v1/access-tokens/{tokens['access_token']}")
    assert info.json()["hub_id"] == 777


async def test_codes_are_single_use_and_bound_to_the_redirect_uri(
    hs: tuple[httpx.AsyncClient, HubSpotSandbox],
) -> None:
    http, _ = hs
    code = await _code(http)
    wrong = await _token(http, grant_type="authorization_code", code=code, redirect_uri="https://evil/cb")
    assert wrong.status_code == 400 and wrong.json()["status"] == "BAD_REDIRECT_URI"
    again = await _token(http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert again.status_code == 400 and again.json()["status"] == "BAD_AUTH_CODE"
    bad_client = await http.post(
        "/oauth/v1/token", data={"client_id": "cid", "client_secret": "nope", "grant_type": "refresh_token"}
    )
    assert bad_client.status_code == 400 and bad_client.json()["error"] == "invalid_client"


async def test_tokens_expire_by_the_sandbox_clock_and_refresh(
    hs: tuple[httpx.AsyncClient, HubSpotSandbox],
) -> None:
    http, sandbox = hs
    tokens = await _install(http)
    sandbox.oauth.advance(601)
    r = await http.get(API_ROUTE, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 401
    fresh = await _token(
        http, "/oauth/v1/token", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert fresh.status_code == 200
    r = await http.get(API_ROUTE, headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
    assert r.status_code == 200


async def test_uninstall_revokes_every_token(hs: tuple[httpx.AsyncClient, HubSpotSandbox]) -> None:
    http, sandbox = hs
    tokens = await _install(http)
    r = await http.post("/_sandbox/oauth/uninstall", json={"portal": tokens["hub_id"]})
    assert r.json()["revoked_refresh_tokens"] == 1
    api = await http.get(API_ROUTE, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert api.status_code == 401
    refused = await _token(http, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400
    assert (refused.json()["status"], refused.json()["error"]) == ("BAD_REFRESH_TOKEN", "invalid_grant")
    state = (await http.get("/_sandbox/oauth")).json()
    assert state["refused"] == {"BAD_REFRESH_TOKEN": 1}
    assert tokens["access_token"] not in str(state) and tokens["refresh_token"] not in str(state)
    assert sandbox.oauth.snapshot() == state


async def test_faults_dated_route_gone_down_and_no_hub_id(
    hs: tuple[httpx.AsyncClient, HubSpotSandbox],
) -> None:
    http, _ = hs
    r = await http.post(
        "/_sandbox/oauth/settings",
        json={"dated_token_route_gone": True, "omit_hub_id": True, "access_ttl_s": 60},
    )
    assert r.json()["dated_token_route_gone"] is True
    code = await _code(http)
    assert (
        await _token(http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    ).status_code == 404
    legacy = await _token(
        http, "/oauth/v1/token", grant_type="authorization_code", code=code, redirect_uri=REDIRECT
    )
    assert legacy.status_code == 200 and "hub_id" not in legacy.json() and legacy.json()["expires_in"] == 60
    await http.post("/_sandbox/oauth/settings", json={"token_route_down": True})
    down = await _token(http, "/oauth/v1/token", grant_type="refresh_token", refresh_token="x")
    assert down.status_code == 503
    await http.post("/_sandbox/reset")
    assert (await http.get("/_sandbox/oauth")).json()["settings"]["token_route_down"] is False
