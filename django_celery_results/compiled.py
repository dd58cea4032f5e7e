"""Hot reads built once: each call only executes a short, hand-written SELECT and converts its row.

Building a queryset's SQL costs several times the query itself on a fast
server, and SQLite's cursor rewrites the placeholders of every query with a
regular expression, so a long ORM-qualified text costs on every call too. The
reads every ``AsyncResult.get()`` and ``join_native()`` poll make have a
handful of shapes; each is built once per connection (docs/engines.rst).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.expressions import Col

#: Shapes kept per connection (a join's shape is its number of ids).
SHAPES_PER_CONNECTION = 64

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]

#: ``sql(connection, size)``: the SELECT of one shape, taking ``size`` looked-up values.
ShapeSQL = Callable[[BaseDatabaseWrapper, int], str]


def column_converters(
    connection: BaseDatabaseWrapper,
    model: type[Model],
    columns: Sequence[str],
) -> list[tuple[int, list[Converter], Col]]:
    """The converters the ORM would apply to each selected column, for the columns that have any.

    Only dates need one on SQLite (text) and MySQL (naive values); none do on PostgreSQL.
    """
    table = model._meta.db_table
    found = []
    for position, name in enumerate(columns):
        column = model._meta.get_field(name).get_col(table)  # type: ignore[union-attr]
        converters = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
        if converters:
            found.append((position, converters, column))
    return found


class CompiledRead:
    """One read shape on one connection: its SQL and the converters of its columns."""

    def __init__(
        self, connection: BaseDatabaseWrapper, model: type[Model], columns: Sequence[str], sql: str
    ) -> None:
        self.sql = sql
        self.names = tuple(columns)
        self.converters = column_converters(connection, model, columns)

    def records(self, connection: BaseDatabaseWrapper, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run the read for ``values``: the rows as tuples in column order, converted as the ORM would."""
        with connection.cursor() as cursor:
            cursor.execute(self.sql, values)
            fetched = cursor.fetchall()
        if not self.converters:
            return [tuple(record) for record in fetched]
        records = []
        for record in fetched:
            converted = list(record)
            for position, chain, column in self.converters:
                value = converted[position]
                if value is None:  # NULL stays None through every converter of these columns
                    continue
                for convert in chain:
                    value = convert(value, column, connection)
                converted[position] = value
            records.append(tuple(converted))
        return records


class ReadCache:
    """Built reads of one model and column list, per connection (each belongs to one thread) and shape."""

    def __init__(self, model: type[Model], columns: Sequence[str], sql: ShapeSQL) -> None:
        self.model = model
        self.columns = tuple(columns)
        self.sql = sql
        self._per_connection: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[int, CompiledRead]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def records(self, alias: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of the shape for ``len(values)`` values, run on ``alias``'s connection, as tuples."""
        connection = connections[alias]
        try:
            compiled = self._per_connection[connection][len(values)]
        except KeyError:
            compiled = self._compile(connection, len(values))
        return compiled.records(connection, values)

    def _compile(self, connection: BaseDatabaseWrapper, size: int) -> CompiledRead:
        """Build and keep the read for ``size`` values (up to :data:`SHAPES_PER_CONNECTION` kept)."""
        with self._lock:
            shapes = self._per_connection.setdefault(connection, {})
        compiled = CompiledRead(connection, self.model, self.columns, self.sql(connection, size))
        if len(shapes) >= SHAPES_PER_CONNECTION:
            shapes.clear()
        shapes[size] = compiled
        return compiled
