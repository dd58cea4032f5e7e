"""Errors this package raises on purpose.

Each is a :class:`ValueError` raised before anything is written, so no row
changes. Their ``args`` are their constructor's arguments, so that they survive
``pickle`` (a prefork worker's child hands exceptions to its parent pickled,
and one that cannot be rebuilt there stops the whole worker) and Celery's JSON
form of exceptions (``exc_message`` is ``args``) with every attribute.
"""

from __future__ import annotations


class StorageRefused(ValueError):
    """Base of the errors below: a value the database cannot hold as given."""

    def describe(self) -> str:
        """The message; subclasses say what was refused and why."""
        return super().__str__()

    def __str__(self) -> str:
        return self.describe()


class ValueTooLong(StorageRefused):
    """A value is longer than its column: stored as is it would be truncated or rejected."""

    def __init__(self, model: str, field: str, max_length: int, length: int) -> None:
        super().__init__(model, field, max_length, length)
        self.model = model
        self.field = field
        self.max_length = max_length
        self.length = length

    def describe(self) -> str:
        return (
            f"{self.model}.{self.field} holds at most {self.max_length} characters; "
            f"got {self.length}. Nothing was stored."
        )


class UnstorableText(StorageRefused):
    """An id holds characters no engine stores exactly (NUL, or a lone UTF-16 surrogate)."""

    def __init__(self, model: str, field: str, value: str) -> None:
        super().__init__(model, field, value)
        self.model = model
        self.field = field
        self.value = value

    def describe(self) -> str:
        return (
            f"{self.model}.{self.field} cannot hold {self.value!r}: ids may not contain NUL "
            "characters or lone surrogates. Nothing was stored."
        )


class ResultTooLarge(StorageRefused):
    """A write is larger than the server accepts in one statement (MySQL's ``max_allowed_packet``)."""

    def __init__(self, model: str, size: int, limit: int) -> None:
        super().__init__(model, size, limit)
        self.model = model
        self.size = size
        self.limit = limit

    def describe(self) -> str:
        return (
            f"{self.model}: the values to store take {self.size} bytes, more than the database "
            f"server's max_allowed_packet of {self.limit} bytes. Nothing was stored; raise "
            "max_allowed_packet or store a smaller result."
        )
