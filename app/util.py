"""Small helpers shared across modules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (bounded IN lists and batch sizes)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
