"""Text a column can hold: shared by the request bodies (app/api/schemas.py) and the services that
check values arriving outside a body (a pagination cursor)."""

from __future__ import annotations

import unicodedata


def check_storable(raw: str) -> None:
    """Refuse text no column should hold: control characters (NUL above all: PostgreSQL refuses it
    in text) and lone surrogates (not encodable as UTF-8). ValueError names the value and character;
    pydantic adds the field, so the answer is a 422 naming it."""
    for char in raw:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"{raw!r} contains the control character U+{ord(char):04X}")
