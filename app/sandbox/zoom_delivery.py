"""Signed webhook deliveries of the fake Zoom: the target, sending (in the background or awaited, in
order), redelivery and the record of every delivery. The base of
:class:`~app.sandbox.zoom_core.ZoomCore`: every state change ends in a delivery.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from app.sandbox.zoom_common import (
    DEFAULT_TRANSPORT_WEBHOOK_URL,
    DEFAULT_WEBHOOK_SECRET,
    control_error,
)
from app.sandbox.zoom_records import (
    DeliveryRecord,
    WebhookTarget,
)
from app.sandbox.zoom_webhook_signing import Envelope, make_delivery


class WebhookDeliveryMixin:
    """Signed webhook deliveries to the service: the target, sending (in the background or awaited),
    redelivery and the record of every delivery."""

    webhook: WebhookTarget | None
    deliveries: list[DeliveryRecord]
    _clients: list[httpx.AsyncClient]
    _client: httpx.AsyncClient | None
    _client_target: WebhookTarget | None
    _pending: set[asyncio.Task[list[DeliveryRecord]]]
    _tail: asyncio.Task[list[DeliveryRecord]] | None
    webhook_timeout_s: float

    @staticmethod
    def _make_target(
        url: str | None, secret: str | None, transport: httpx.AsyncBaseTransport | None
    ) -> WebhookTarget | None:
        if url is None and transport is None:
            return None
        return WebhookTarget(
            url=url or DEFAULT_TRANSPORT_WEBHOOK_URL,
            secret=secret or DEFAULT_WEBHOOK_SECRET,
            transport=transport,
        )

    def set_webhook_target(
        self,
        url: str | None = None,
        *,
        secret: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app: Any = None,
    ) -> WebhookTarget | None:
        """Where webhooks go: a URL, an ``httpx`` transport, or an ASGI ``app`` (via
        ``httpx.ASGITransport``; its exceptions become 500s). No arguments: no target (deliveries are
        still recorded, with an error)."""
        if app is not None:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.webhook = self._make_target(url, secret, transport)
        return self.webhook

    async def _deliver(self, envelopes: list[Envelope], *, background: bool) -> list[DeliveryRecord]:
        if not envelopes:
            return []
        loop = asyncio.get_running_loop()
        previous = self._tail
        if previous is not None and (previous.done() or previous.get_loop() is not loop):
            previous = None
        task = loop.create_task(self._send_after(previous, self.webhook, envelopes))
        self._tail = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if background:
            return []
        return await task

    async def _send_after(
        self,
        previous: asyncio.Task[list[DeliveryRecord]] | None,
        target: WebhookTarget | None,
        envelopes: list[Envelope],
    ) -> list[DeliveryRecord]:
        if previous is not None:
            await asyncio.wait([previous])
        return [await self._send(target, envelope) for envelope in envelopes]

    def _http_client(self, target: WebhookTarget) -> httpx.AsyncClient:
        if self._client is None or self._client_target is not target:
            self._client = httpx.AsyncClient(transport=target.transport, timeout=self.webhook_timeout_s)
            self._client_target = target
            self._clients.append(self._client)
        return self._client

    async def _send(
        self, target: WebhookTarget | None, envelope: Envelope, *, request_id: str | None = None
    ) -> DeliveryRecord:
        event = str(envelope["event"])
        sent_at = datetime.now(UTC)
        if target is None:
            record = DeliveryRecord(
                len(self.deliveries),
                event,
                envelope,
                None,
                None,
                None,
                "",
                "no webhook target configured",
                0.0,
                sent_at,
            )
            self.deliveries.append(record)
            return record
        delivery = make_delivery(target.secret, envelope, request_id=request_id)
        started = time.perf_counter()
        status_code: int | None = None
        response_body = ""
        error: str | None = None
        try:
            response = await self._http_client(target).post(
                target.url, content=delivery.body, headers=delivery.headers
            )
            status_code, response_body = response.status_code, response.text[:4000]
        except Exception as exc:  # a failed delivery is recorded, never raised into the action
            error = f"{type(exc).__name__}: {exc}"
        record = DeliveryRecord(
            index=len(self.deliveries),
            event=event,
            envelope=envelope,
            url=target.url,
            request_id=delivery.request_id,
            status_code=status_code,
            response_body=response_body,
            error=error,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            sent_at=sent_at,
            body=delivery.body,
            headers=dict(delivery.headers),
        )
        self.deliveries.append(record)
        return record

    async def redeliver(self, index: int) -> DeliveryRecord:
        """Send delivery ``index`` again, as a Zoom retry: same envelope and ``x-zm-request-id``, fresh
        timestamp and signature, to the current target."""
        if not 0 <= index < len(self.deliveries):
            raise control_error(404, f"No delivery {index}.")
        original = self.deliveries[index]
        await self.settle()
        return await self._send(self.webhook, original.envelope, request_id=original.request_id)

    async def settle(self) -> None:
        """Wait until every webhook sent so far (also in the background) has been delivered."""
        loop = asyncio.get_running_loop()
        while True:
            pending = [t for t in self._pending if not t.done() and t.get_loop() is loop]
            if not pending:
                return
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """Wait for pending webhooks, then close the HTTP clients."""
        await self.settle()
        clients, self._clients, self._client, self._client_target = self._clients, [], None, None
        for client in clients:
            await client.aclose()
