"""System checks: configuration problems reported by ``manage.py check`` and ``migrate``.

Two registrations. :func:`check_settings` reads Django's settings only (never a
database, never a Celery app), so every ``check``, ``runserver`` and
``migrate`` runs it: E001-E005 and W005-W007. :func:`check_results_databases`
holds the database checks, W001-W004 and I001: Django runs them for the aliases
named by ``check --database <alias>`` and, before it migrates, for the alias
``migrate`` works on; a plain ``check`` does not touch any database. Only
aliases the results' models use are examined: the ones Django's routers
send their reads or writes to, or allow their tables to be migrated to.
Engine-specific questions are asked through :mod:`django_celery_results.engines`.
Each id is described in docs/engines.rst, "System checks".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Info, Tags, register
from django.core.checks import Error as CheckError
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError, connections, models, router
from django.utils.module_loading import import_string

from . import engines
from .conf import OPTION_KEYS, AppSettings, InvalidSetting, app_settings

APP_LABEL = "django_celery_results"

#: The columns whose length ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH`` sets.
ID_LENGTH_COLUMNS = frozenset({"task_id", "task_name", "group_id"})

DOCS = "https://docs.djangoproject.com/en/stable/ref/databases/"

#: This project's own documentation: the Sphinx sources in ``docs/`` (no hosted copy is named
#: anywhere in the project). Every settings check's hint cites a page under it, through :func:`see`.
DOCS_BASE = "docs/"


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
        alias
        for alias in databases
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


# -- W008: writes routed to a standby ----------------------------------------------


def standby_issues(alias: str) -> list[CheckMessage]:
    """W008 when an alias results are written to is a hot standby.

    Reads that must see the latest writes (chord counters, a woken ``get()``) go
    to the write alias, so only writes must never be routed to a standby.
    """
    if not engines.is_hot_standby(connections[alias]):
        return []
    return [
        CheckWarning(
            f"Database {alias!r} is a hot standby (a read replica), and the routers send Celery "
            "results' writes to it: every store fails there (read-only), and chords never complete.",
            hint="Route the django_celery_results models' writes to the primary; their reads may "
            "go to the replica. " + see("deployments", "Read replicas and routers"),
            obj=alias,
            id=f"{APP_LABEL}.W008",
        )
    ]


# -- W002: index keys too long --------------------------------------------------


@dataclass(frozen=True)
class IndexedColumn:
    """One indexed text column of the results' tables."""

    table: str
    column: str
    max_length: int
    #: Columns the key spans (``column`` then names them all, comma-separated; ``max_length`` is their sum).
    columns: int = 1


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


def chord_part_key_columns() -> list[IndexedColumn]:
    """The ``ChordPart`` table's unique (group_id, task_id) key: each column, and both together.

    Kept apart from :func:`indexed_text_columns` (the three upstream tables):
    the part rows live beside the counters, and the key is one of two id columns.
    """
    from .models import ChordPart

    meta = ChordPart._meta
    lengths = [int(getattr(meta.get_field(name), "max_length", 0) or 0) for name in ("group_id", "task_id")]
    table = meta.db_table
    return [
        IndexedColumn(table, "group_id", lengths[0]),
        IndexedColumn(table, "task_id", lengths[1]),
        IndexedColumn(table, "group_id, task_id", sum(lengths), columns=2),
    ]


def _key_limit(col: IndexedColumn, limits: engines.KeyLimits) -> int:
    """Bytes ``col``'s key may take: per column, or for a key of several columns in total.

    InnoDB's 767 bytes (COMPACT, REDUNDANT) bound each column; a whole key may
    still take 3072 bytes there. Elsewhere one limit bounds both.
    """
    if col.columns > 1 and limits.storage_engine.upper() == "INNODB" and limits.max_key_bytes == 767:
        return 3072
    return limits.max_key_bytes


