"""System checks: configuration problems reported by ``manage.py check`` and ``migrate``.

They are database checks: Django runs them for the aliases named by
``check --database <alias>`` and, before it migrates, for the alias
``migrate`` works on; a plain ``check`` does not touch any database. Only
aliases the results' models use are examined: the ones Django's routers
send their reads or writes to, or allow their tables to be migrated to.
Engine-specific questions are asked through :mod:`django_celery_results.engines`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.checks import CheckMessage, Info, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError, connections, models, router

from . import engines
from .conf import app_settings

APP_LABEL = "django_celery_results"

#: The columns whose length ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH`` sets.
ID_LENGTH_COLUMNS = frozenset({"task_id", "task_name", "group_id"})

DOCS = "https://docs.djangoproject.com/en/stable/ref/databases/"


def _models() -> tuple[type[models.Model], ...]:
    from .models import ChordCounter, GroupResult, TaskResult

    return (TaskResult, GroupResult, ChordCounter)


def read_aliases() -> set[str]:
    """Aliases results are read from (what pollers and views query)."""
    from .models import GroupResult, TaskResult

    return {router.db_for_read(TaskResult), router.db_for_read(GroupResult)}


def write_aliases() -> set[str]:
    """Aliases any of the three tables is written to."""
    return {router.db_for_write(model) for model in _models()}


def table_aliases(databases: Iterable[str]) -> set[str]:
    """Those of ``databases`` where the tables are created or written."""
    writes = write_aliases()
    return {
        alias for alias in databases
        if alias in writes or any(router.allow_migrate_model(alias, m) for m in _models())
    }


# -- W001: reads from one snapshot --------------------------------------------


def isolation_issues(alias: str) -> list[CheckMessage]:
    """W001 when the connection that reads results keeps one snapshot per transaction."""
    connection = connections[alias]
    level = engines.snapshot_isolation_level(connection)
    if level is None:
        return []
    return [
        CheckWarning(
            f"Celery results are read through database {alias!r}, whose transactions run at "
            f"{level}: a poller inside one transaction keeps seeing what its first read saw "
            "(e.g. PENDING) and never sees the task finish.",
            hint=f"{engines.read_committed_hint(connection)} See {DOCS}#isolation-level",
            obj=alias,
            id=f"{APP_LABEL}.W001",
        )
    ]


# -- W002: index keys too long --------------------------------------------------


@dataclass(frozen=True)
class IndexedColumn:
    """One indexed text column of the results' tables."""

    table: str
    column: str
    max_length: int


def indexed_text_columns(
    model_list: Sequence[type[models.Model]] | None = None,
) -> list[IndexedColumn]:
    """Every text column that is unique or indexed, with its length in characters."""
    found: dict[tuple[str, str], IndexedColumn] = {}
    for model in model_list if model_list is not None else _models():
        meta = model._meta
        indexed = {f.name for f in meta.local_fields if f.unique or getattr(f, "db_index", False)}
        for index in meta.indexes:
            indexed.update(name.lstrip("-") for name in index.fields)
        for name in indexed:
            field = meta.get_field(name)
            max_length = getattr(field, "max_length", None)
            if isinstance(field, models.CharField) and max_length:
                column = str(field.column)
                found[(meta.db_table, column)] = IndexedColumn(meta.db_table, column, max_length)
    return sorted(found.values(), key=lambda c: (c.table, c.column))


