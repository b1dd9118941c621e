"""Pure rules of the workflow action: W1 webinar ids, W2 contact fields, W3 business units, R1, W4."""

from __future__ import annotations

import json

import pytest

from app.actions.rules import (
    ActionCode,
    ActionFailure,
    ActionRequest,
    BadActionRequest,
    Contact,
    UnitConnection,
    check_contact,
    connection_for_contact,
    extra_required_fields_failure,
    in_primary_business_unit,
    is_host,
    normalize_webinar_id,
    parse_action_request,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("89412345678", "89412345678"),
        (" 894 1234 5678 ", "89412345678"),
        ("894-1234-5678", "89412345678"),
        ("894\u00a01234\t5678", "89412345678"),
    ],
)
def test_webinar_id_accepted(raw: str, expected: str) -> None:
    assert normalize_webinar_id(raw) == expected


@pytest.mark.parametrize(
    "raw", [None, "", "   ", "894.1234.5678", "abc", "8941234567x", "١٢٣", "1" * 21, "--"]
)
def test_webinar_id_refused(raw: str | None) -> None:
    result = normalize_webinar_id(raw)
    assert isinstance(result, ActionFailure)
    assert result.code is ActionCode.INVALID_WEBINAR_ID


@pytest.mark.parametrize(
    ("value", "primary"),
    [(None, True), ("", True), ("0", True), ("0;12", True), ("12;0", True), ("12", False), ("12;34", False)],
)
def test_business_unit(value: str | None, primary: bool) -> None:
    assert in_primary_business_unit(value) is primary


UNITS = [
    UnitConnection("acct-eu", 7, is_primary=False),
    UnitConnection("acct-main", 0, is_primary=True),
    UnitConnection("acct-us", 12, is_primary=False),
]


@pytest.mark.parametrize(
    ("value", "account"),
    [
        (None, "acct-main"),  # no business unit at all: the primary connection
        ("", "acct-main"),
        ("0", "acct-main"),
        ("7", "acct-eu"),
        ("12;7", "acct-eu"),  # several: the first connection in the given order
        ("0;12", "acct-main"),  # primary connections first
        ("99", None),
    ],
)
def test_connection_for_contact(value: str | None, account: str | None) -> None:
    chosen = connection_for_contact(UNITS, value)
    assert (chosen.zoom_account_id if chosen else None) == account


def test_connection_for_contact_without_primary() -> None:
    units = [UnitConnection("acct-eu", 7, is_primary=False)]
    assert connection_for_contact(units, None) is None
    assert connection_for_contact(units, "7") == units[0]
    assert connection_for_contact([], "0") is None


def _request(**props: str) -> ActionRequest:
    return ActionRequest(callback_id="cb", portal_id=1, object_id="9", properties=props, webinar_id_input="1")


def test_contact_complete() -> None:
    assert check_contact(
        _request(email=" Ada@Example.COM ", firstname="Ada", lastname="Lovelace")
    ) == Contact("ada@example.com", "Ada", "Lovelace")
    assert check_contact(_request(email="ada@example.com", firstname="Ada")) == Contact(
        "ada@example.com", "Ada", None
    )


@pytest.mark.parametrize(
    ("props", "needle"),
    [
        ({"firstname": "Ada"}, "email"),
        ({"email": "ada@example.com"}, "firstname"),
        ({}, "email and no firstname"),
        ({"email": "not-an-email", "firstname": "Ada"}, "not a valid"),
    ],
)
def test_contact_missing_fields(props: dict[str, str], needle: str) -> None:
    result = check_contact(_request(**props))
    assert isinstance(result, ActionFailure)
    assert result.code is ActionCode.MISSING_CONTACT_FIELDS
    assert needle in result.message


def test_extra_required_fields_names_them() -> None:
    assert extra_required_fields_failure([]) is None
    failure = extra_required_fields_failure(["phone", "How did you hear about us?"])
    assert failure is not None and failure.code is ActionCode.EXTRA_REQUIRED_FIELDS
    assert "phone, How did you hear about us?" in failure.message


def test_host_detection_is_case_insensitive() -> None:
    assert is_host("host@example.com", ["Host@Example.com", None])
    assert not is_host("ada@example.com", ["host@example.com", None])


def test_parse_request() -> None:
    body = {
        "callbackId": "ap-1-2-3",
        "origin": {"portalId": 4242, "actionDefinitionId": 7},
        "object": {
            "objectId": 904,
            "objectType": "CONTACT",
            "properties": {"email": "a@b.co", "firstname": None},
        },
        "inputFields": {"webinar_id": 89412345678},
    }
    req = parse_action_request(json.dumps(body).encode())
    assert (req.callback_id, req.portal_id, req.object_id, req.webinar_id_input) == (
        "ap-1-2-3",
        4242,
        "904",
        "89412345678",
    )
    assert req.properties == {"email": "a@b.co"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"origin": {"portalId": 1}, "object": {"objectId": 1}}', "callbackId"),
        (b'{"callbackId": "x", "object": {"objectId": 1}}', "portalId"),
        (b'{"callbackId": "x", "origin": {"portalId": 1}}', "object"),
        (b'{"callbackId": "x", "origin": {"portalId": 1}, "object": {}}', "objectId"),
        (
            b'{"callbackId": "x", "origin": {"portalId": 1}, "object": {"objectId": 1, "properties": []}}',
            "properties",
        ),
    ],
)
def test_parse_refusals(body: bytes, needle: str) -> None:
    with pytest.raises(BadActionRequest) as caught:
        parse_action_request(body)
    assert needle in str(caught.value)
