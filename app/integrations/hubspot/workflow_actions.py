"""HubSpot workflow actions: completing blocked executions, and the action definitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.integrations.hubspot.errors import HubSpotNotFound
from app.integrations.hubspot.models import CallbackCompletion
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import check_batch, segment

CALLBACKS_V4 = "/automation/v4/actions/callbacks/complete"
CALLBACKS_2026_03 = "/automation/actions/callbacks/2026-03/complete"


class WorkflowActionsApi(HubSpotTransport):
    """Callbacks of blocked executions and the app's custom action definitions."""

    # Set once the legacy v4 callback route answered 404 and the 2026-03 one worked: this client
    # then goes straight to the dated route.
    _dated_callbacks: bool = False

    async def complete_callbacks(self, inputs: Sequence[CallbackCompletion]) -> None:
        """Finish blocked workflow-action executions (HubSpot answers 204).

        Both routes list `outputFields` and `typedOutputs` as required, so `typedOutputs: {}` goes
        along. The legacy v4 route is tried first (every app has it today); a 404 there (an app HubSpot
        serves only the date-versioned routes) sends the same body to the 2026-03 route. If that one
        fails too, its error is the answer: a 404 that meant "callback not found" says so again.
        """
        check_batch(inputs, "complete_callbacks")
        if not inputs:
            return
        body = {
            "inputs": [
                {"callbackId": item.callback_id, "outputFields": dict(item.output_fields), "typedOutputs": {}}
                for item in inputs
            ]
        }
        if not self._dated_callbacks:
            try:
                await self._request("POST", CALLBACKS_V4, body=body)
                return
            except HubSpotNotFound:
                pass
        await self._request("POST", CALLBACKS_2026_03, body=body)
        self._dated_callbacks = True

    # --- workflow action definitions -------------------------------------------------------------
    # HubSpot documents the developer API key (`hapikey`) for these calls; apps set up for OAuth or
    # static tokens use the bearer token alone (reference/hubspot.md §1.1).

    async def list_action_definitions(
        self, app_id: int | str, *, hapikey: str | None = None
    ) -> list[dict[str, Any]]:
        path = f"/automation/v4/actions/{segment(app_id)}"
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):  # pages of 50; an app never has thousands of actions
            params = (
                {"limit": "50"}
                | ({"after": after} if after else {})
                | ({"hapikey": hapikey} if hapikey else {})
            )
            data = await self._request_json("GET", path, params=params)
            found.extend(r for r in data.get("results", []) if isinstance(r, dict))
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        return found

    async def create_action_definition(
        self, app_id: int | str, definition: Mapping[str, Any], *, hapikey: str | None = None
    ) -> dict[str, Any]:
        path = f"/automation/v4/actions/{segment(app_id)}"
        params = {"hapikey": hapikey} if hapikey else None
        data: dict[str, Any] = await self._request_json("POST", path, params=params, body=dict(definition))
        return data

    async def update_action_definition(
        self,
        app_id: int | str,
        definition_id: str,
        definition: Mapping[str, Any],
        *,
        hapikey: str | None = None,
    ) -> dict[str, Any]:
        path = f"/automation/v4/actions/{segment(app_id)}/{segment(definition_id)}"
        params = {"hapikey": hapikey} if hapikey else None
        data: dict[str, Any] = await self._request_json("PATCH", path, params=params, body=dict(definition))
        return data