def key_length_warnings(
    alias: str,
    limits: dict[str, engines.KeyLimits | None],
    columns: Sequence[IndexedColumn],
) -> list[CheckMessage]:
    """W002 when an indexed column needs more bytes than its table's key limit.

    ``limits`` maps each table to what the server allows there (``None``:
    no limit worth checking). Pure, so tests can feed it any server's figures.
    """
    too_long = []
    for col in columns:
        table_limits = limits.get(col.table)
        if table_limits is None:
            continue
        needed = col.max_length * table_limits.bytes_per_char
        if needed > table_limits.max_key_bytes:
            too_long.append((col, needed, table_limits))
    if not too_long:
        return []
    described = "; ".join(
        f"{col.table}.{col.column} needs {needed} bytes ({col.max_length} characters x "
        f"{lim.bytes_per_char} bytes), the limit is {lim.max_key_bytes} bytes "
        f"({lim.storage_engine}, ROW_FORMAT={lim.row_format})"
        for col, needed, lim in too_long
    )
    hints = []
    settable = [t for t in too_long if t[0].column in ID_LENGTH_COLUMNS]
    if settable:
        fits = min(lim.max_key_bytes // lim.bytes_per_char for _, _, lim in settable)
        hints.append(
            f"Set DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = {fits} (it is "
            f"{app_settings.task_id_max_length}) before the tables are created."
        )
    fixed = sorted({f"{c.table}.{c.column}" for c, _, _ in too_long if c.column not in ID_LENGTH_COLUMNS})
    if fixed:
        hints.append(
            f"{', '.join(fixed)} has a fixed length: create the tables with ROW_FORMAT=DYNAMIC "
            "(innodb_default_row_format = dynamic; on old servers also innodb_large_prefix = ON "
            "and innodb_file_format = Barracuda)."
        )
    return [
        CheckWarning(
            f"Database {alias!r} cannot index every column of the Celery results' tables: "
            f"{described}. Migrations will fail there (or, without strict mode, index a prefix).",
            hint=" ".join(hints),
            obj=alias,
            id=f"{APP_LABEL}.W002",
        )
    ]


def key_length_issues(alias: str, row_format: str | None = None) -> list[CheckMessage]:
    """W002 for ``alias``, with the limits its server reports (``row_format``: what if)."""
    connection = connections[alias]
    columns = indexed_text_columns()
    limits = {
        table: engines.key_limits(connection, table, row_format=row_format)
        for table in sorted({c.table for c in columns})
    }
    return key_length_warnings(alias, limits, columns)


# -- W003: over-long values truncated --------------------------------------------


def sql_mode_issues(alias: str) -> list[CheckMessage]:
    """W003 when a MySQL/MariaDB connection that writes results is not in strict mode."""
    if engines.strict_sql_mode(connections[alias]) is not False:
        return []
    return [
        CheckWarning(
            f"Celery results are written through database {alias!r}, whose sql_mode is not strict: "
            "the server truncates over-long values instead of rejecting them.",
            hint=(
                f"Add \"init_command\": \"SET sql_mode='STRICT_TRANS_TABLES'\" to "
                f"DATABASES[{alias!r}]['OPTIONS']. See {DOCS}#mysql-sql-mode"
            ),
            obj=alias,
            id=f"{APP_LABEL}.W003",
        )
    ]


# -- W004: results larger than one statement may be ------------------------------


def statement_size_issues(alias: str) -> list[CheckMessage]:
    """W004 when the server refuses statements as large as ``MAX_RESULT_SIZE`` (MySQL/MariaDB)."""
    limit = engines.statement_size_limit(connections[alias])
    wanted = app_settings.max_result_size
    if limit is None or limit >= wanted:
        return []
    return [
        CheckWarning(
            f"Celery results are written through database {alias!r}, whose server accepts statements "
            f"of at most {limit} bytes (max_allowed_packet): a result larger than that is refused, "
            f"and DJANGO_CELERY_RESULTS['MAX_RESULT_SIZE'] says results may take {wanted} bytes.",
            hint=(
                "Raise max_allowed_packet on the server (SET GLOBAL max_allowed_packet = ...; and in "
                "its configuration file), or lower MAX_RESULT_SIZE to the size your results really take."
            ),
            obj=alias,
            id=f"{APP_LABEL}.W004",
        )
    ]


# -- the registered check ------------------------------------------------------


@register(Tags.database)
def check_results_databases(
    app_configs: Sequence[Any] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """W001 to W004 for each requested alias the results use.

    A server that cannot be reached yields an info (I001), not an error:
    the check cannot tell, and ``migrate`` will say it soon enough.
    """
    if not databases:
        return []
    if app_configs is not None and not any(c.label == APP_LABEL for c in app_configs):
        return []
    reads, writes, tables = read_aliases(), write_aliases(), table_aliases(databases)
    issues: list[CheckMessage] = []
    for alias in databases:
        if alias not in reads and alias not in tables:
            continue
        try:
            if alias in reads:
                issues.extend(isolation_issues(alias))
            if alias in tables:
                issues.extend(key_length_issues(alias))
            if alias in writes:
                issues.extend(sql_mode_issues(alias))
                issues.extend(statement_size_issues(alias))
        except DatabaseError as exc:
            issues.append(
                Info(
                    f"Database {alias!r} could not be examined for the Celery results' "
                    f"checks: {exc}".strip(),
                    obj=alias,
                    id=f"{APP_LABEL}.I001",
                )
            )
    return issues
