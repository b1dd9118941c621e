"""The install link's signed state: made here, unexpired, untouched."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from app.api.oauth_state import new_nonce, sign_state, verify_state

KEY = "app-secret-key"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_signed_state_gives_its_nonce_back() -> None:
    nonce = new_nonce()
    assert len(nonce) <= 64  # fits oauth_state.nonce
    assert verify_state(KEY, sign_state(KEY, nonce, NOW + timedelta(minutes=5)), NOW) == nonce


def test_expired_tampered_foreign_or_malformed_states_are_refused() -> None:
    nonce = new_nonce()
    state = sign_state(KEY, nonce, NOW + timedelta(minutes=5))
    head, expires, signature = state.split(".")
    assert verify_state(KEY, state, NOW + timedelta(minutes=5)) is None  # expired
    assert verify_state("another-key", state, NOW) is None
    assert verify_state(KEY, f"{new_nonce()}.{expires}.{signature}", NOW) is None  # other nonce
    assert verify_state(KEY, f"{head}.{int(expires) + 3600}.{signature}", NOW) is None  # longer life
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert verify_state(KEY, f"{head}.{expires}.{flipped}", NOW) is None
    for bad in ("", "x", "a.b.c", f"{head}.{expires}", state + ".x", "." * 3, "a" * 500):
        assert verify_state(KEY, bad, NOW) is None


def test_the_state_key_is_not_the_secret_box_key() -> None:
    # Domain separation: a state signed with the raw key (or the box's derivation) does not verify.
    nonce = new_nonce()
    expires = int((NOW + timedelta(minutes=5)).timestamp())
    payload = f"{nonce}.{expires}"
    for key in (KEY.encode(), hashlib.sha256(b"zoom-hubspot/secret-box/v1\0" + KEY.encode()).digest()):
        raw = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assert verify_state(KEY, f"{payload}.{forged}", NOW) is None
