"""HubSpot request signatures: the published test vectors and every way a request is refused."""

from __future__ import annotations

import pytest

from app.security import (
    SignatureFailure,
    hubspot_signature_v1,
    hubspot_signature_v2,
    hubspot_signature_v3,
    verify_hubspot_signature,
)

# Test vectors from HubSpot's Python SDK (reference/hubspot.md §1.6).
SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = b"{'example_field':'example_value'}"
URI = "https://www.example.com/webhook_uri"
TS = "1693657560000"


def test_v1_vector() -> None:
    assert (
        hubspot_signature_v1(SECRET, BODY)
        == "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    )


def test_v2_vectors() -> None:
    assert (
        hubspot_signature_v2(SECRET, "POST", URI, BODY)
        == "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
    )
    assert (
        hubspot_signature_v2(SECRET, "GET", URI, b"")
        == "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )


def test_v3_vector() -> None:
    assert (
        hubspot_signature_v3(SECRET, "POST", URI, BODY, TS) == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    )


def test_v3_decodes_documented_escapes_in_the_uri() -> None:
    encoded = "https://www.example.com/webhook_uri?x=a%3Ab%2Cc"
    assert hubspot_signature_v3(SECRET, "POST", encoded, BODY, TS) == hubspot_signature_v3(
        SECRET, "POST", "https://www.example.com/webhook_uri?x=a:b,c", BODY, TS
    )


def _verify(headers: dict[str, str], *, now_ms: int = int(TS), body: bytes = BODY, uri: str = URI) -> str:
    return verify_hubspot_signature(
        secret=SECRET, method="POST", uri=uri, body=body, headers=headers, now_ms=now_ms
    )


def test_v3_accepted_within_five_minutes() -> None:
    headers = {
        "x-hubspot-signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        "x-hubspot-request-timestamp": TS,
    }
    assert _verify(headers, now_ms=int(TS) + 299_000) == "v3"


def test_v2_accepted_when_v3_absent() -> None:
    headers = {
        "x-hubspot-signature": "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383",
        "x-hubspot-signature-version": "v2",
    }
    assert _verify(headers) == "v2"


@pytest.mark.parametrize(
    ("headers", "now_offset_ms", "reason"),
    [
        ({}, 0, "missing"),
        ({"x-hubspot-signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="}, 0, "Timestamp"),
        (
            {
                "x-hubspot-signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
                "x-hubspot-request-timestamp": TS,
            },
            301_000,
            "5 minutes",
        ),
        (
            {
                "x-hubspot-signature-v3": "AAAAwei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
                "x-hubspot-request-timestamp": TS,
            },
            0,
            "does not match",
        ),
        (
            {"x-hubspot-signature": "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"},
            0,
            "v2",
        ),
        (
            {"x-hubspot-signature": "0" * 64, "x-hubspot-signature-version": "v2"},
            0,
            "does not match",
        ),
        (
            {
                "x-hubspot-signature": "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750",
                "x-hubspot-signature-version": "v1",
            },
            0,
            "v2",
        ),
    ],
)
def test_refusals(headers: dict[str, str], now_offset_ms: int, reason: str) -> None:
    with pytest.raises(SignatureFailure) as caught:
        _verify(headers, now_ms=int(TS) + now_offset_ms)
    assert reason in caught.value.reason


def test_a_changed_body_or_uri_fails() -> None:
    headers = {
        "x-hubspot-signature-v3": "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
        "x-hubspot-request-timestamp": TS,
    }
    with pytest.raises(SignatureFailure):
        _verify(headers, body=BODY + b" ")
    with pytest.raises(SignatureFailure):
        _verify(headers, uri=URI + "2")
