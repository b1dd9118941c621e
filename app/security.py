"""Signature checks for requests from Zoom and HubSpot, and admin bearer auth (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignatureFailure(Exception):
    reason: str


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def zoom_url_validation_token(secret: str, plain_token: str) -> str:
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def verify_zoom_signature(
    *,
    secrets: Sequence[str],
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float,
    tolerance_s: int,
) -> str:
    """Return the secret that signed the request; raise SignatureFailure with the reason otherwise.

    Verifies the raw bytes (never a re-serialisation) and compares in constant time. Every
    configured secret is tried so that a rotation never rejects a valid delivery.
    """
    if not signature:
        raise SignatureFailure("missing x-zm-signature header")
    if not timestamp:
        raise SignatureFailure("missing x-zm-request-timestamp header")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureFailure("x-zm-request-timestamp must be whole seconds since the epoch")
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureFailure(f"x-zm-request-timestamp is more than {tolerance_s} s from now")
    if not signature.startswith("v0="):
        raise SignatureFailure("x-zm-signature must start with v0=")
    matched: str | None = None
    for secret in secrets:
        # No early exit: the time taken must not reveal which secret matched.
        if hmac.compare_digest(zoom_signature(secret, timestamp, body), signature) and matched is None:
            matched = secret
    if matched is None:
        raise SignatureFailure("x-zm-signature does not match")
    return matched


def bearer_token_matches(authorization: str | None, expected: str) -> bool:
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())