def _settable(col: IndexedColumn) -> bool:
    """Whether the id length setting sets every column of ``col``'s key."""
    return all(name.strip() in ID_LENGTH_COLUMNS for name in col.column.split(","))


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
        if needed > _key_limit(col, table_limits):
            too_long.append((col, needed, table_limits))
    if not too_long:
        return []
    described = "; ".join(
        f"{col.table}.{col.column} needs {needed} bytes ({col.max_length} characters x "
        f"{lim.bytes_per_char} bytes), the limit is {_key_limit(col, lim)} bytes "
        f"({lim.storage_engine}, ROW_FORMAT={lim.row_format})"
        for col, needed, lim in too_long
    )
    hints = []
    settable = [t for t in too_long if _settable(t[0])]
    if settable:
        fits = min(_key_limit(col, lim) // lim.bytes_per_char // col.columns for col, _, lim in settable)
        hints.append(
            f"Set DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = {fits} (it is "
            f"{app_settings.task_id_max_length}) before the tables are created."
        )
    fixed = sorted({f"{c.table}.{c.column}" for c, _, _ in too_long if not _settable(c)})
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
    columns = indexed_text_columns() + chord_part_key_columns()
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
                f'Add "init_command": "SET sql_mode=\'STRICT_TRANS_TABLES\'" to '
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
    """W001 to W004 and W008 for each requested alias the results use.

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
        if alias not in reads and alias not in tables and alias not in writes:
            continue
        try:
            if alias in writes:
                issues.extend(standby_issues(alias))
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
                    f"Database {alias!r} could not be examined for the Celery results' checks: {exc}".strip(),
                    obj=alias,
                    id=f"{APP_LABEL}.I001",
                )
            )
    return issues


# -- settings checks: no database, no Celery app -------------------------------


def see(page: str, section: str) -> str:
    """The hint's pointer to ``section`` of this project's ``page`` (under :data:`DOCS_BASE`)."""
    return f'See {DOCS_BASE}{page}.rst, "{section}".'


#: The ``result_backend`` values that select :class:`~django_celery_results.backends.CacheBackend`.
CACHE_BACKEND_NAMES = frozenset(
    {
        "django-cache",
        "django_celery_results.backends:CacheBackend",
        "django_celery_results.backends.CacheBackend",
        "django_celery_results.backends.cache:CacheBackend",
        "django_celery_results.backends.cache.CacheBackend",
    }
)

#: Django caches each process keeps to itself (or not at all): a worker's results never reach a reader.
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)

AUTHENTICATION_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"

STRICT = AppSettings(strict=True)


def _given_options() -> Mapping[str, Any]:
    """``DJANGO_CELERY_RESULTS`` as set, or empty when unset or not a dict (E001 says so)."""
    options = getattr(settings, "DJANGO_CELERY_RESULTS", None)
    return options if isinstance(options, Mapping) else {}


def options_type_issues() -> list[CheckMessage]:
    """E001 when ``DJANGO_CELERY_RESULTS`` is not a dict: every key in it would be ignored."""
    options = getattr(settings, "DJANGO_CELERY_RESULTS", None)
    if options is None or isinstance(options, Mapping):
        return []
    return [
        CheckError(
            f"DJANGO_CELERY_RESULTS must be a dict, not {type(options).__name__}: it is ignored.",
            hint='Write it as DJANGO_CELERY_RESULTS = {"ALLOW_EDITS": False, ...}. '
            + see("configuration", "The DJANGO_CELERY_RESULTS dictionary"),
            id=f"{APP_LABEL}.E001",
        )
    ]


def unknown_option_issues() -> list[CheckMessage]:
    """W006 for each key of ``DJANGO_CELERY_RESULTS`` no setting reads: a typo is silently ignored."""
    issues: list[CheckMessage] = []
    for key in _given_options():
        if key in OPTION_KEYS:
            continue
        close = difflib.get_close_matches(str(key).upper(), OPTION_KEYS, n=1)
        guess = f"Did you mean {close[0]!r}? " if close else ""
        issues.append(
            CheckWarning(
                f"DJANGO_CELERY_RESULTS has the unknown key {key!r}: nothing reads it.",
                hint=f"{guess}The keys are {', '.join(OPTION_KEYS)}. "
                + see("configuration", "The DJANGO_CELERY_RESULTS dictionary"),
                obj=key,
                id=f"{APP_LABEL}.W006",
            )
        )
    return issues


def _batch_size_range_problem(size: int) -> str | None:
    """What the cleanup command would say of ``size``; None when it takes it."""
    from .management.commands.celery_results_cleanup import BATCH_SIZES

    if size in BATCH_SIZES:
        return None
    return (
        f'DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"] is {size}: it must be from '
        f"{BATCH_SIZES.start:,} to {BATCH_SIZES.stop - 1:,}, or cleanups refuse to start."
    )


def option_value_issues() -> list[CheckMessage]:
    """E002 for each ``DJANGO_CELERY_RESULTS`` value its property cannot use (``VIEWS_ACCESS``: E004)."""
    given = _given_options()
    issues: list[CheckMessage] = []
    for key in OPTION_KEYS:
        if key not in given or key == "VIEWS_ACCESS":
            continue
        try:
            value = getattr(STRICT, key.lower())
        except InvalidSetting as error:
            problem: str | None = str(error)
        else:
            problem = _batch_size_range_problem(value) if key == "CLEANUP_BATCH_SIZE" else None
        if problem is not None:
            issues.append(
                CheckError(
                    problem,
                    hint="Booleans must be True or False, sizes whole numbers (not strings). "
                    + see("configuration", "The DJANGO_CELERY_RESULTS dictionary"),
                    obj=key,
                    id=f"{APP_LABEL}.E002",
                )
            )
    return issues


def task_id_length_issues() -> list[CheckMessage]:
    """E003 when ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH`` cannot be a column length.

    The models fall back to the default to import; an error stops ``migrate`` from
    creating columns of a length the site did not ask for.
    """
    try:
        STRICT.task_id_max_length  # noqa: B018 -- reading it is the check
    except InvalidSetting as error:
        return [
            CheckError(
                str(error),
                hint="Set an int such as 191 or 255, and decide it before the first migrate. "
                + see("configuration", "Top-level settings"),
                obj="DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH",
                id=f"{APP_LABEL}.E003",
            )
        ]
    return []


def views_access_issues() -> list[CheckMessage]:
    """E004 when ``VIEWS_ACCESS`` names no rule: the JSON views would refuse every request."""
    if _given_options().get("VIEWS_ACCESS") is None:
        return []
    try:
        STRICT.views_access  # noqa: B018 -- reading it is the check
    except InvalidSetting as error:
        return [
            CheckError(
                f"{error} The JSON result views refuse every request meanwhile.",
                hint='Use "authenticated", "staff", "public", or the dotted path of a function '
                "rule(request, kind, id) -> bool. " + see("configuration", "Access to the JSON views"),
                obj="VIEWS_ACCESS",
                id=f"{APP_LABEL}.E004",
            )
        ]
    return []


def _is_subclass_of(path: str, bases: Sequence[str]) -> bool:
    """Whether the class ``path`` names is, or derives from, one of ``bases`` (by dotted path)."""
    if path in bases:
        return True
    try:
        found = import_string(path)
    except Exception:  # not importable: only its name can tell, and it did not
        return False
    return isinstance(found, type) and any(
        f"{cls.__module__}.{cls.__qualname__}" in bases for cls in found.__mro__
    )


def cache_backend_issues() -> list[CheckMessage]:
    """E005/W005 when ``CELERY_RESULT_BACKEND = "django-cache"`` uses a cache workers cannot share.

    Read from Django's settings under Celery's ``CELERY_`` namespace
    (``CELERY_RESULT_BACKEND``, ``CELERY_CACHE_BACKEND``): a check builds no Celery app.
    """
    backend = getattr(settings, "CELERY_RESULT_BACKEND", None)
    # Celery reads "name://..." as the backend "name", as it does for its own URLs.
    if not isinstance(backend, str) or backend.partition("://")[0] not in CACHE_BACKEND_NAMES:
        return []
    alias = getattr(settings, "CELERY_CACHE_BACKEND", None) or "default"
    hint = see("getting-started", "Configure Celery")
    caches: Mapping[str, Any] = settings.CACHES
    if not isinstance(alias, str) or alias not in caches:
        return [
            CheckError(
                f"CELERY_RESULT_BACKEND is {backend!r} with the cache {alias!r}, which CACHES does not "
                "define: storing or reading any result would fail.",
                hint=f"Add {alias!r} to CACHES, or set CELERY_CACHE_BACKEND to one of "
                f"{', '.join(map(repr, caches))}. {hint}",
                obj="CELERY_CACHE_BACKEND",
                id=f"{APP_LABEL}.E005",
            )
        ]
    cache_class = str(caches[alias].get("BACKEND", ""))
    if not _is_subclass_of(cache_class, PER_PROCESS_CACHES):
        return []
    return [
        CheckWarning(
            f"CELERY_RESULT_BACKEND is {backend!r} with the cache {alias!r} "
            f"({cache_class.rsplit('.', 1)[-1]}), which each process keeps to itself (DummyCache keeps "
            "nothing): results stored by a worker are never seen by the web server or another worker.",
            hint="Use a cache every process shares (Redis, Memcached, database or file based), or "
            f'CELERY_RESULT_BACKEND = "django-db". {hint}',
            obj="CELERY_CACHE_BACKEND",
            id=f"{APP_LABEL}.W005",
        )
    ]


def middleware_issues() -> list[CheckMessage]:
    """W007 when the views admit only users but no middleware sets ``request.user``: everyone is refused.

    A rule of the site's own (a dotted path) may authenticate otherwise, so it is not warned about.
    """
    try:
        rule = STRICT.views_access
    except InvalidSetting:  # E002 or E004 says so
        return []
    if rule not in ("authenticated", "staff"):
        return []
    if any(_is_subclass_of(str(path), (AUTHENTICATION_MIDDLEWARE,)) for path in settings.MIDDLEWARE or ()):
        return []
    return [
        CheckWarning(
            f"The JSON result views admit {rule} users only (VIEWS_ACCESS/PUBLIC_VIEWS), but MIDDLEWARE "
            "lacks AuthenticationMiddleware: every request is anonymous and refused (403).",
            hint=f"Add {AUTHENTICATION_MIDDLEWARE!r} to MIDDLEWARE (after SessionMiddleware), or set "
            'VIEWS_ACCESS to "public" or a rule of your own. '
            + see("configuration", "Access to the JSON views"),
            obj="MIDDLEWARE",
            id=f"{APP_LABEL}.W007",
        )
    ]


#: The settings checks, run in this order by :func:`check_settings`.
SETTINGS_CHECKS: tuple[Callable[[], list[CheckMessage]], ...] = (
    options_type_issues,
    unknown_option_issues,
    option_value_issues,
    task_id_length_issues,
    views_access_issues,
    cache_backend_issues,
    middleware_issues,
)


@register()
def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001-E005 and W005-W007: settings that would break the package, found without a database.

    Untagged, so every ``check``, ``runserver`` and ``migrate`` runs them.
    """
    if app_configs is not None and not any(c.label == APP_LABEL for c in app_configs):
        return []
    return [issue for check in SETTINGS_CHECKS for issue in check()]
