"""The fake Zoom's core: setup and reset, accounts, OAuth tokens, the request gate's decisions, paging,
users and webinar lookup and creation; the resource mixins of
:class:`~app.sandbox.zoom_state.ZoomSandbox` build on it.

Over 500 lines because the gate's rate limits, the tokens and the webinar lookup are what every
resource mixin needs; splitting them further would only add mixins that all depend on each other.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

import httpx

from app.sandbox import gate
from app.sandbox.gate import Faults, GateOutcome, injected_fault
from app.sandbox.zoom_bodies import (
    FaultsUpdate,
    WebinarCreate,
)
from app.sandbox.zoom_common import (
    DEFAULT_ACCOUNTS,
    DEFAULT_HOST_EMAIL,
    DEFAULT_PUBLIC_URL,
    DEFAULT_RATE_LIMITS,
    JSON,
    OAUTH_SCOPE,
    REGISTRATIONS_PER_DAY,
    RateLabel,
    RetryAfter,
    T,
    ZoomError,
    clamp_page_size,
    control_error,
    invalid_webinar_id,
    iso,
    oauth_error,
    parse_basic,
    user_not_found,
    utc,
    valid_email,
    validation_failed,
    webinar_not_found,
)
from app.sandbox.zoom_delivery import WebhookDeliveryMixin
from app.sandbox.zoom_records import (
    Account,
    ActionResult,
    DeliveryRecord,
    GateDecision,
    IssuedToken,
    RecordingFile,
    Stats,
    User,
    WebhookTarget,
    Webinar,
)
from app.sandbox.zoom_webhook_scenario import WebinarScenario
from app.sandbox.zoom_webhook_signing import Envelope


class ZoomCore(WebhookDeliveryMixin):
    """The core of :class:`~app.sandbox.zoom_state.ZoomSandbox`: accounts, tokens, the gate, users
    and webinars; the resource mixins build on it."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, tuple[str, str]] | None = None,
        public_url: str = DEFAULT_PUBLIC_URL,
        token_ttl_s: int = 3600,
        rate_limits: Mapping[RateLabel | str, int] | None = None,
        rate_limit_enabled: bool = True,
        retry_after: RetryAfter | str = RetryAfter.SECONDS,
        faults: Faults | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        background_api_webhooks: bool = True,
        redirect_downloads: bool = False,
        strict_questions: bool = True,
        registrations_per_day: int = REGISTRATIONS_PER_DAY,
        webhook_timeout_s: float = 10.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        chosen = dict(DEFAULT_ACCOUNTS if accounts is None else accounts)
        if not chosen:
            raise ValueError("the Zoom sandbox needs at least one account")
        self.accounts: dict[str, Account] = {
            account_id: Account(account_id, client_id, secret)
            for account_id, (client_id, secret) in chosen.items()
        }
        self.public_url = public_url.rstrip("/")
        self.token_ttl_s = token_ttl_s
        self.background_api_webhooks = background_api_webhooks
        self.redirect_downloads = redirect_downloads
        self.strict_questions = strict_questions
        self.registrations_per_day = registrations_per_day
        self.webhook_timeout_s = webhook_timeout_s
        self.seed = seed
        self.clock = clock
        self.lock = asyncio.Lock()
        self.tokens: dict[str, IssuedToken] = {}
        initial_limits = {RateLabel(k): v for k, v in (rate_limits or DEFAULT_RATE_LIMITS).items()}
        self._initial: JSON = {
            "rate_limits": {**DEFAULT_RATE_LIMITS, **initial_limits},
            "rate_limit_enabled": rate_limit_enabled,
            "retry_after": RetryAfter(retry_after),
            "faults": faults or Faults(),
            "webhook": self._make_target(webhook_url, webhook_secret, webhook_transport),
        }
        self._clients: list[httpx.AsyncClient] = []
        self._client: httpx.AsyncClient | None = None
        self._client_target: WebhookTarget | None = None
        self._tail: asyncio.Task[list[DeliveryRecord]] | None = None
        self._pending: set[asyncio.Task[list[DeliveryRecord]]] = set()
        # Set by reset():
        self.rate_limits: dict[RateLabel, int] = {}
        self.rate_limit_enabled = rate_limit_enabled
        self.retry_after = RetryAfter(retry_after)
        self.faults = Faults()
        self.rng = random.Random()
        self._fault_rng = random.Random()
        self.webhook: WebhookTarget | None = None
        self.users: dict[str, User] = {}
        self.webinars: dict[str, Webinar] = {}
        self.deliveries: list[DeliveryRecord] = []
        self.stats = Stats()
        self._by_uuid: dict[str, str] = {}
        self._files: dict[str, tuple[str, RecordingFile]] = {}
        self._page_tokens: dict[str, tuple[str, int]] = {}
        self._windows: dict[tuple[str, RateLabel], deque[float]] = {}
        self._session_seq = 0
        self.reset()

    def reset(self) -> None:
        """Forget users, webinars, deliveries, statistics and runtime settings: back to the state the
        constructor made. Issued access tokens stay valid."""
        initial = self._initial
        self.rate_limits = dict(initial["rate_limits"])
        self.rate_limit_enabled = bool(initial["rate_limit_enabled"])
        self.retry_after = RetryAfter(initial["retry_after"])
        self.faults = Faults(**initial["faults"].to_json())
        self.rng = random.Random(self.seed)
        self._fault_rng = random.Random(self.faults.seed)
        self.webhook = initial["webhook"]
        self.users = {}
        self.webinars = {}
        self.deliveries = []
        self.stats = Stats()
        self._by_uuid = {}
        self._files = {}
        self._page_tokens = {}
        self._windows = {}
        self._session_seq = 0
        for n, account_id in enumerate(self.accounts):
            email = DEFAULT_HOST_EMAIL if n == 0 else f"host{n + 1}@zoom-sandbox.example"
            self.add_user(email, "Ada", "Lovelace", user_id=f"SbxHostUser{n + 1:010d}", account_id=account_id)

    @property
    def default_account_id(self) -> str:
        return next(iter(self.accounts))

    def account(self, account_id: str | None = None) -> Account:
        found = self.accounts.get(account_id or self.default_account_id)
        if found is None:
            raise control_error(404, f"Account {account_id} is not served by this sandbox.")
        return found

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _at(self, at: datetime | None) -> datetime:
        return utc(at) if at is not None else self.now().replace(microsecond=0)

    def _random_id(self, nbytes: int = 16) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(nbytes)).rstrip(b"=").decode("ascii")

    def set_faults(self, update: FaultsUpdate) -> JSON:
        if gate.apply_faults_update(self.faults, update):
            self._fault_rng = random.Random(self.faults.seed)
        if update.rate_limit_enabled is not None:
            self.rate_limit_enabled = update.rate_limit_enabled
        if update.rate_limits is not None:
            for label, limit in update.rate_limits.items():
                if limit < 1:
                    raise validation_failed(f"rate_limits.{label.value}")
                self.rate_limits[RateLabel(label)] = limit
        if update.retry_after is not None:
            self.retry_after = update.retry_after
        return self.settings()

    def settings(self) -> JSON:
        return {
            **self.faults.to_json(),
            "rate_limit_enabled": self.rate_limit_enabled,
            "rate_limits": {label.value: limit for label, limit in self.rate_limits.items()},
            "retry_after": self.retry_after.value,
        }

    def issue_token(self, authorization: str | None, grant_type: str | None, account_id: str | None) -> JSON:
        """``POST /oauth/token`` (Server-to-Server OAuth, ``account_credentials`` grant)."""
        credentials = parse_basic(authorization)
        account = None
        if credentials is not None:
            client_id, client_secret = credentials
            account = next((a for a in self.accounts.values() if a.client_id == client_id), None)
            if account is not None and not hmac.compare_digest(
                client_secret.encode(), account.client_secret.encode()
            ):
                account = None
        if account is None:
            raise oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        if grant_type != "account_credentials":
            raise oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        if not account_id or account_id != account.id:
            raise oauth_error(400, "invalid_request", "Invalid account_id")
        token = self.mint_token(account.id)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_ttl_s,
            "scope": OAUTH_SCOPE,
            "api_url": self.public_url,
        }

    def mint_token(self, account_id: str | None = None, *, ttl_s: float | None = None) -> str:
        """A new access token for ``account_id`` (in-process shortcut for ``/oauth/token``)."""
        account = self.account(account_id)
        token = "eyJzdiI6IjAwMDAwMSIsImFsZyI6IkhTNTEyIn0." + secrets.token_urlsafe(32)
        ttl = self.token_ttl_s if ttl_s is None else ttl_s
        self.tokens[token] = IssuedToken(account.id, self.clock() + ttl)
        return token

    def expire_tokens(self) -> int:
        """Make every issued access token expire now; returns how many there were."""
        now = self.clock()
        for issued in self.tokens.values():
            issued.expires_at = min(issued.expires_at, now)
        return len(self.tokens)

    def account_for_token(self, token: str | None) -> Account | None:
        issued = self.tokens.get(token) if token else None
        if issued is None or issued.expires_at <= self.clock():
            return None
        return self.accounts.get(issued.account_id)

    def record_request(self, key: str) -> None:
        self.stats.requests[key] += 1

    def record_status(self, status_code: int) -> None:
        self.stats.statuses[str(status_code)] += 1

    def fault_gate(self) -> GateDecision:
        """Faults only: ``down`` then random 5xx at ``error_rate`` (token endpoint, downloads)."""
        fault = injected_fault(self.faults, self._fault_rng)
        if fault is None:
            return GateDecision(GateOutcome.OK)
        self.stats.faults += 1
        return GateDecision(*fault)

    def gate(self, token: str | None, label: RateLabel | None, key: str = "") -> GateDecision:
        """One REST request, in order: down, random 5xx, auth, ``burst_429``, per-second rate limit of
        the account for ``label``."""
        decision = self.fault_gate()
        if decision.outcome is not GateOutcome.OK:
            return decision
        account = self.account_for_token(token)
        if account is None:
            self.stats.unauthorized += 1
            return GateDecision(GateOutcome.UNAUTHORIZED, 401)
        category = {"X-RateLimit-Category": label.category, "X-RateLimit-Type": "QPS"} if label else {}
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            self.stats.throttled[key] += 1
            headers = {**category, **self._retry_after_headers(1.0)}
            return GateDecision(GateOutcome.BURST, 429, label, headers)
        if label is not None and self.rate_limit_enabled:
            limit = self.rate_limits[label]
            window = self._windows.setdefault((account.id, label), deque())
            now = self.clock()
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.stats.throttled[key] += 1
                wait = window[0] + 1.0 - now
                headers = {**category, "X-RateLimit-Limit": str(limit), **self._retry_after_headers(wait)}
                return GateDecision(GateOutcome.THROTTLED, 429, label, headers)
            window.append(now)
            headers = {
                **category,
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - len(window)),
            }
            return GateDecision(GateOutcome.OK, 200, label, headers)
        return GateDecision(GateOutcome.OK, 200, label, category)

    def _retry_after_headers(self, wait_s: float) -> dict[str, str]:
        seconds = max(1, math.ceil(wait_s))
        moment = self.now() + timedelta(seconds=seconds)
        if self.retry_after is RetryAfter.SECONDS:
            return {"Retry-After": str(seconds)}
        if self.retry_after is RetryAfter.DATE:
            return {"Retry-After": iso(moment)}
        if self.retry_after is RetryAfter.HTTP_DATE:
            return {"Retry-After": format_datetime(moment.replace(microsecond=0), usegmt=True)}
        return {}

    def _page(
        self,
        key: str,
        items: Sequence[T],
        page_size: int | None,
        next_page_token: str | None,
        *,
        maximum: int,
        default: int = 30,
    ) -> tuple[list[T], JSON]:
        size = clamp_page_size(page_size, default=default, maximum=maximum)
        start = 0
        if next_page_token:
            found = self._page_tokens.get(next_page_token)
            if found is None or found[0] != key:
                raise ZoomError(400, 300, "The next page token is either invalid or has expired.")
            start = found[1]
        page = list(items[start : start + size])
        token = ""
        if start + size < len(items):
            token = secrets.token_urlsafe(24)
            self._page_tokens[token] = (key, start + size)
        meta: JSON = {
            "page_count": math.ceil(len(items) / size) if items else 0,
            "page_size": size,
            "total_records": len(items),
            "next_page_token": token,
        }
        return page, meta

    def add_user(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        user_id: str | None = None,
        account_id: str | None = None,
        type: int = 2,
    ) -> User:
        account = self.account(account_id)
        email = email.strip()
        if not valid_email(email):
            raise validation_failed("email")
        if any(u.email.lower() == email.lower() for u in self.users.values()):
            raise ZoomError(409, 1005, f"Email {email} has already been used.")
        ident = user_id or self._random_id()
        if ident in self.users:
            raise ZoomError(409, 1005, f"User {ident} already exists.")
        user = User(
            id=ident,
            account_id=account.id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            created_at=self.now().replace(microsecond=0),
            type=type,
            pmi=self.rng.randrange(10**9, 10**10),
        )
        self.users[ident] = user
        return user

    def _find_user(self, account_id: str, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            lowered = unquote(user_id).lower()
            user = next((u for u in self.users.values() if u.email.lower() == lowered), None)
        if user is None or user.account_id != account_id:
            raise user_not_found(user_id)
        return user

    def list_users(
        self, account_id: str, *, page_size: int | None = None, next_page_token: str | None = None
    ) -> JSON:
        users = [u for u in self.users.values() if u.account_id == account_id]
        page, meta = self._page(f"users:{account_id}", users, page_size, next_page_token, maximum=2000)
        return {**meta, "page_number": 1, "users": [u.to_json() for u in page]}

    def get_user(self, account_id: str, user_id: str) -> JSON:
        return self._find_user(account_id, user_id).to_json(full=True)

    def list_user_webinars(
        self,
        account_id: str,
        user_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
    ) -> JSON:
        user = self._find_user(account_id, user_id)
        webinars = [w for w in self.webinars.values() if w.host.id == user.id]
        page, meta = self._page(f"webinars:{user.id}", webinars, page_size, next_page_token, maximum=300)
        return {**meta, "webinars": [w.summary_json() for w in page]}

    def find_webinar(self, raw_id: str) -> Webinar | None:
        """By numeric id, scheduled uuid or instance uuid (uuids may arrive URL-encoded, even twice)."""
        key = raw_id
        for _ in range(3):
            found = self.webinars.get(key) or self.webinars.get(self._by_uuid.get(key, ""))
            if found is not None:
                return found
            decoded = unquote(key)
            if decoded == key:
                break
            key = decoded
        return None

    def webinar(self, webinar_id: str | int) -> Webinar:
        """A webinar of any account (control API and in-process use); 404 code 3001 otherwise."""
        found = self.find_webinar(str(webinar_id))
        if found is None:
            raise webinar_not_found(str(webinar_id))
        return found

    def _api_webinar(self, account_id: str, raw_id: str) -> Webinar:
        found = self.find_webinar(raw_id)
        if found is None or found.account_id != account_id:
            if not raw_id.isdigit():
                raise invalid_webinar_id()
            raise webinar_not_found(raw_id)
        return found

    def get_webinar(self, account_id: str, webinar_id: str) -> JSON:
        return self._api_webinar(account_id, webinar_id).to_json()

    def registrant_questions(self, account_id: str, webinar_id: str) -> JSON:
        return self._api_webinar(account_id, webinar_id).questions_json()

    def _create_webinar(self, body: WebinarCreate) -> tuple[JSON, list[Envelope]]:
        account = self.account(body.account_id)
        if body.host_id is not None:
            host = self.users.get(body.host_id)
            if host is None or host.account_id != account.id:
                raise user_not_found(body.host_id)
        else:
            host = next((u for u in self.users.values() if u.account_id == account.id), None)
            if host is None:
                raise control_error(400, f"Account {account.id} has no user to host the webinar.")
        if body.id is not None:
            if not body.id.isdigit() or body.id in self.webinars:
                raise control_error(400, f"Webinar id {body.id!r} must be digits and not in use.")
            webinar_id = body.id
        else:
            webinar_id = str(self.rng.randrange(10**10, 10**11))
            while webinar_id in self.webinars:
                webinar_id = str(self.rng.randrange(10**10, 10**11))
        at = self._at(body.at)
        start = (
            utc(body.start_time) if body.start_time else (at + timedelta(days=7)).replace(minute=0, second=0)
        )
        scenario = WebinarScenario(
            account_id=account.id,
            webinar_id=webinar_id,
            host_id=host.id,
            host_email=host.email,
            topic=body.topic,
            start=start,
            duration_minutes=body.duration,
            webinar_type=body.type,
            seed=(self.seed << 40) ^ int(webinar_id),
            timezone=body.timezone,
        )
        created = scenario.created(at=at)
        w = Webinar(
            id=webinar_id,
            account_id=account.id,
            host=host,
            scenario=scenario,
            agenda=body.agenda,
            approval_type=body.approval_type,
            alternative_hosts=list(body.alternative_hosts),
            questions=[q.model_dump(include={"field_name", "required"}) for q in body.questions],
            custom_questions=[
                q.model_dump(include={"title", "type", "required", "answers"}) for q in body.custom_questions
            ],
            created_at=at,
            password=str(created["payload"]["object"].get("password", "")),
            registration_token=self._random_id(16),
        )
        self.webinars[webinar_id] = w
        self._by_uuid[w.uuid] = webinar_id
        self._by_uuid[w.instance_uuid] = webinar_id
        return w.to_json(), scenario.pop_envelopes()

    async def _act(self, change: Callable[[], tuple[JSON, list[Envelope]]], emit: bool) -> ActionResult:
        async with self.lock:
            result, envelopes = change()
        events = [str(e["event"]) for e in envelopes] if emit else []
        deliveries = await self._deliver(envelopes, background=False) if emit else []
        return ActionResult(result, deliveries, events)

    async def create_webinar(self, body: WebinarCreate | None = None, **fields: Any) -> ActionResult:
        """Create a webinar (``WebinarCreate`` or its fields as keywords); sends ``webinar.created``
        when ``emit``."""
        spec = body if body is not None else WebinarCreate(**fields)
        return await self._act(lambda: self._create_webinar(spec), spec.emit)
