from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, parse_app_event_types


def test_app_event_types_parsed() -> None:
    settings = Settings(
        _env_file=None,
        hubspot_app_event_types="registration=zoom_reg, attendance=zoom_att,recording=zoom_rec",
    )
    assert settings.app_event_types == {
        "registration": "zoom_reg",
        "attendance": "zoom_att",
        "recording": "zoom_rec",
    }
    assert Settings(_env_file=None).app_event_types == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("registration=a,attendance=b", "missing recording"),
        ("registration=a,attendance=b,recording=c,poll=d", "unknown activity 'poll'"),
        ("registration,attendance=b,recording=c", "'registration' is not activity=name"),
        ("registration=,attendance=b,recording=c", "is not activity=name"),
    ],
)
def test_bad_app_event_types_named(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_app_event_types(value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, hubspot_app_event_types=value)
