"""The install link's `state`: a nonce, its expiry and an HMAC over both.

The key is derived from APP_SECRET_KEY under its own label, so it is unrelated to the secret box's
encryption key (and to anything else the same secret signs). The signature proves the state was made
here and is unexpired; that it is used once is the database's job (`oauth_state`, consumed by a DELETE).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

_CONTEXT = b"zoom-hubspot/oauth-state/v1"
NONCE_BYTES = 24


def _key(secret_key: str) -> bytes:
    return hashlib.sha256(_CONTEXT + b"\0" + secret_key.encode()).digest()


def _signature(secret_key: str, payload: str) -> str:
    digest = hmac.new(_key(secret_key), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def sign_state(secret_key: str, nonce: str, expires_at: datetime) -> str:
    payload = f"{nonce}.{int(expires_at.timestamp())}"
    return f"{payload}.{_signature(secret_key, payload)}"


def verify_state(secret_key: str, state: str, now: datetime) -> str | None:
    """The nonce of a state signed with this key and not expired at `now`, else None."""
    if len(state) > 200:  # a state we made is ~90 characters
        return None
    parts = state.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    nonce, expires, signature = parts
    if not hmac.compare_digest(_signature(secret_key, f"{nonce}.{expires}"), signature):
        return None
    if datetime.fromtimestamp(int(expires), UTC) <= now:
        return None
    return nonce
