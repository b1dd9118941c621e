"""ZoomClient and ZoomTokenProvider against respx: exact outgoing requests, typed results, token
caching and refresh, retries, error mapping, paging and downloads."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from app.integrations.zoom import (
    Participant,
    Recordings,
    RegistrationQuestions,
    StaticTokenProvider,
    TokenProvider,
    ZoomAuthError,
    ZoomClient,
    ZoomError,
    ZoomHostCannotRegister,
    ZoomRateLimited,
    ZoomRecordingNotFound,
    ZoomRegistrationNotEnabled,
    ZoomTokenProvider,
    ZoomUnavailable,
    ZoomUserNotFound,
    ZoomWebinar,
    ZoomWebinarNotFound,
    ZoomWebinarOver,
    error_from_response,
    webinar_path_id,
)
from tests.fixtures.observers import RecordingObserver

pytestmark = pytest.mark.anyio

API = "https://api.zoom.test/v2"
OAUTH = "https://zoom.test"
TOKEN_URL = f"{OAUTH}/oauth/token"
TOKEN = "eyJzdGF0aWMtdG9rZW4tMDAwMDAwMDAwMDAwMDAwMDAw"
ACCOUNT = "AAAbbbCCCdddEEEfff01"
CLIENT_ID = "client-id-123"
CLIENT_SECRET = "s3cr3t-client-secret-value"
WEBINAR_ID = "89412345678"
NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
BASE_S = 0.1  # retry_base_s of the test clients


# --- fakes and fixtures ---------------------------------------------------------------------------


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@pytest.fixture
async def http(ssl_context: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=ssl_context) as client:
        yield client


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(http: httpx.AsyncClient, clock: FakeClock) -> ZoomTokenProvider:
    return ZoomTokenProvider(
        http,
        oauth_base_url=OAUTH + "/",
        account_id=ACCOUNT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        clock=clock,
    )


ClientFactory = Callable[..., ZoomClient]


@pytest.fixture
def make_client(http: httpx.AsyncClient, sleeps: RecordingSleep) -> ClientFactory:
    def make(tokens: TokenProvider | None = None, **overrides: Any) -> ZoomClient:
        options: dict[str, Any] = {
            "api_base_url": API + "/",  # a trailing slash must not double up in URLs
            "tokens": tokens if tokens is not None else StaticTokenProvider(TOKEN),
            "max_attempts": 4,
            "retry_base_s": BASE_S,
            "max_retry_after_s": 30.0,
            "sleep": sleeps,
            "now": lambda: NOW,
        }
        options.update(overrides)
        return ZoomClient(http, **options)

    return make


@pytest.fixture
def client(make_client: ClientFactory) -> ZoomClient:
    return make_client()


def token_json(token: str, expires_in: Any = 3600) -> dict[str, Any]:
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": "webinar:read:admin",
        "api_url": "https://api.zoom.us",
    }


def webinar_json(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": int(WEBINAR_ID),
        "uuid": "4m1nH5cZQkK0r3Yt0tG1qQ==",
        "host_id": "h0StUsErId00000001",
        "host_email": "host@example.com",
        "topic": "Q3 Product Webinar",
        "type": 5,
        "start_time": "2024-06-20T16:00:00Z",
        "duration": 60,
        "timezone": "America/New_York",
        "join_url": "https://us06web.zoom.us/j/89412345678",
        "registration_url": "https://us06web.zoom.us/webinar/register/WN_xyz",
        "settings": {"approval_type": 0, "registration_type": 1, "auto_recording": "cloud"},
        "is_simulive": False,
        "start_url": "https://us06web.zoom.us/s/89412345678?zak=secret",
    }
    data.update(extra)
    return data


def only_request(route: respx.Route) -> httpx.Request:
    assert route.call_count == 1
    request: httpx.Request = route.calls.last.request
    return request


def zoom_error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


# --- token provider -------------------------------------------------------------------------------


class TestTokenProvider:
    async def test_fetches_once_with_basic_auth_and_caches(
        self, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        route = router.post(TOKEN_URL).respond(200, json=token_json("tok-1"))
        tokens = [await provider.token() for _ in range(5)]
        assert tokens == ["tok-1"] * 5
        request = only_request(route)
        assert request.url.params["grant_type"] == "account_credentials"
        assert request.url.params["account_id"] == ACCOUNT
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {expected}"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert provider.fetches == 1
        assert provider.api_url == "https://api.zoom.us"

    async def test_client_calls_share_one_token(
        self, make_client: ClientFactory, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        token_route = router.post(TOKEN_URL).respond(200, json=token_json("tok-1"))
        api = router.get(f"{API}/webinars/{WEBINAR_ID}").respond(200, json=webinar_json())
        client = make_client(provider)
        for _ in range(3):
            await client.get_webinar(WEBINAR_ID)
        assert token_route.call_count == 1
        assert api.call_count == 3
        assert {call.request.headers["Authorization"] for call in api.calls} == {"Bearer tok-1"}

    async def test_one_refresh_under_20_concurrent_callers(
        self, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        issued = 0

        async def slow_token(request: httpx.Request) -> httpx.Response:
            nonlocal issued
            issued += 1
            number = issued
            for _ in range(5):  # let every other caller reach the provider meanwhile
                await asyncio.sleep(0)
            return httpx.Response(200, json=token_json(f"tok-{number}"))

        route = router.post(TOKEN_URL).mock(side_effect=slow_token)
        tokens = await asyncio.gather(*(provider.token() for _ in range(20)))
        assert route.call_count == 1
        assert set(tokens) == {"tok-1"}
        assert provider.fetches == 1

    async def test_refreshes_when_expiry_minus_margin_is_reached(
        self, provider: ZoomTokenProvider, router: respx.MockRouter, clock: FakeClock
    ) -> None:
        route = router.post(TOKEN_URL)
        route.side_effect = [
            httpx.Response(200, json=token_json("tok-1", 3600)),
            httpx.Response(200, json=token_json("tok-2", "3599")),  # Zoom may send a string
        ]
        assert await provider.token() == "tok-1"
        clock.now += 3600 - 60 - 0.5
        assert await provider.token() == "tok-1"
        clock.now += 0.5
        assert await provider.token() == "tok-2"
        assert route.call_count == 2

    async def test_invalidate_drops_only_the_current_token(
        self, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        route = router.post(TOKEN_URL)
        route.side_effect = [
            httpx.Response(200, json=token_json("tok-1")),
            httpx.Response(200, json=token_json("tok-2")),
        ]
        assert await provider.token() == "tok-1"
        provider.invalidate("some-older-token")
        assert await provider.token() == "tok-1"
        provider.invalidate("tok-1")
        assert await provider.token() == "tok-2"
        provider.invalidate("tok-1")  # a late caller with the old token does not force another fetch
        assert await provider.token() == "tok-2"
        assert route.call_count == 2

    async def test_refused_credentials_are_auth_error_without_secret(
        self, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        router.post(TOKEN_URL).respond(
            400, json={"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
        )
        with pytest.raises(ZoomAuthError) as info:
            await provider.token()
        exc = info.value
        assert exc.status == 400
        assert "Invalid client_id or client_secret" in str(exc)
        assert exc.retryable is False
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        for text in (str(exc), repr(exc)):
            assert CLIENT_SECRET not in text
            assert basic not in text

    async def test_error_only_field_is_used_as_reason(
        self, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        router.post(TOKEN_URL).respond(401, json={"error": "invalid_client"})
        with pytest.raises(ZoomAuthError, match="invalid_client"):
            await provider.token()

    @pytest.mark.parametrize(
        "effect",
        [httpx.Response(503, text="<html>unavailable</html>"), httpx.ConnectError("connection refused")],
    )
    async def test_server_and_transport_errors_are_unavailable(
        self, effect: Any, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        router.post(TOKEN_URL).mock(side_effect=[effect])
        with pytest.raises(ZoomUnavailable) as info:
            await provider.token()
        assert info.value.retryable is True

    async def test_client_retries_a_token_endpoint_outage(
        self,
        make_client: ClientFactory,
        provider: ZoomTokenProvider,
        router: respx.MockRouter,
        sleeps: RecordingSleep,
    ) -> None:
        router.post(TOKEN_URL).side_effect = [
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json=token_json("tok-1")),
        ]
        api = router.get(f"{API}/webinars/{WEBINAR_ID}").respond(200, json=webinar_json())
        webinar = await make_client(provider).get_webinar(WEBINAR_ID)
        assert webinar.id == WEBINAR_ID
        assert only_request(api).headers["Authorization"] == "Bearer tok-1"
        assert len(sleeps.calls) == 1

    async def test_static_provider(self) -> None:
        tokens = StaticTokenProvider("abc")
        assert await tokens.token() == "abc"
        tokens.invalidate("abc")
        assert await tokens.token() == "abc"
        assert "abc" not in repr(tokens)
        assert isinstance(tokens, TokenProvider)


# --- 401: one retry with a fresh token ------------------------------------------------------------


class TestReauthentication:
    @pytest.mark.parametrize(
        "refusal",
        [
            httpx.Response(401, json=zoom_error(124, "Invalid access token.")),
            httpx.Response(400, json=zoom_error(124, "Access token is expired.")),
            httpx.Response(401, text="Unauthorized"),
        ],
    )
    async def test_refused_token_is_replaced_once(
        self,
        refusal: httpx.Response,
        make_client: ClientFactory,
        provider: ZoomTokenProvider,
        router: respx.MockRouter,
        sleeps: RecordingSleep,
    ) -> None:
        token_route = router.post(TOKEN_URL)
        token_route.side_effect = [
            httpx.Response(200, json=token_json("tok-1")),
            httpx.Response(200, json=token_json("tok-2")),
        ]
        api = router.get(f"{API}/webinars/{WEBINAR_ID}")
        api.side_effect = [refusal, httpx.Response(200, json=webinar_json())]
        client = make_client(provider)
        webinar = await client.get_webinar(WEBINAR_ID)
        assert webinar.topic == "Q3 Product Webinar"
        assert [call.request.headers["Authorization"] for call in api.calls] == [
            "Bearer tok-1",
            "Bearer tok-2",
        ]
        assert token_route.call_count == 2
        assert client.stats.auth_retries == 1
        assert sleeps.calls == []  # no backoff for a re-token

    async def test_second_refusal_raises_auth_error(
        self, make_client: ClientFactory, provider: ZoomTokenProvider, router: respx.MockRouter
    ) -> None:
        router.post(TOKEN_URL).side_effect = [
            httpx.Response(200, json=token_json("tok-1")),
            httpx.Response(200, json=token_json("tok-2")),
            httpx.Response(200, json=token_json("tok-3")),
        ]
        api = router.get(f"{API}/webinars/{WEBINAR_ID}").respond(
            401, json=zoom_error(124, "Invalid access token.")
        )
        with pytest.raises(ZoomAuthError) as info:
            await make_client(provider).get_webinar(WEBINAR_ID)
        assert api.call_count == 2
        assert info.value.code == 124
        assert provider.fetches == 2
        assert "tok-2" not in str(info.value)


# --- error mapping --------------------------------------------------------------------------------


async def _call_get_webinar(client: ZoomClient) -> Any:
    return await client.get_webinar(WEBINAR_ID)


async def _call_add_registrant(client: ZoomClient) -> Any:
    return await client.add_registrant(WEBINAR_ID, email="ada@example.com", first_name="Ada", last_name=None)


async def _call_get_user(client: ZoomClient) -> Any:
    return await client.get_user("u-123")


async def _call_get_recordings(client: ZoomClient) -> Any:
    return await client.get_recordings(WEBINAR_ID)


async def _call_list_registrants(client: ZoomClient) -> Any:
    return await client.list_registrants(WEBINAR_ID)


WEBINAR_URL = f"{API}/webinars/{WEBINAR_ID}"
REGISTRANTS_URL = f"{API}/webinars/{WEBINAR_ID}/registrants"
RECORDINGS_URL = f"{API}/meetings/{WEBINAR_ID}/recordings"
USER_URL = f"{API}/users/u-123"


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("call", "method", "url", "status", "body", "expected", "code"),
        [
            (_call_get_webinar, "GET", WEBINAR_URL, 404, zoom_error(3001, "Webinar does not exist."),
             ZoomWebinarNotFound, 3001),
            (_call_get_webinar, "GET", WEBINAR_URL, 400, zoom_error(300, "Invalid webinar ID"),
             ZoomWebinarNotFound, 300),
            (_call_get_webinar, "GET", WEBINAR_URL, 404, "Not Found", ZoomWebinarNotFound, None),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 404,
             zoom_error(3001, 'Webinar "89412345678" not found or has expired.'), ZoomWebinarNotFound, 3001),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 400,
             zoom_error(3000, "This webinar does not have registration as required: 89412345678"),
             ZoomRegistrationNotEnabled, 3000),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 400,
             zoom_error(3000, "The Zoom REST API does not support paid registration."),
             ZoomRegistrationNotEnabled, 3000),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 400, zoom_error(3027, "Host cannot register."),
             ZoomHostCannotRegister, 3027),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 400,
             zoom_error(3038, "Webinar is over, you cannot register now."), ZoomWebinarOver, 3038),
            (_call_add_registrant, "POST", REGISTRANTS_URL, 400, zoom_error(300, "Validation Failed."),
             ZoomError, 300),
            (_call_get_user, "GET", USER_URL, 404, zoom_error(1001, "User does not exist: u-123."),
             ZoomUserNotFound, 1001),
            (_call_get_recordings, "GET", RECORDINGS_URL, 404,
             zoom_error(3301, "There is no recording for this meeting."), ZoomRecordingNotFound, 3301),
            (_call_get_recordings, "GET", RECORDINGS_URL, 404, "", ZoomRecordingNotFound, None),
            (_call_get_webinar, "GET", WEBINAR_URL, 400, zoom_error(200, "No permission."), ZoomError, 200),
            (_call_get_webinar, "GET", WEBINAR_URL, 403, zoom_error(4711, "Invalid access token, does not "
             "contain scopes."), ZoomAuthError, 4711),
            (_call_list_registrants, "GET", REGISTRANTS_URL, 400, zoom_error(300, "Validation Failed."),
             ZoomError, 300),
            (_call_list_registrants, "GET", REGISTRANTS_URL, 409, "<html>conflict</html>", ZoomError, None),
        ],
    )  # fmt: skip
    async def test_code_and_status_pick_the_class(
        self,
        call: Callable[[ZoomClient], Any],
        method: str,
        url: str,
        status: int,
        body: Any,
        expected: type[ZoomError],
        code: int | None,
        client: ZoomClient,
        router: respx.MockRouter,
        sleeps: RecordingSleep,
    ) -> None:
        response = (
            httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
        )
        route = router.route(method=method, url=url).mock(return_value=response)
        with pytest.raises(ZoomError) as info:
            await call(client)
        exc = info.value
        assert type(exc) is expected
        assert (exc.status, exc.code) == (status, code)
        assert exc.retryable is False
        assert exc.method == method
        assert route.call_count == 1  # other 4xx are never retried
        assert sleeps.calls == []
        if isinstance(body, dict):
            assert exc.message == body["message"]

    def test_error_from_response_tolerates_odd_bodies(self) -> None:
        error = error_from_response(
            httpx.Response(400, content=b"\xff\xfe not json"), "POST", "/webinars/1/registrants"
        )
        assert type(error) is ZoomError
        assert error.code is None
        assert error.status == 400
        string_code = error_from_response(
            httpx.Response(400, json={"code": "3027", "message": "Host cannot register."}),
            "POST",
            "/webinars/1/registrants",
        )
        assert type(string_code) is ZoomHostCannotRegister
        not_an_object = error_from_response(httpx.Response(500, json=[1, 2]), "GET", "/users")
        assert type(not_an_object) is ZoomUnavailable
        assert not_an_object.retryable is True
        assert str(not_an_object) == "Zoom 500: [1,2] (GET /users)"

    def test_code_300_elsewhere_is_not_webinar_not_found(self) -> None:
        error = error_from_response(
            httpx.Response(400, json=zoom_error(300, "Validation Failed.")), "POST", "/webinars/1/registrants"
        )
        assert type(error) is ZoomError

    async def test_exceptions_never_carry_token_or_email(
        self, client: ZoomClient, router: respx.MockRouter, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="app.integrations.zoom")
        router.get(f"{API}/users/ada%40example.com").side_effect = [
            httpx.Response(500, json={"code": 500, "message": f"bad header Bearer {TOKEN}"}),
            httpx.Response(404, json=zoom_error(1001, 'User "ada@example.com" does not exist.')),
        ]
        with pytest.raises(ZoomUserNotFound) as info:
            await client.get_user("ada@example.com")
        exc = info.value
        for text in (str(exc), repr(exc), caplog.text):
            assert TOKEN not in text
            assert "ada@example.com" not in text
            assert "ada%40example.com" not in text
        assert "[email]" in str(exc)

    async def test_echoed_token_is_redacted(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(WEBINAR_URL).respond(400, json={"code": 1, "message": f"token {TOKEN} rejected"})
        with pytest.raises(ZoomError) as info:
            await client.get_webinar(WEBINAR_ID)
        assert TOKEN not in str(info.value)
        assert "[redacted]" in info.value.message


# --- retries --------------------------------------------------------------------------------------


OK_WEBINAR = httpx.Response(200, json=webinar_json())


class TestRetries:
    async def test_429_waits_retry_after_seconds(
        self, client: ZoomClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.get(WEBINAR_URL)
        route.side_effect = [
            httpx.Response(
                429,
                headers={"Retry-After": "7"},
                json={"code": 429, "message": "You have reached the maximum per-second rate limit."},
            ),
            OK_WEBINAR,
        ]
        await client.get_webinar(WEBINAR_ID)
        assert route.call_count == 2
        assert sleeps.calls == [7.0]
        assert (client.stats.requests, client.stats.rate_limited, client.stats.retries) == (2, 1, 1)

    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [
            ((NOW + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"), 5.0),
            ("Wed, 01 May 2024 10:00:12 GMT", 12.0),
            ("2024-05-01T09:00:00Z", 0.0),  # already passed
        ],
    )
    async def test_429_waits_until_a_near_retry_after_date(
        self,
        retry_after: str,
        expected: float,
        client: ZoomClient,
        router: respx.MockRouter,
        sleeps: RecordingSleep,
    ) -> None:
        router.get(WEBINAR_URL).side_effect = [
            httpx.Response(429, headers={"Retry-After": retry_after}, text="slow down"),
            OK_WEBINAR,
        ]
        await client.get_webinar(WEBINAR_ID)
        assert sleeps.calls == [expected]

    @pytest.mark.parametrize(
        ("headers", "expected_s"),
        [
            ({"Retry-After": "2024-05-02T00:00:00Z", "X-RateLimit-Type": "Daily-limit"}, 14 * 3600.0),
            ({"Retry-After": "120"}, 120.0),
            ({"X-RateLimit-Type": "Daily-limit"}, 14 * 3600.0),  # no date: next 00:00 UTC
        ],
    )
    async def test_429_further_than_the_cap_goes_back_to_caller(
        self,
        headers: dict[str, str],
        expected_s: float,
        client: ZoomClient,
        router: respx.MockRouter,
        sleeps: RecordingSleep,
    ) -> None:
        route = router.get(WEBINAR_URL).respond(
            429,
            headers=headers,
            json={"code": 429, "message": "You have reached the maximum daily rate limit for this API."},
        )
        with pytest.raises(ZoomRateLimited) as info:
            await client.get_webinar(WEBINAR_ID)
        assert route.call_count == 1
        assert sleeps.calls == []
        assert info.value.retry_after_s == pytest.approx(expected_s)
        assert info.value.retryable is True

    async def test_429_without_retry_after_backs_off_exponentially(
        self, client: ZoomClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        slow_down = httpx.Response(429, json={"code": 429, "message": "per-second rate limit"})
        router.get(WEBINAR_URL).side_effect = [slow_down, slow_down, slow_down, OK_WEBINAR]
        await client.get_webinar(WEBINAR_ID)
        assert len(sleeps.calls) == 3
        for attempt, waited in enumerate(sleeps.calls, start=1):
            ceiling = BASE_S * 2 ** (attempt - 1)
            assert ceiling / 2 <= waited <= ceiling
        assert client.stats.rate_limited == 3

    async def test_5xx_then_success(
        self, client: ZoomClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.get(WEBINAR_URL)
        route.side_effect = [
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(503, json={"code": 503, "message": "try later"}),
            OK_WEBINAR,
        ]
        webinar = await client.get_webinar(WEBINAR_ID)
        assert webinar.id == WEBINAR_ID
        assert route.call_count == 3
        assert (client.stats.requests, client.stats.server_errors, client.stats.retries) == (3, 2, 2)
        assert len(sleeps.calls) == 2

    async def test_transport_error_then_success(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(WEBINAR_URL)
        route.side_effect = [httpx.ReadTimeout("timed out"), OK_WEBINAR]
        await client.get_webinar(WEBINAR_ID)
        assert route.call_count == 2
        assert (client.stats.requests, client.stats.transport_errors) == (2, 1)

    async def test_max_attempts_exhausted_raises_last_error(
        self, client: ZoomClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.get(WEBINAR_URL)
        route.side_effect = [
            httpx.Response(500, text="oops"),
            httpx.ConnectError("refused"),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(503, json={"code": 503, "message": "still down"}),
        ]
        with pytest.raises(ZoomUnavailable) as info:
            await client.get_webinar(WEBINAR_ID)
        assert route.call_count == 4
        assert len(sleeps.calls) == 3
        assert info.value.status == 503
        assert info.value.message == "still down"

    async def test_transport_errors_exhausted(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        route = router.get(WEBINAR_URL).mock(side_effect=httpx.ConnectTimeout("timed out"))
        with pytest.raises(ZoomUnavailable) as info:
            await make_client(max_attempts=2).get_webinar(WEBINAR_ID)
        assert route.call_count == 2
        assert info.value.status is None
        assert "ConnectTimeout" in str(info.value)


class TestObserver:
    """What the connected portals' health (app.delivery.health) is told, and when."""

    async def test_retries_then_success_is_one_call_without_error(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[ZoomError]()
        client = make_client(observer=observer)
        router.get(WEBINAR_URL).side_effect = [httpx.Response(502, text="bad gateway"), OK_WEBINAR]
        await client.get_webinar(WEBINAR_ID)
        assert observer.calls == [(None, NOW)]

    async def test_a_429_is_told_at_once_then_the_call_when_it_ends(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        moments = iter(NOW + timedelta(seconds=n) for n in range(100))
        observer = RecordingObserver[ZoomError]()
        client = make_client(observer=observer, now=lambda: next(moments))
        router.get(WEBINAR_URL).side_effect = [
            httpx.Response(429, headers={"Retry-After": "1"}, json=zoom_error(429, "slow down")),
            OK_WEBINAR,
        ]
        await client.get_webinar(WEBINAR_ID)
        (limited, limited_at), last = observer.calls
        assert isinstance(limited, ZoomRateLimited)
        assert limited_at > NOW  # the 429 carries its own moment...
        assert last == (None, NOW)  # ...the call the moment it began

    async def test_final_failure_is_told_once_with_the_last_error(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[ZoomError]()
        client = make_client(observer=observer, max_attempts=2)
        router.get(WEBINAR_URL).side_effect = [
            httpx.Response(500, text="oops"),
            httpx.Response(503, json=zoom_error(503, "still down")),
        ]
        with pytest.raises(ZoomUnavailable) as info:
            await client.get_webinar(WEBINAR_ID)
        assert observer.calls == [(info.value, NOW)]

    async def test_a_long_429_is_told_twice_and_not_waited(
        self, make_client: ClientFactory, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        observer = RecordingObserver[ZoomError]()
        client = make_client(observer=observer)
        router.get(WEBINAR_URL).respond(429, headers={"Retry-After": "120"}, json=zoom_error(429, "daily"))
        with pytest.raises(ZoomRateLimited) as info:
            await client.get_webinar(WEBINAR_ID)
        assert observer.calls == [(info.value, NOW), (info.value, NOW)]
        assert sleeps.calls == []

    async def test_a_missing_download_is_told_as_not_found(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[ZoomError]()
        client = make_client(observer=observer)
        router.get(DOWNLOAD_URL).respond(404, json=zoom_error(3301, "gone"))
        with pytest.raises(ZoomRecordingNotFound) as info:
            await client.download(DOWNLOAD_URL, token="t")
        assert observer.calls == [(info.value, NOW)]


# --- requests and parsing -------------------------------------------------------------------------


class TestWebinars:
    async def test_get_webinar(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(WEBINAR_URL).respond(200, json=webinar_json())
        webinar = await client.get_webinar(WEBINAR_ID)
        request = only_request(route)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.content == b""
        assert webinar == ZoomWebinar.model_validate(webinar_json())
        assert webinar.id == WEBINAR_ID
        assert webinar.start_time == datetime(2024, 6, 20, 16, 0, tzinfo=UTC)
        assert webinar.settings.auto_recording == "cloud"
        assert webinar.registration_enabled is True
        assert webinar.is_simulive is False

    def test_registration_enabled_follows_approval_type(self) -> None:
        off = ZoomWebinar.model_validate(webinar_json(settings={"approval_type": 2}))
        assert off.registration_enabled is False
        manual = ZoomWebinar.model_validate(webinar_json(settings={"approval_type": 1}))
        assert manual.registration_enabled is True

    def test_recurring_webinar_without_start_time(self) -> None:
        webinar = ZoomWebinar.model_validate({"id": "5", "topic": "t", "type": 6, "start_time": ""})
        assert webinar.start_time is None
        assert webinar.settings.approval_type is None

    async def test_registration_questions(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(f"{WEBINAR_URL}/registrants/questions").respond(
            200,
            json={
                "questions": [
                    {"field_name": "last_name", "required": True},
                    {"field_name": "org", "required": True},
                    {"field_name": "city", "required": False},
                    {"field_name": "job_title", "required": True},
                ],
                "custom_questions": [
                    {"title": "Why?", "type": "short", "required": True, "answers": None},
                    {"title": "Size", "type": "single_radio", "required": False, "answers": ["1", "2"]},
                    {"title": "Role", "type": "single_dropdown", "required": True, "answers": ["a"]},
                ],
            },
        )
        questions = await client.get_registration_questions(WEBINAR_ID)
        assert questions.required_beyond_basics() == ["org", "job_title", "Why?", "Role"]
        assert questions.custom_questions[0].answers == []
        assert RegistrationQuestions.model_validate({}).required_beyond_basics() == []

    async def test_list_webinars(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(f"{API}/users/h0StUsErId00000001/webinars")
        route.side_effect = [
            httpx.Response(
                200,
                json={
                    "next_page_token": "p2",
                    "webinars": [{"id": 1, "topic": "a", "start_time": "2024-01-01T00:00:00Z"}],
                },
            ),
            httpx.Response(
                200, json={"next_page_token": "", "webinars": [{"id": "2", "uuid": "u2", "topic": "b"}]}
            ),
        ]
        webinars = await client.list_webinars("h0StUsErId00000001", page_size=50)
        assert [(w.id, w.topic) for w in webinars] == [("1", "a"), ("2", "b")]
        assert route.calls[1].request.url.params["next_page_token"] == "p2"
        assert route.calls[1].request.url.params["page_size"] == "50"


class TestRegistrants:
    async def test_add_registrant_body_is_exact(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.post(REGISTRANTS_URL).respond(
            201,
            json={
                "id": int(WEBINAR_ID),
                "registrant_id": "rEgIsTrAnT-aBcD1234",
                "join_url": "https://us06web.zoom.us/w/89412345678?tk=XXXX",
                "topic": "Q3 Product Webinar",
                "start_time": "2024-06-20T16:00:00Z",
                "occurrences": [],
            },
        )
        created = await client.add_registrant(
            WEBINAR_ID, email="ada@example.com", first_name="Ada", last_name="Lovelace"
        )
        request = only_request(route)
        assert request.method == "POST"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.content) == {
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
        }
        assert created.registrant_id == "rEgIsTrAnT-aBcD1234"
        assert created.id == WEBINAR_ID
        assert created.start_time == datetime(2024, 6, 20, 16, tzinfo=UTC)

    @pytest.mark.parametrize("last_name", [None, ""])
    async def test_add_registrant_omits_missing_last_name(
        self, last_name: str | None, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.post(REGISTRANTS_URL).respond(200, json={"id": WEBINAR_ID, "registrant_id": "r1"})
        await client.add_registrant(
            WEBINAR_ID, email="bob@example.com", first_name="Bob", last_name=last_name
        )
        assert json.loads(only_request(route).content) == {"email": "bob@example.com", "first_name": "Bob"}

    async def test_add_registrant_without_registrant_id_is_an_error(
        self, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        router.post(REGISTRANTS_URL).respond(201, json={"id": WEBINAR_ID})
        with pytest.raises(ZoomError, match="does not match RegistrantCreated"):
            await client.add_registrant(WEBINAR_ID, email="a@b.c", first_name="A", last_name=None)

    async def test_list_registrants_pages_with_status(
        self, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.get(REGISTRANTS_URL)
        route.side_effect = [
            httpx.Response(
                200,
                json={
                    "page_size": 300,
                    "total_records": 2,
                    "next_page_token": "tok-A",
                    "registrants": [
                        {"id": "r1", "email": "ada@example.com", "first_name": "Ada", "status": "approved",
                         "create_time": "2024-06-01T12:00:00Z", "join_url": "https://j/1"},
                    ],
                },
            ),
            httpx.Response(200, json={"next_page_token": "", "registrants": [{"id": 2, "email": ""}]}),
        ]  # fmt: skip
        registrants = await client.list_registrants(WEBINAR_ID, status="pending")
        assert [(r.id, r.email) for r in registrants] == [("r1", "ada@example.com"), ("2", "")]
        assert registrants[0].create_time == datetime(2024, 6, 1, 12, tzinfo=UTC)
        first, second = (call.request.url.params for call in route.calls)
        assert (first["status"], first["page_size"], "next_page_token" in first) == ("pending", "300", False)
        assert (second["status"], second["next_page_token"]) == ("pending", "tok-A")


def _participant(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "",
        "user_id": 16778240 + n,
        "name": f"P{n}",
        "user_email": f"p{n}@example.com",
        "registrant_id": f"reg-{n}",
        "join_time": "2024-06-20T16:02:00Z",
        "leave_time": "2024-06-20T17:00:00Z",
        "duration": 3480,
        "status": "in_meeting",
        **extra,
    }


class TestParticipants:
    @pytest.mark.parametrize(
        ("source", "path"),
        [
            ("past", f"/past_webinars/{WEBINAR_ID}/participants"),
            ("report", f"/report/webinars/{WEBINAR_ID}/participants"),
        ],
    )
    async def test_three_pages_with_registrant_id(
        self, source: Any, path: str, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.get(API + path)
        route.side_effect = [
            httpx.Response(
                200, json={"next_page_token": "n2", "participants": [_participant(1), _participant(2)]}
            ),
            httpx.Response(
                200, json={"next_page_token": "n3", "participants": [_participant(3, user_email=None)]}
            ),
            httpx.Response(200, json={"participants": [_participant(4, user_email="", leave_time="")]}),
        ]
        participants = await client.list_participants(WEBINAR_ID, source=source)
        assert route.call_count == 3
        for call in route.calls:
            assert call.request.url.params["include_fields"] == "registrant_id"
            assert call.request.url.params["page_size"] == "300"
        assert [call.request.url.params.get("next_page_token") for call in route.calls] == [None, "n2", "n3"]
        assert [p.registrant_id for p in participants] == ["reg-1", "reg-2", "reg-3", "reg-4"]
        assert [p.user_email for p in participants] == ["p1@example.com", "p2@example.com", "", ""]
        assert participants[0].user_id == "16778241"
        assert participants[0].join_time == datetime(2024, 6, 20, 16, 2, tzinfo=UTC)
        assert participants[3].leave_time is None
        assert participants[0] == Participant.model_validate(_participant(1))

    async def test_repeated_page_token_stops_with_error(
        self, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.get(f"{API}/past_webinars/{WEBINAR_ID}/participants").respond(
            200, json={"next_page_token": "same", "participants": [_participant(1)]}
        )
        with pytest.raises(ZoomError, match="paging token repeated"):
            await client.list_participants(WEBINAR_ID)
        assert route.call_count == 2

    async def test_missing_webinar(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(f"{API}/past_webinars/{WEBINAR_ID}/participants").respond(
            404, json=zoom_error(3001, "Webinar does not exist.")
        )
        with pytest.raises(ZoomWebinarNotFound):
            await client.list_participants(WEBINAR_ID)


class TestUsers:
    async def test_get_user(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(USER_URL).respond(
            200,
            json={"id": "u-123", "email": "host@example.com", "first_name": "Hos", "last_name": "T",
                  "type": 2, "status": "active", "dept": "x"},
        )  # fmt: skip
        user = await client.get_user("u-123")
        assert (user.id, user.email, user.type, user.status) == ("u-123", "host@example.com", 2, "active")

    async def test_list_users_pages(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(f"{API}/users")
        route.side_effect = [
            httpx.Response(
                200, json={"next_page_token": "x", "users": [{"id": "a", "email": "a@example.com"}]}
            ),
            httpx.Response(
                200, json={"next_page_token": None, "users": [{"id": "b", "email": "b@example.com"}]}
            ),
        ]
        users = await client.list_users(page_size=2000)
        assert [u.id for u in users] == ["a", "b"]
        assert route.calls[0].request.url.params["page_size"] == "2000"


# --- paths ----------------------------------------------------------------------------------------


class TestPaths:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("89412345678", "89412345678"),
            (89412345678, "89412345678"),
            ("4m1nH5cZQkK0r3Yt0tG1qQ==", "4m1nH5cZQkK0r3Yt0tG1qQ%3D%3D"),
            ("abc/def==", "abc%2Fdef%3D%3D"),
            ("/abcdef==", "%252Fabcdef%253D%253D"),
            ("ab//cd==", "ab%252F%252Fcd%253D%253D"),
            ("a?b#c", "a%3Fb%23c"),
        ],
    )
    def test_webinar_path_id(self, value: str | int, expected: str) -> None:
        assert webinar_path_id(value) == expected

    @pytest.mark.parametrize(
        ("uuid", "raw_path"),
        [
            ("/Zt5p8bQ2Rx6m0yS1aK9wVg==", b"/v2/meetings/%252FZt5p8bQ2Rx6m0yS1aK9wVg%253D%253D/recordings"),
            ("Zt5p//8bQ2==", b"/v2/meetings/Zt5p%252F%252F8bQ2%253D%253D/recordings"),
            ("Zt5p/8bQ2==", b"/v2/meetings/Zt5p%2F8bQ2%3D%3D/recordings"),
        ],
    )
    async def test_uuid_on_the_wire(
        self, uuid: str, raw_path: bytes, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.route(method="GET", host="api.zoom.test").respond(200, json={"id": 1, "uuid": uuid})
        recordings = await client.get_recordings(uuid)
        assert only_request(route).url.raw_path == raw_path
        assert recordings.uuid == uuid
        assert recordings.recording_files == []

    async def test_user_id_is_one_segment(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.route(method="GET", host="api.zoom.test").respond(200, json={"id": "x", "email": ""})
        await client.get_user("../admin")
        assert only_request(route).url.raw_path == b"/v2/users/..%2Fadmin"


# --- recordings and downloads ---------------------------------------------------------------------


class TestRecordings:
    async def test_get_recordings_tolerates_sparse_files(
        self, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        router.get(RECORDINGS_URL).respond(
            200,
            json={
                "uuid": "Zt5p8bQ2Rx6m0yS1aK9wVg==",
                "id": int(WEBINAR_ID),
                "host_id": "h",
                "topic": "Q3",
                "start_time": "2024-06-20T16:00:05Z",
                "duration": 63,
                "share_url": "https://us06web.zoom.us/rec/share/XXXX",
                "download_access_token": "dl-access",
                "recording_files": [
                    {"id": "f1", "file_type": "MP4", "file_size": 100, "download_url": "https://z/1",
                     "recording_start": "2024-06-20T16:00:10Z", "recording_type": "active_speaker"},
                    {"file_type": "CC", "file_extension": "VTT", "download_url": "https://z/cc"},
                    {"id": "f3", "file_type": "TRANSCRIPT", "file_extension": "VTT", "download_url": "https://z/t",
                     "status": "completed", "recording_type": "audio_transcript"},
                ],
            },
        )  # fmt: skip
        recordings = await client.get_recordings(WEBINAR_ID)
        assert recordings.id == WEBINAR_ID
        assert recordings.download_access_token == "dl-access"
        assert [f.file_type for f in recordings.recording_files] == ["MP4", "CC", "TRANSCRIPT"]
        assert recordings.recording_files[1].id is None
        assert recordings.transcript is not None
        assert recordings.transcript.id == "f3"
        assert Recordings.model_validate({"id": 1, "recording_files": None}).transcript is None


DOWNLOAD_URL = "https://zoom.test/rec/webhook_download/ZZZZ"
FILE_URL = "https://zoom.test/rec/files/ZZZZ.vtt"
VTT = b"WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nAda: hello\n"


class TestDownload:
    async def test_bearer_header_and_redirect(self, client: ZoomClient, router: respx.MockRouter) -> None:
        first = router.get(DOWNLOAD_URL).respond(302, headers={"Location": FILE_URL})
        second = router.get(FILE_URL).respond(200, content=VTT)
        body = await client.download(DOWNLOAD_URL, token="webhook-download-token")
        assert body == VTT
        assert only_request(first).headers["Authorization"] == "Bearer webhook-download-token"
        assert only_request(second).headers["Authorization"] == "Bearer webhook-download-token"

    async def test_account_token_when_none_given(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(DOWNLOAD_URL).respond(200, content=VTT)
        assert await client.download(DOWNLOAD_URL) == VTT
        assert only_request(route).headers["Authorization"] == f"Bearer {TOKEN}"

    async def test_refused_download_token_falls_back_to_account_token(
        self, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        route = router.get(DOWNLOAD_URL)
        route.side_effect = [
            httpx.Response(401, json=zoom_error(124, "Invalid access token.")),
            httpx.Response(200, content=VTT),
        ]
        assert await client.download(DOWNLOAD_URL, token="expired-download-token") == VTT
        assert [call.request.headers["Authorization"] for call in route.calls] == [
            "Bearer expired-download-token",
            f"Bearer {TOKEN}",
        ]

    async def test_404_is_recording_not_found(self, client: ZoomClient, router: respx.MockRouter) -> None:
        route = router.get(DOWNLOAD_URL).respond(404, text="Not Found")
        with pytest.raises(ZoomRecordingNotFound) as info:
            await client.download(DOWNLOAD_URL, token="t")
        assert route.call_count == 1
        assert info.value.path == "/rec/webhook_download/ZZZZ"

    async def test_5xx_is_retried(
        self, client: ZoomClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.get(DOWNLOAD_URL)
        route.side_effect = [httpx.Response(503, text="busy"), httpx.Response(200, content=VTT)]
        assert await client.download(DOWNLOAD_URL, token="t") == VTT
        assert len(sleeps.calls) == 1

    @pytest.mark.parametrize("declare_length", [True, False])
    async def test_body_over_max_bytes_is_an_error(
        self, declare_length: bool, client: ZoomClient, router: respx.MockRouter
    ) -> None:
        big = b"x" * 1000

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 100):
                yield big[start : start + 100]

        response = (
            httpx.Response(200, content=big) if declare_length else httpx.Response(200, content=chunks())
        )
        route = router.get(DOWNLOAD_URL).mock(return_value=response)
        with pytest.raises(ZoomError, match="larger than 999 bytes") as info:
            await client.download(DOWNLOAD_URL, token="t", max_bytes=999)
        assert not info.value.retryable
        assert route.call_count == 1

    async def test_exactly_max_bytes_is_fine(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(DOWNLOAD_URL).respond(200, content=b"x" * 10)
        assert await client.download(DOWNLOAD_URL, max_bytes=10) == b"x" * 10

    async def test_query_is_never_shown(self, client: ZoomClient, router: respx.MockRouter) -> None:
        router.get(DOWNLOAD_URL).respond(403, json=zoom_error(200, "No permission."))
        with pytest.raises(ZoomError) as info:
            await client.download(DOWNLOAD_URL + "?access_token=secret-in-query", token="t")
        assert "secret-in-query" not in str(info.value)
