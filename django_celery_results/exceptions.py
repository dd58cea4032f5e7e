"""Errors this package raises on purpose."""

from __future__ import annotations


class ValueTooLong(ValueError):
    """A value is longer than its column: stored as is it would be truncated or rejected.

    Raised before anything is written, so no row (this task's or another's) changes.
    """

    def __init__(self, model: str, field: str, max_length: int, length: int) -> None:
        self.model = model
        self.field = field
        self.max_length = max_length
        self.length = length
        super().__init__(
            f"{model}.{field} holds at most {max_length} characters; "
            f"got {length}. Nothing was stored."
        )
