"""HubSpot's OAuth client: the dated token route with its fallback, refusals, token info, the link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from app.integrations.hubspot import (
    HubSpotNotFound,
    HubSpotServerError,
    HubSpotUnavailable,
    HubSpotValidationError,
)
from app.integrations.hubspot.oauth import (
    DATED_TOKEN_PATH,
    LEGACY_TOKEN_PATH,
    OAUTH_SCOPES,
    OPTIONAL_OAUTH_SCOPES,
    HubSpotOAuthClient,
    HubSpotRefreshRefused,
    authorize_url,
)

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.com"
SECRET = "client-secret-value"
TOKENS = {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1800, "hub_id": 62515}


@pytest.fixture
async def oauth() -> AsyncIterator[HubSpotOAuthClient]:
    async with httpx.AsyncClient() as http:
        yield HubSpotOAuthClient(http, base_url=BASE, client_id="cid", client_secret=SECRET)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


async def test_exchange_posts_a_form_to_the_dated_route(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(DATED_TOKEN_PATH).respond(200, json=TOKENS)
        tokens = await oauth.exchange_code("the-code", "https://sync.example.com/cb")
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in, tokens.hub_id) == (
        "at-1",
        "rt-1",
        1800,
        62515,
    )
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert _form(request) == {
        "grant_type": "authorization_code",
        "client_id": "cid",
        "client_secret": SECRET,
        "redirect_uri": "https://sync.example.com/cb",
        "code": "the-code",
    }
    assert "at-1" not in repr(tokens) and "rt-1" not in str(tokens)


async def test_404_on_the_dated_route_falls_back_and_is_remembered(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        dated = mock.post(DATED_TOKEN_PATH).respond(404, json={"message": "not found"})
        legacy = mock.post(LEGACY_TOKEN_PATH).respond(200, json=TOKENS)
        await oauth.refresh("rt-1")
        await oauth.refresh("rt-1")
    assert dated.call_count == 1  # the second call went straight to the legacy route
    assert legacy.call_count == 2
    assert oauth.token_path == LEGACY_TOKEN_PATH
    assert _form(legacy.calls.last.request)["grant_type"] == "refresh_token"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token rt-1"}),
        (400, {"error": "invalid_grant", "error_description": "revoked"}),
        (401, {"message": "unauthorized"}),
    ],
)
async def test_a_refused_refresh_is_its_own_error(
    oauth: HubSpotOAuthClient, status: int, body: dict[str, str]
) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(DATED_TOKEN_PATH).respond(status, json=body)
        with pytest.raises(HubSpotRefreshRefused) as caught:
            await oauth.refresh("rt-1")
    assert caught.value.status == status
    assert "rt-1" not in str(caught.value) and SECRET not in str(caught.value)


async def test_other_400s_of_a_refresh_are_not_a_refusal(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(DATED_TOKEN_PATH).respond(400, json={"status": "BAD_CLIENT_ID", "message": "bad client"})
        with pytest.raises(HubSpotValidationError) as caught:
            await oauth.refresh("rt-1")
    assert not isinstance(caught.value, HubSpotRefreshRefused)


async def test_a_bad_code_is_a_validation_error_not_a_refused_refresh(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(DATED_TOKEN_PATH).respond(400, json={"error": "invalid_grant", "message": "code the-code"})
        with pytest.raises(HubSpotValidationError) as caught:
            await oauth.exchange_code("the-code", "https://x/cb")
    assert not isinstance(caught.value, HubSpotRefreshRefused)
    assert "the-code" not in str(caught.value)


async def test_outages_are_retryable(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(DATED_TOKEN_PATH)
        route.respond(503, text="down")
        with pytest.raises(HubSpotServerError) as server:
            await oauth.refresh("rt-1")
        route.side_effect = httpx.ConnectError("refused")
        with pytest.raises(HubSpotUnavailable) as transport:
            await oauth.refresh("rt-1")
    assert server.value.retryable and transport.value.retryable


async def test_token_info_names_the_portal_without_showing_the_token(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/oauth/v1/access-tokens/at-1").respond(
            200, json={"token": "at-1", "hub_id": 777, "app_id": 1001, "scopes": ["oauth"], "expires_in": 100}
        )
        mock.get("/oauth/v1/access-tokens/gone").respond(404, json={"message": "token gone not found"})
        info = await oauth.token_info("at-1")
        with pytest.raises(HubSpotNotFound) as caught:
            await oauth.token_info("gone")
    assert (info.hub_id, info.app_id) == (777, 1001)
    assert caught.value.path == "/oauth/v1/access-tokens/[token]"
    assert "gone" not in (caught.value.path or "")


async def test_unreadable_answer_is_a_clear_error_without_the_body(oauth: HubSpotOAuthClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        mock.post(DATED_TOKEN_PATH).respond(200, json={"access_token": "at-9"})
        with pytest.raises(Exception, match="not a valid OAuthTokens") as caught:
            await oauth.refresh("rt-1")
    assert "at-9" not in str(caught.value)


def test_authorize_url_carries_the_app_the_scopes_and_the_state() -> None:
    url = authorize_url(
        "https://app.hubspot.com/oauth/authorize",
        client_id="cid",
        redirect_uri="https://s/cb",
        state="st.1.sig",
    )
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://app.hubspot.com/oauth/authorize"
    assert query["client_id"] == "cid" and query["redirect_uri"] == "https://s/cb"
    assert query["state"] == "st.1.sig"
    assert query["scope"].split() == list(OAUTH_SCOPES)
    assert query["optional_scope"].split() == list(OPTIONAL_OAUTH_SCOPES)
    assert "oauth" in OAUTH_SCOPES and not set(OAUTH_SCOPES) & set(OPTIONAL_OAUTH_SCOPES)
