from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.secret_box import SecretBox, SecretKeyMissing, SecretUnreadable


def test_round_trip_and_no_plain_text() -> None:
    box = SecretBox("k" * 32)
    stored = box.encrypt("pat-na1-secret-token")
    assert "pat-na1-secret-token" not in stored
    assert stored.startswith("v1:")
    assert box.decrypt(stored) == "pat-na1-secret-token"
    # Fernet is randomised: the same secret never reads the same twice at rest.
    assert box.encrypt("pat-na1-secret-token") != stored


def test_other_key_cannot_read() -> None:
    stored = SecretBox("first key").encrypt("s3cret")
    with pytest.raises(SecretUnreadable, match="APP_SECRET_KEY"):
        SecretBox("second key").decrypt(stored)


def test_damaged_or_foreign_value_is_refused() -> None:
    box = SecretBox("key")
    with pytest.raises(SecretUnreadable):
        box.decrypt("plain-token")
    with pytest.raises(SecretUnreadable):
        box.decrypt(box.encrypt("x")[:-4] + "AAAA")


@pytest.mark.parametrize("key", [None, SecretStr("")])
def test_missing_key_is_a_clear_error(key: SecretStr | None) -> None:
    with pytest.raises(SecretKeyMissing, match="APP_SECRET_KEY is not set"):
        SecretBox.for_key(key)
