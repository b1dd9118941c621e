"""The workflow action's lifecycle: claim by callbackId, execute, answer or BLOCK, complete later.

* `handle()` serves one HubSpot request (`request_path`): answered within a short Zoom time budget,
  else BLOCK; a known callbackId is answered from the store (`execution_store`), so HubSpot's
  retries never register twice.
* `run_once()` (the completer, in the worker; `completer`) executes due blocked executions with the
  patient Zoom client, and sends finished results of blocked executions to HubSpot's callbacks API
  (`callbacks`) in batches of at most 100.
* A success also enters the local model (`registration_event`): a `webinar.registration_created`
  event made from Zoom's answer goes into the inbox, and the normal pipeline refreshes the
  contact's P2/P3.

The engines and threads come from the entry points (`resources`): the service never creates or
disposes them.
"""

from __future__ import annotations

from collections.abc import Callable

from app.actions.callbacks import CallbackSender, HubSpotFor
from app.actions.completer import Completer, CompleterRound
from app.actions.config import ActionConfig
from app.actions.execution_store import ExecutionStore
from app.actions.executor import WebinarFactsCache, ZoomFor
from app.actions.request_path import RequestPath
from app.actions.resources import ActionResources
from app.actions.rules import ActionRequest


class ActionService:
    def __init__(
        self,
        resources: ActionResources,
        *,
        zoom_for: ZoomFor,
        hubspot_for: HubSpotFor | None = None,
        config: ActionConfig | None = None,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        self.config = config or ActionConfig()
        # One cache for both paths: a webinar the request path looked up serves the completer too.
        self.cache = WebinarFactsCache()
        store = ExecutionStore(resources.engine, resources.read_engine, self.config, on_registered)
        self._requests = RequestPath(
            store, zoom_for=zoom_for, cache=self.cache, config=self.config, executor=resources.executor
        )
        self._completer = Completer(
            store,
            CallbackSender(resources.engine, hubspot_for, self.config),
            zoom_for=zoom_for,
            cache=self.cache,
            config=self.config,
        )

    async def handle(self, req: ActionRequest) -> dict[str, str]:
        """HubSpot's request: SUCCESS / FAIL_CONTINUE now, or BLOCK and a callback later."""
        return await self._requests.handle(req)

    def recording_now(self) -> int:
        """Final answers sent whose record is still being written."""
        return self._requests.recording_now()

    async def drain(self) -> None:
        """Wait for answers still being recorded (at shutdown, before the resources close)."""
        await self._requests.drain()

    async def run_once(self) -> CompleterRound:
        """One completer round: due blocked executions, then pending callbacks."""
        return await self._completer.run_once()
