"""ORM lookups whose meaning or index use differs between engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, F, Func


def indexed_prefix_lookup(connection: BaseDatabaseWrapper) -> str:
    """The ``startswith`` lookup that can use a varchar column's index.

    Django's ``startswith`` on MySQL compares with ``LIKE BINARY``, which no
    index of the column can serve (not even a binary one: the pattern then
    compares as bytes, not in the column's collation); ``istartswith`` is a
    plain ``LIKE`` in the column's collation, which the index serves. For
    ``task_id``, binary since migration 0018, that match is exact as well
    (before 0018 it ignored case). On PostgreSQL ``startswith`` is served by
    the ``_like`` pattern index Django creates beside the unique constraint.
    """
    return "istartswith" if connection.vendor == "mysql" else "startswith"


def filter_exactly(rows: Any, field: str, values: Sequence[str]) -> Any:
    """``rows`` whose ``field`` equals one of ``values`` character for character.

    MySQL and MariaDB compare strings through the column's collation, whose
    defaults ignore case and trailing spaces: ``status IN ('success')`` would
    select SUCCESS rows there. Comparing the bytes keeps the filter exact, as
    it already is on PostgreSQL and SQLite.
    """
    if connections[rows.db].vendor != "mysql":
        return rows.filter(**{f"{field}__in": list(values)})
    as_bytes = Func(F(field), template="CAST(%(expressions)s AS BINARY)", output_field=CharField())
    return rows.alias(**{f"{field}_bytes": as_bytes}).filter(**{f"{field}_bytes__in": list(values)})
