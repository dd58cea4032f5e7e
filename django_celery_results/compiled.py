"""Hot reads compiled once: the ORM builds a read's SQL and converters, each call only executes it.

Building a queryset's SQL costs several times the query itself on a fast
server; the reads every ``AsyncResult.get()`` and ``join_native()`` poll make
have a handful of shapes, so each shape is compiled once per connection.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

#: Stands in for the looked-up values while a shape is compiled; never sent to a database.
PLACEHOLDER_PREFIX = "\x00dcr-placeholder-"

#: Shapes kept per connection (a join's shape is its number of ids).
SHAPES_PER_CONNECTION = 64

Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


class CompiledRead:
    """One queryset shape: its SQL, where the looked-up values go, and the row converters."""

    def __init__(self, queryset: QuerySet, names: Sequence[str], size: int) -> None:
        compiler = queryset.query.get_compiler(using=queryset.db)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        # Which parameter receives which looked-up value.
        self.slots = [
            (position, int(value[len(PLACEHOLDER_PREFIX):]))
            for position, value in enumerate(self.params)
            if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX)
        ]
        if sorted(index for _, index in self.slots) != list(range(size)):
            raise AssertionError(f"the compiled read does not take its {size} value(s) as parameters")
        self.names = tuple(names)
        select = [column[0] for column in compiler.select[: compiler.col_count]]
        self.converters: list[tuple[int, list[Converter], Any]] = [
            (position, list(converters), expression)
            for position, (converters, expression) in compiler.get_converters(select).items()
        ]

    def rows(self, connection: BaseDatabaseWrapper, values: Sequence[Any]) -> list[dict[str, Any]]:
        """Run the read for ``values``: the rows as ``{name: value}``, converted as the ORM would."""
        params = list(self.params)
        for position, index in self.slots:
            params[position] = values[index]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            fetched = cursor.fetchall()
        names = self.names
        rows = []
        for record in fetched:
            row = dict(zip(names, record, strict=True))
            for position, converters, expression in self.converters:
                value = record[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[names[position]] = value
            rows.append(row)
        return rows


class ReadCache:
    """Compiled reads per connection (a connection belongs to one thread) and shape."""

    def __init__(self, build: Callable[[str, list[str]], tuple[QuerySet, Sequence[str]]]) -> None:
        #: ``build(alias, placeholders)``: the queryset of one shape and the names it selects.
        self.build = build
        self._per_connection: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[int, CompiledRead]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def rows(self, alias: str, values: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of the shape for ``len(values)`` values, run on ``alias``'s connection."""
        connection = connections[alias]
        with self._lock:
            shapes = self._per_connection.setdefault(connection, {})
        compiled = shapes.get(len(values))
        if compiled is None:
            placeholders = [f"{PLACEHOLDER_PREFIX}{index}" for index in range(len(values))]
            queryset, names = self.build(alias, placeholders)
            compiled = CompiledRead(queryset, names, len(values))
            if len(shapes) >= SHAPES_PER_CONNECTION:
                shapes.clear()
            shapes[len(values)] = compiled
        return compiled.rows(connection, values)
