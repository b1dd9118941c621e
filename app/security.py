"""Signature checks for requests from Zoom and HubSpot, and admin bearer auth (pure functions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignatureFailure(Exception):
    reason: str


# ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits ("¹²³"),
# which int() then refuses. Header values arrive decoded as latin-1, so they can hold any byte.
_DIGITS = re.compile(r"[0-9]+")


def is_ascii_digits(value: str, max_len: int) -> bool:
    return len(value) <= max_len and _DIGITS.fullmatch(value) is not None


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed (ASCII) signature with a header value of any content.

    `hmac.compare_digest` raises TypeError for a str with non-ASCII characters: compare bytes.
    """
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


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
    if not is_ascii_digits(timestamp, 12):
        raise SignatureFailure("x-zm-request-timestamp must be whole seconds since the epoch")
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureFailure(f"x-zm-request-timestamp is more than {tolerance_s} s from now")
    if not signature.startswith("v0="):
        raise SignatureFailure("x-zm-signature must start with v0=")
    matched: str | None = None
    for secret in secrets:
        # No early exit: the time taken must not reveal which secret matched.
        if _same(zoom_signature(secret, timestamp, body), signature) and matched is None:
            matched = secret
    if matched is None:
        raise SignatureFailure("x-zm-signature does not match")
    return matched


def admin_auth_failure(expected: str, authorization: str | None) -> tuple[int, str] | None:
    """(status, reason) when a request may not use the admin API, else None: 503 while no token is
    configured (the API is disabled, never open), 401 for a missing or wrong bearer token."""
    if not expected:
        return 503, "admin API disabled: set ADMIN_API_TOKEN"
    if not bearer_token_matches(authorization, expected):
        return 401, "missing or wrong bearer token"
    return None


def bearer_token_matches(authorization: str | None, expected: str) -> bool:
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return _same(expected, token.strip())


# --- HubSpot request signatures (reference/hubspot.md §1.6) --------------------------------------

# HubSpot decodes these percent-escapes in the URI before signing v3 (its documented list).
_V3_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
HUBSPOT_V3_MAX_AGE_MS = 5 * 60 * 1000


def _v3_uri(uri: str) -> str:
    for escaped, char in _V3_URI_DECODE.items():
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    return uri


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + _v3_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_signature_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_signature_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def verify_hubspot_signature(
    *,
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now_ms: int,
) -> str:
    """Return the signature version that verified ("v3" or "v2"); raise SignatureFailure otherwise.

    v3 is checked whenever its header is present (HubSpot sends it to OAuth apps); without it,
    custom-action requests carry v2. `uri` is the URL HubSpot called: PUBLIC_BASE_URL + path + query.
    """
    v3 = headers.get("x-hubspot-signature-v3")
    if v3:
        timestamp = headers.get("x-hubspot-request-timestamp")
        if not timestamp:
            raise SignatureFailure("missing X-HubSpot-Request-Timestamp header")
        if not is_ascii_digits(timestamp, 16):
            raise SignatureFailure("X-HubSpot-Request-Timestamp must be milliseconds since the epoch")
        if abs(now_ms - int(timestamp)) > HUBSPOT_V3_MAX_AGE_MS:
            raise SignatureFailure("X-HubSpot-Request-Timestamp is more than 5 minutes from now")
        expected = hubspot_signature_v3(secret, method, uri, body, timestamp)
        if not _same(expected, v3.strip()):
            raise SignatureFailure("X-HubSpot-Signature-v3 does not match")
        return "v3"
    signature = headers.get("x-hubspot-signature")
    if not signature:
        raise SignatureFailure("missing X-HubSpot-Signature-v3 (or X-HubSpot-Signature) header")
    version = (headers.get("x-hubspot-signature-version") or "").strip().lower()
    if version != "v2":
        # v1 signs the body only, so it would accept a request replayed to any URL: not accepted here.
        raise SignatureFailure("X-HubSpot-Signature-Version must be v2 when v3 headers are absent")
    expected = hubspot_signature_v2(secret, method, uri, body)
    if not _same(expected, signature.strip().lower()):
        raise SignatureFailure("X-HubSpot-Signature does not match")
    return "v2"
