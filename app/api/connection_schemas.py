"""Request and response bodies of `/api/v1/connections` (CONTRACT.md §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.admin.storable import check_storable

MAX_ID = 2**63 - 1  # portal and business unit ids are stored as BIGINT
# Zoom account ids are short tokens of letters, digits, '-' and '_' (e.g. "lAAAAAAAAAAAAA").
ZOOM_ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_BUDGET = 100_000

ZoomAccountId = Annotated[
    str,
    Field(
        pattern=ZOOM_ACCOUNT_ID_PATTERN, description="Zoom account id: 1 to 64 letters, digits, '-' or '_'"
    ),
]
PortalIdField = Annotated[int, Field(ge=1, le=MAX_ID, description="HubSpot portal (hub) id")]
BusinessUnitId = Annotated[
    int, Field(ge=0, le=MAX_ID, description="HubSpot business unit id; 0 = the primary")
]
ClientId = Annotated[str, Field(min_length=1, max_length=200)]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=4000)]
Budget = Annotated[int, Field(ge=1, le=MAX_BUDGET, description="HubSpot requests per rolling 10 s")]


def _no_blank_or_control(value: Any) -> Any:
    """Texts that are empty once trimmed, hold whitespace or control characters are refused (422)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str):
        if not raw.strip():
            raise ValueError("must not be empty")
        if any(c.isspace() for c in raw):
            raise ValueError("must not contain whitespace")
        check_storable(raw)
    return value


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zoom_account_id: ZoomAccountId
    hubspot_portal_id: PortalIdField
    business_unit_id: BusinessUnitId = 0
    primary: bool = True
    zoom_client_id: ClientId
    zoom_client_secret: Secret
    hubspot_access_token: Secret | None = None
    hubspot_rate_limit_per_10s: Budget | None = None

    _texts = field_validator("zoom_client_id", "zoom_client_secret", "hubspot_access_token")(
        _no_blank_or_control
    )


class ConnectionPatch(BaseModel):
    """Any field but the two ids (a different pair is another connection). `null` is refused except
    for `hubspot_rate_limit_per_10s`, where it means "back to HUBSPOT_RATE_LIMIT_PER_10S"."""

    model_config = ConfigDict(extra="forbid")

    business_unit_id: BusinessUnitId | None = None
    primary: bool | None = None
    zoom_client_id: ClientId | None = None
    zoom_client_secret: Secret | None = None
    hubspot_access_token: Secret | None = None
    hubspot_rate_limit_per_10s: Budget | None = None

    _texts = field_validator("zoom_client_id", "zoom_client_secret", "hubspot_access_token")(
        _no_blank_or_control
    )

    @field_validator(
        "business_unit_id",
        "primary",
        "zoom_client_id",
        "zoom_client_secret",
        "hubspot_access_token",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields sent, secrets in plain text (for the service, which encrypts them)."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return out


class ConnectionOut(BaseModel):
    id: int
    zoom_account_id: str
    hubspot_portal_id: int
    business_unit_id: int
    primary: bool
    source: Literal["env", "api"]
    zoom_client_id: str | None
    zoom_client_secret_set: bool
    hubspot_access_token_set: bool
    auth_mode: Literal["static", "oauth"]
    needs_reinstall: bool
    hubspot_rate_limit_per_10s: int
    created_at: datetime
    updated_at: datetime
