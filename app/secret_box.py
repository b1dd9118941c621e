"""Encryption of what the service stores that must stay secret (tokens, client secrets).

The key comes from APP_SECRET_KEY, any string: it is stretched into a Fernet key (AES-128-CBC +
HMAC-SHA256, from `cryptography`, so nothing here is home-made crypto). Stored values carry a `v1:`
prefix so a later scheme can be told apart. Without a key nothing secret is stored: `SecretBox.for_key`
refuses with an error that says what to set.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

_PREFIX = "v1:"
# Domain separation: the same APP_SECRET_KEY also signs OAuth states and console sessions.
_CONTEXT = b"zoom-hubspot/secret-box/v1"


class SecretKeyMissing(RuntimeError):
    """APP_SECRET_KEY is not set, so a secret cannot be stored or read."""

    def __init__(self) -> None:
        super().__init__(
            "APP_SECRET_KEY is not set: the service stores tokens and secrets only encrypted. "
            "Set APP_SECRET_KEY to a long random string (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`) and keep it: stored secrets need the same key."
        )


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted: APP_SECRET_KEY changed, or the value is damaged."""


class SecretBox:
    def __init__(self, key: str) -> None:
        if not key:
            raise SecretKeyMissing()
        digest = hashlib.sha256(_CONTEXT + b"\0" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    @classmethod
    def for_key(cls, key: SecretStr | None) -> SecretBox:
        """The box for APP_SECRET_KEY; SecretKeyMissing when it is not set."""
        if key is None or not key.get_secret_value():
            raise SecretKeyMissing()
        return cls(key.get_secret_value())

    def encrypt(self, plain: str) -> str:
        return _PREFIX + self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(_PREFIX):
            raise SecretUnreadable("stored secret has an unknown format")
        try:
            return self._fernet.decrypt(stored[len(_PREFIX) :].encode("ascii")).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "a stored secret cannot be decrypted: APP_SECRET_KEY is not the key it was stored with"
            ) from exc
