"""Values as the columns can hold them: one rule for lengths and characters (docs/values.rst).

Identity columns (``task_id``, ``group_id``) are refused when too long or when
they hold text no engine stores exactly: another id must never be written or
read in their place. Descriptive columns (worker, task name, periodic task
name, queue) are shortened visibly instead: they must never cost the result.
All other text is stored through :func:`codec.escape_text`, which reads back
exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from . import engines
from .codec import escape_text, needs_escape
from .exceptions import ResultTooLarge, UnstorableText, ValueTooLong

logger = logging.getLogger(__name__)

#: Columns that identify a row: refused, never altered.
IDENTITY_COLUMNS = frozenset({"task_id", "group_id"})
#: Columns that only describe what ran: shortened to fit, ending in :data:`ELLIPSIS`.
DESCRIPTIVE_COLUMNS = frozenset({"worker", "task_name", "periodic_task_name", "queue"})
ELLIPSIS = "\u2026"

#: (model, column) pairs already warned about: one warning per process each.
_warned: set[tuple[str, str]] = set()


def check_id(model: type[models.Model], field: str, value: str) -> str:
    """``value`` if it can be an id of ``model``; else :class:`ValueTooLong` or :class:`UnstorableText`.

    Used before reads as well as writes: an id that cannot be stored can
    never be found, and PostgreSQL's driver rejects NUL in a query.
    """
    if not isinstance(value, str):
        return value
    limit = _length_limits(model).get(field)
    if limit is not None and len(value) > limit:
        raise ValueTooLong(model.__name__, field, limit, len(value))
    if needs_escape(value):
        raise UnstorableText(model.__name__, field, value)
    return value


def check_ids(model: type[models.Model], field: str, values: Iterable[str]) -> set[str]:
    """The distinct ``values``, each checked as :func:`check_id` does; one pass over all of them.

    A join checks its hundreds of ids at once: one length and one character test over their text.
    """
    found = set(values)
    limit = _length_limits(model).get(field)
    texts = [value for value in found if isinstance(value, str)]
    too_long = limit is not None and max(map(len, texts), default=0) > limit
    if too_long or needs_escape("".join(texts)):
        for value in texts:
            check_id(model, field, value)
    return found


def storable(
    model: type[models.Model],
    values: Mapping[str, Any],
    connection: BaseDatabaseWrapper,
) -> dict[str, Any]:
    """``values`` with every text made storable by the rule above, for one write through ``connection``.

    Raises for bad ids, over-long identity values, or a write larger than the server accepts.
    """
    limits = _length_limits(model)
    stored: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str):
            if name in IDENTITY_COLUMNS:
                value = check_id(model, name, value)
            elif name in DESCRIPTIVE_COLUMNS:
                value = _fitted(model, name, value, limits.get(name))
            else:
                value = escape_text(value)
                limit = limits.get(name)
                if limit is not None and len(value) > limit:
                    raise ValueTooLong(model.__name__, name, limit, len(value))
        stored[name] = value
    _check_size(model, connection, stored)
    return stored


def _fitted(model: type[models.Model], name: str, value: str, limit: int | None) -> str:
    """``value`` escaped, and shortened (ending in an ellipsis) until it fits ``limit``."""
    escaped = escape_text(value)
    if limit is None or len(escaped) <= limit:
        return escaped
    _warn_once(model.__name__, name, limit, len(value))
    keep = min(len(value), limit) - 1
    while keep > 0:
        candidate = escape_text(value[:keep] + ELLIPSIS)
        if len(candidate) <= limit:
            return candidate
        keep -= len(candidate) - limit
    return ELLIPSIS


def _warn_once(model: str, field: str, limit: int, length: int) -> None:
    if (model, field) in _warned:
        return
    _warned.add((model, field))
    logger.warning(
        "%s.%s holds at most %d characters; a value of %d was shortened to fit (ending in %r). "
        "Further shortened values of this column are not logged.",
        model,
        field,
        limit,
        length,
        ELLIPSIS,
    )


@cache
def _length_limits(model: type[models.Model]) -> dict[str, int]:
    limits = {field.name: getattr(field, "max_length", None) for field in model._meta.concrete_fields}
    return {name: limit for name, limit in limits.items() if limit}


#: Writes of fewer characters (at most 4 bytes each in UTF-8) never near a server's statement limit.
SMALL_WRITE_CHARS = 1 << 18
#: Room for the statement's own text around the values.
STATEMENT_OVERHEAD = 4096
#: Bytes the MySQL client escapes with a backslash, so that each takes two.
_ESCAPED_BYTES = tuple(bytes([b]) for b in b"\\'\"\n\r\x00\x1a")


def _check_size(
    model: type[models.Model],
    connection: BaseDatabaseWrapper,
    values: Mapping[str, Any],
) -> None:
    """Raise :class:`ResultTooLarge` when the write would exceed the server's statement limit.

    Checked before sending: past MySQL's ``max_allowed_packet`` the server
    drops the connection, which reads as a transient error and is retried.
    """
    texts = [value for value in values.values() if isinstance(value, str)]
    if sum(map(len, texts)) < SMALL_WRITE_CHARS:
        return
    limit = engines.statement_size_limit(connection)
    if limit is None:
        return
    size = STATEMENT_OVERHEAD
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        size += len(raw) + sum(raw.count(mark) for mark in _ESCAPED_BYTES)
    if size > limit:
        raise ResultTooLarge(model.__name__, size, limit)
