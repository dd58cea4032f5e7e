"""Everything that differs between PostgreSQL, MySQL/MariaDB and SQLite.

One function per operation, each saying why the engines differ. Nothing
outside this module looks at ``connection.vendor``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from celery import states
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, F, Func
from django.db.models.expressions import Expression, RawSQL

#: How a new state ranks against the stored one. A write applies only when the
#: stored state is not SUCCESS and does not rank above the new state, so:
#: a ready state is never replaced by a non-ready one; SUCCESS is final;
#: FAILURE may become SUCCESS (a redelivered task that then succeeded) but not
#: REVOKED (a revoke broadcast arriving after the task failed); REVOKED may
#: become FAILURE or SUCCESS (the task was already running and finished).
STATE_RANK = {states.SUCCESS: 3, states.FAILURE: 2, states.REVOKED: 1}

#: Columns the writer always replaces (they are the state itself).
STATE_COLUMNS = ("content_type", "content_encoding", "result", "traceback", "meta", "date_done")
#: Columns kept when the writer does not know them (``NULL``), e.g. a plain
#: ``update_state()`` must not blank the task name stored at STARTED.
KEEP_IF_NULL_COLUMNS = (
    "task_name", "task_args", "task_kwargs", "worker", "periodic_task_name", "date_started",
    "retries", "queue",
)


#: PostgreSQL channel on which ready results are announced (payload: the task id).
NOTIFY_CHANNEL = "django_celery_results"


def state_rank(status: str) -> int:
    """Rank of a state for :data:`STATE_RANK` (every non-ready state ranks 0)."""
    return STATE_RANK.get(status, 0)


def may_replace(stored: str, new: str) -> bool:
    """The precedence rule of :func:`upsert_task_sql`, in Python (for tests and docs)."""
    return stored != states.SUCCESS and state_rank(stored) <= state_rank(new)


def _rank_sql(column: str) -> str:
    cases = " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATE_RANK.items())
    return f"(CASE {column} {cases} ELSE 0 END)"


def upsert_task_sql(
    connection: BaseDatabaseWrapper, table: str, columns: Sequence[str], new_status: str,
) -> str:
    """One INSERT that creates the row or updates it under the precedence rule.

    A single statement means no read-before-write race and one round trip.
    PostgreSQL and SQLite share ``ON CONFLICT ... DO UPDATE ... WHERE``; MySQL
    and MariaDB have no conflict WHERE, so each assignment is guarded with
    ``IF()``, and ``status`` is assigned last because MySQL evaluates the
    assignments left to right against the already-updated row. The text
    depends only on its arguments, so it is built once per combination.
    """
    ready = new_status in states.READY_STATES
    return _upsert_task_sql(connection.vendor, table, tuple(columns), state_rank(new_status), ready)


def _quoter(vendor: str) -> Callable[[str], str]:
    """Identifier quoting of ``vendor``, as its Django backend quotes (backticks on MySQL)."""
    mark = "`" if vendor == "mysql" else '"'
    return lambda name: f"{mark}{name}{mark}"


@lru_cache(maxsize=256)
def _upsert_task_sql(vendor: str, table: str, columns: tuple[str, ...], rank: int, ready: bool) -> str:
    qn = _quoter(vendor)
    cols = ", ".join(qn(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    updatable = [c for c in columns if c in STATE_COLUMNS or c in KEEP_IF_NULL_COLUMNS]
    if vendor == "mysql":
        # FIELD() is the stored state's rank (0 when not listed); SUCCESS (3)
        # is final, so the stored rank must not exceed min(new rank, 2).
        listed = ", ".join(f"'{s}'" for s in sorted(STATE_RANK, key=STATE_RANK.__getitem__))
        guard = f"FIELD({qn('status')}, {listed}) <= {min(rank, STATE_RANK[states.FAILURE])}"

        def new(c: str) -> str:
            value = f"VALUES({qn(c)})"
            return f"COALESCE({value}, {qn(c)})" if c in KEEP_IF_NULL_COLUMNS else value

        sets = [f"{qn(c)} = IF({guard}, {new(c)}, {qn(c)})" for c in [*updatable, "status"]]
        return f"INSERT INTO {qn(table)} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE " + (
            ", ".join(sets)
        )
    # PostgreSQL and SQLite (>= 3.24).
    current = qn(table)

    def new_value(c: str) -> str:
        value = f"EXCLUDED.{qn(c)}"
        return f"COALESCE({value}, {current}.{qn(c)})" if c in KEEP_IF_NULL_COLUMNS else value

    sets = [f"{qn(c)} = {new_value(c)}" for c in [*updatable, "status"]]
    status_col = f"{current}.{qn('status')}"
    upsert = (
        f"INSERT INTO {current} ({cols}) VALUES ({marks}) "
        f"ON CONFLICT ({qn('task_id')}) DO UPDATE SET {', '.join(sets)} "
        f"WHERE {status_col} <> '{states.SUCCESS}' AND {_rank_sql(status_col)} <= {rank}"
    )
    if vendor == "postgresql" and ready:
        # Wake waiting get() calls (django_celery_results.notify) in the same round trip; the
        # notification is sent only if the write applied, and only on commit.
        return (
            f"WITH written AS ({upsert} RETURNING {qn('task_id')}) "
            f"SELECT pg_notify('{NOTIFY_CHANNEL}', {qn('task_id')}) FROM written"
        )
    return upsert


def upsert_sql(
    connection: BaseDatabaseWrapper, table: str, columns: Sequence[str], conflict_column: str,
    update_columns: Sequence[str],
) -> str:
    """One INSERT that replaces ``update_columns`` of the row with the same ``conflict_column``.

    MySQL's ``ON DUPLICATE KEY UPDATE`` names no conflict target (any unique
    key triggers it); the others need ``ON CONFLICT (column)``. With no
    ``update_columns`` an existing row is left exactly as it is (MySQL gets a
    no-op assignment rather than ``INSERT IGNORE``, which would also turn
    errors such as truncation into warnings).
    """
    qn = connection.ops.quote_name
    head = (
        f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    if connection.vendor == "mysql":
        sets = [f"{qn(c)} = VALUES({qn(c)})" for c in update_columns] or [
            f"{qn(conflict_column)} = {qn(conflict_column)}"
        ]
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    if not update_columns:
        return f"{head} ON CONFLICT ({qn(conflict_column)}) DO NOTHING"
    sets = [f"{qn(c)} = EXCLUDED.{qn(c)}" for c in update_columns]
    return f"{head} ON CONFLICT ({qn(conflict_column)}) DO UPDATE SET {', '.join(sets)}"


def select_tasks_sql(
    connection: BaseDatabaseWrapper, table: str, columns: Sequence[str], ids: int, ready_only: bool = False,
) -> str:
    """A SELECT of ``columns`` for ``ids`` task ids, of the ready ones only when ``ready_only``.

    Unqualified names and no ``LIMIT`` (``task_id`` is unique): the text is
    as short as it can be, since SQLite's cursor rewrites each query's
    placeholders with a regular expression on every call.
    """
    qn = connection.ops.quote_name
    where = f"{qn('task_id')} = %s" if ids == 1 else f"{qn('task_id')} IN ({', '.join(['%s'] * ids)})"
    if ready_only:
        ready = ", ".join(f"'{state}'" for state in sorted(states.READY_STATES))
        where += f" AND {qn('status')} IN ({ready})"
    return f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(table)} WHERE {where}"


def write_row(model: Any, alias: str, sql: str, values: Mapping[str, Any]) -> int:
    """Run one INSERT built here for ``values`` (in their order); return the affected row count.

    A plain cursor, not ``bulk_create``: that wraps each call in a transaction,
    two more round trips for a single row.
    """
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, prepared(connection, model, values))
        return int(cursor.rowcount)


#: The name under which the keys query of :func:`delete_keys_sql` returns the keys.
BATCH_KEY = "dcr_batch_key"


def batch_key(connection: BaseDatabaseWrapper, table: str) -> Expression | F:
    """What a cleanup batch selects to find its rows again: the row's physical address on PostgreSQL.

    A ``ctid`` list is deleted by a TID scan, without a second lookup per row
    through the primary key index; elsewhere the primary key does the job.
    """
    if connection.vendor == "postgresql":
        return RawSQL(f"{connection.ops.quote_name(table)}.ctid", ())
    return F("pk")


def batch_settings_sql(connection: BaseDatabaseWrapper) -> list[str]:
    """Statements run at the start of each cleanup batch's transaction (and undone at its end).

    With the statistics of a table that grew since its last ANALYZE,
    PostgreSQL sorts every expired row for each batch instead of reading
    the oldest through the ``date_done`` index; ``SET LOCAL`` keeps the
    index plan for this transaction only (safe behind a transaction pooler).
    """
    return ["SET LOCAL enable_sort = off"] if connection.vendor == "postgresql" else []


def delete_keys_sql(
    connection: BaseDatabaseWrapper, table: str, pk: str, date_column: str, keys_sql: str, recheck_sql: str,
) -> tuple[str, bool]:
    """One DELETE of the rows whose keys ``keys_sql`` selects (as :data:`BATCH_KEY`) that still match.

    The keys (:func:`batch_key`) are read through a derived table: MySQL
    refuses ``LIMIT`` in an ``IN`` subquery, and a subquery on the table
    being deleted from. The re-check is the selection's own condition,
    applied to those rows only: a row written again meanwhile is no longer
    expired and stays. On PostgreSQL the statement also returns the newest
    date it deleted (``True`` as the second value), so the next batch can
    start its index scan there, past the dead entries this batch leaves
    until vacuum.
    """
    qn = connection.ops.quote_name
    keys = f"SELECT batch.{qn(BATCH_KEY)} FROM ({keys_sql}) AS batch"
    recheck = f"({recheck_sql or '1 = 1'})"
    if connection.vendor != "postgresql":
        # Qualified: an unknown column must be an error, never the outer row's own key.
        return f"DELETE FROM {qn(table)} WHERE {qn(pk)} IN ({keys}) AND {recheck}", False
    delete = f"DELETE FROM {qn(table)} WHERE ctid = ANY(ARRAY({keys})) AND {recheck}"
    return (
        f"WITH gone AS ({delete} RETURNING {qn(date_column)}) "
        f"SELECT COUNT(*), MAX({qn(date_column)}) FROM gone"
    ), True


def upsert_row(
    model: Any, alias: str, values: Mapping[str, Any], conflict_column: str,
    update_columns: Sequence[str],
) -> None:
    """Insert ``values`` or update ``update_columns`` of the existing row, in one statement."""
    sql = upsert_sql(connections[alias], model._meta.db_table, list(values), conflict_column, update_columns)
    write_row(model, alias, sql, values)


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


def can_write_beside_a_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Whether a second connection may write while ``connection`` holds an open transaction.

    Row-locking engines can. SQLite has one writer at a time: a second
    connection would wait for the surrounding transaction and time out. There
    the surrounding transaction also holds back every worker's write until it
    commits, so what it writes is visible before any worker can need it.
    """
    return connection.vendor != "sqlite"


def isolation_level(connection: BaseDatabaseWrapper) -> str | None:
    """The session's transaction isolation level, for MySQL/MariaDB; ``None`` elsewhere.

    The variable is ``transaction_isolation`` on MySQL >= 5.7.20 and MariaDB >= 11.1,
    and ``tx_isolation`` on older MariaDB (which has no ``transaction_isolation``).
    """
    if connection.vendor != "mysql":
        return None
    is_mariadb = getattr(connection, "mysql_is_mariadb", False)
    version = getattr(connection, "mysql_version", (0, 0, 0))
    old_mariadb = is_mariadb and tuple(version) < (11, 1)
    variable = "tx_isolation" if old_mariadb else "transaction_isolation"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT @@SESSION.{variable}")
        row = cursor.fetchone()
    return str(row[0]).upper().replace("_", "-") if row else None


# -- Transient errors -------------------------------------------------------

#: SQLSTATEs of a session the PostgreSQL server ended: terminated or shut down
#: by an administrator, crash shutdown, idle session timeout (PostgreSQL >= 14).
_PG_SESSION_ENDED_SQLSTATES = frozenset({"57P01", "57P02", "57P05"})
#: SQLSTATEs worth retrying on PostgreSQL: serialization failure, deadlock, an
#: ended session, cannot connect now; class 08 is "connection exception".
_PG_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P03", *_PG_SESSION_ENDED_SQLSTATES})
#: MySQL/MariaDB client and server error codes worth retrying: server gone away,
#: lost connection, cannot connect, deadlock, lock wait timeout, server
#: shutdown, connection killed, disconnected by the server.
_MYSQL_TRANSIENT_CODES = frozenset({2002, 2003, 2006, 2013, 2055, 1205, 1213, 1053, 1927, 4031})
#: Of those, the ones saying the session is gone: server gone away, lost
#: connection, lost during a read, connection killed, idle session closed.
_MYSQL_LOST_CONNECTION_CODES = frozenset({2006, 2013, 2055, 1927, 4031})


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes (``__cause__``, else ``__context__``), innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_transient_one(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    name = type(exc).__name__
    if module.startswith(("psycopg", "psycopg2")):
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code:
            return code in _PG_TRANSIENT_SQLSTATES or code.startswith("08")
        # No SQLSTATE: the client lost the connection ("server closed the
        # connection unexpectedly", "connection already closed").
        return name in ("OperationalError", "InterfaceError")
    if module.startswith("MySQLdb"):
        if name == "InterfaceError":
            return True
        code = next(iter(getattr(exc, "args", ())), None)
        return isinstance(code, int) and code in _MYSQL_TRANSIENT_CODES
    if module == "sqlite3":
        message = str(exc).lower()
        return name == "OperationalError" and ("locked" in message or "busy" in message)
    return False


def _is_lost_connection_one(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    name = type(exc).__name__
    if module.startswith(("psycopg", "psycopg2")):
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code:
            # Connection exceptions, and the session ended by the server (terminated, shut down).
            return code.startswith("08") or code in _PG_SESSION_ENDED_SQLSTATES
        return name in ("OperationalError", "InterfaceError")
    if module.startswith("MySQLdb"):
        if name == "InterfaceError":
            return True
        code = next(iter(getattr(exc, "args", ())), None)
        return isinstance(code, int) and code in _MYSQL_LOST_CONNECTION_CODES
    return False


def is_lost_connection(exc: BaseException) -> bool:
    """True when ``exc`` says the session is gone (killed, timed out, server restarted).

    The backend's writes are idempotent (upserts, deletes by key, chord parts
    counted once), so running one again on a new connection is safe whether or
    not the lost session applied it. SQLite has no session to lose.
    """
    return any(_is_lost_connection_one(e) for e in error_chain(exc))


def is_transient_error(exc: BaseException) -> bool:
    """True when ``exc`` is a database error that a new attempt may not meet again.

    Looks through Django's wrappers at the driver's exception. Data errors,
    integrity errors and programming errors are never transient.
    """
    return any(_is_transient_one(e) for e in error_chain(exc))


def prepared(connection: BaseDatabaseWrapper, model: Any, values: Mapping[str, Any]) -> list[Any]:
    """Column values as the driver wants them.

    Only the fields whose database form differs from the Python value
    (datetimes, for instance) go through Django's preparation: it is the
    costliest step of a write in Python.
    """
    needs_prep = _fields_needing_prep(model)
    return [
        needs_prep[name].get_db_prep_save(value, connection) if name in needs_prep else value
        for name, value in values.items()
    ]


@cache
def _fields_needing_prep(model: Any) -> dict[str, Any]:
    plain = ("CharField", "TextField", "IntegerField", "PositiveIntegerField", "BigAutoField", "AutoField")
    return {
        field.name: field for field in model._meta.concrete_fields
        if field.get_internal_type() not in plain
    }


# -- Configuration traps (used by the system checks) -------------------------


def is_hot_standby(connection: BaseDatabaseWrapper) -> bool:
    """True when the alias reaches a PostgreSQL standby (in recovery): it lags, and refuses writes.

    Other engines have no such state to ask; a MySQL replica is recognised by nothing reliable.
    """
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return bool(cursor.fetchone()[0])


def snapshot_isolation_level(connection: BaseDatabaseWrapper) -> str | None:
    """The isolation level, when a transaction on ``connection`` reads from one snapshot.

    At MySQL's REPEATABLE READ, and at PostgreSQL's REPEATABLE READ and
    SERIALIZABLE, every read inside one transaction sees the database as it
    was at the first read: a poller waiting in a transaction never sees the
    task finish. Returns ``"REPEATABLE READ"``/``"SERIALIZABLE"``, or ``None``
    when each statement sees the latest commits (READ COMMITTED, MySQL's
    locking SERIALIZABLE, SQLite, whose readers block writers instead).
    """
    if connection.vendor == "mysql":
        level = isolation_level(connection)
        return "REPEATABLE READ" if level == "REPEATABLE-READ" else None
    if connection.vendor == "postgresql":
        configured = connection.settings_dict.get("OPTIONS", {}).get("isolation_level")
        if configured is not None:
            # Django hands OPTIONS["isolation_level"] to the driver at connect time.
            from django.db.backends.postgresql.psycopg_any import IsolationLevel

            name = IsolationLevel(configured).name.replace("_", " ")
        else:
            # Without the option, transactions get the server's (or role's) default.
            with connection.cursor() as cursor:
                cursor.execute("SHOW default_transaction_isolation")
                name = str(cursor.fetchone()[0])
        name = name.upper()
        return name if name in ("REPEATABLE READ", "SERIALIZABLE") else None
    return None


def read_committed_hint(connection: BaseDatabaseWrapper) -> str:
    """How to make ``connection`` read at READ COMMITTED, in the words of its engine."""
    alias = connection.alias
    if connection.vendor == "postgresql":
        return (
            f"Remove DATABASES[{alias!r}]['OPTIONS']['isolation_level'] or set it to "
            "psycopg.IsolationLevel.READ_COMMITTED; if the server default is the cause, "
            "ALTER ROLE/DATABASE ... SET default_transaction_isolation = 'read committed'."
        )
    return (
        f"Set DATABASES[{alias!r}]['OPTIONS']['isolation_level'] = \"read committed\" "
        "(Django's default for MySQL and MariaDB)."
    )


def statement_size_limit(connection: BaseDatabaseWrapper) -> int | None:
    """The largest statement the server accepts, in bytes: MySQL/MariaDB's ``max_allowed_packet``.

    A larger one makes the server drop the connection (error 2006 or 2013,
    which look transient) before error 1153 names the limit. ``None`` on the
    other engines, whose limits (1 GB per value) are far above any result.
    Read once per connection object.
    """
    if connection.vendor != "mysql":
        return None
    cached: int | None = connection.__dict__.get("_dcr_max_allowed_packet")
    if cached is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            cached = connection.__dict__["_dcr_max_allowed_packet"] = int(cursor.fetchone()[0])
    return cached


def strict_sql_mode(connection: BaseDatabaseWrapper) -> bool | None:
    """Whether the MySQL/MariaDB session rejects over-long values; ``None`` elsewhere.

    Without STRICT_TRANS_TABLES or STRICT_ALL_TABLES the server truncates an
    over-long string to the column's length with a mere warning. PostgreSQL
    always rejects it; SQLite stores it whole.
    """
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode")
        row = cursor.fetchone()
    modes = {mode.strip().upper() for mode in str(row[0] if row else "").split(",")}
    return bool(modes & {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"})


@dataclass(frozen=True)
class KeyLimits:
    """How long an index key may be in one MySQL/MariaDB table, and what a character costs."""

    max_key_bytes: int
    bytes_per_char: int
    row_format: str
    storage_engine: str


def max_key_bytes(
    storage_engine: str, row_format: str, page_size: int = 16384, large_prefix: bool | None = None,
) -> int | None:
    """The longest index key a MySQL/MariaDB table accepts, in bytes; ``None`` if unknown.

    InnoDB allows 767 bytes per indexed column in the COMPACT and REDUNDANT
    row formats, and in DYNAMIC/COMPRESSED when ``innodb_large_prefix`` is
    off (old servers); otherwise 3072 bytes, less on small pages. MyISAM
    allows 1000 bytes per key.
    """
    engine = storage_engine.upper()
    if engine == "MYISAM":
        return 1000
    if engine != "INNODB":
        return None
    if row_format.upper() in ("COMPACT", "REDUNDANT") or large_prefix is False:
        return 767
    return {4096: 768, 8192: 1536}.get(page_size, 3072)


def key_limits(
    connection: BaseDatabaseWrapper, table: str, row_format: str | None = None,
) -> KeyLimits | None:
    """The index key limits of ``table`` on a MySQL/MariaDB server; ``None`` elsewhere.

    An existing table keeps the row format, storage engine and character set
    it was created with; a table still to be created gets the server's
    defaults (``innodb_default_row_format``, ``default_storage_engine``, the
    database's character set: Django's CREATE TABLE names none of them).
    ``row_format`` overrides what the server says, to ask "what if".
    PostgreSQL's and SQLite's key limits are far above our columns' lengths.
    """
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SHOW VARIABLES WHERE Variable_name IN ('innodb_default_row_format', "
            "'innodb_file_format', 'innodb_large_prefix', 'innodb_page_size', "
            "'default_storage_engine')"
        )
        variables = {str(name).lower(): str(value) for name, value in cursor.fetchall()}
        cursor.execute(
            "SELECT ENGINE, ROW_FORMAT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        existing = cursor.fetchone()
        if existing:
            # The bytes a character of the table's text columns may take.
            cursor.execute(
                "SELECT MAX(CHARACTER_OCTET_LENGTH DIV CHARACTER_MAXIMUM_LENGTH) "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = %s AND DATA_TYPE IN ('char', 'varchar') "
                "AND CHARACTER_MAXIMUM_LENGTH > 0",
                [table],
            )
            per_char = cursor.fetchone()
        else:
            per_char = None
        if not per_char or not per_char[0]:
            cursor.execute(
                "SELECT MAXLEN FROM information_schema.CHARACTER_SETS "
                "WHERE CHARACTER_SET_NAME = @@character_set_database"
            )
            per_char = cursor.fetchone()
    if existing:
        engine, stored_format = str(existing[0] or "InnoDB"), str(existing[1] or "")
    else:
        engine = variables.get("default_storage_engine", "InnoDB")
        if "innodb_default_row_format" in variables:
            stored_format = variables["innodb_default_row_format"]
        elif variables.get("innodb_file_format", "").lower() == "barracuda":
            stored_format = "DYNAMIC"
        else:
            # Servers before MySQL 5.7.9 / MariaDB 10.2.2 created COMPACT tables.
            stored_format = "COMPACT"
    effective_format = (row_format or stored_format).upper()
    large_prefix = variables.get("innodb_large_prefix")
    limit = max_key_bytes(
        engine,
        effective_format,
        int(variables.get("innodb_page_size", "16384")),
        None if large_prefix is None else large_prefix.upper() in ("ON", "1"),
    )
    if limit is None:
        return None
    return KeyLimits(limit, int(per_char[0]) if per_char and per_char[0] else 4, effective_format, engine)


# -- Exact ids on MySQL/MariaDB (migration 0018) -------------------------------


@dataclass(frozen=True)
class TextColumn:
    """What information_schema says of one MySQL/MariaDB text column, enough to restate it."""

    column_type: str  # as declared, e.g. ``varchar(255)`` (the length follows the id setting)
    nullable: bool
    charset: str
    collation: str
    comment: str
    table_collation: str  # the table's default collation
    collations: tuple[str, ...]  # the collations the server has for ``charset``
    charset_default: str  # the one of them a column of ``charset`` gets when none is named


def exact_collation(charset: str, available: Sequence[str]) -> tuple[str, bool] | None:
    """``(collation, pads)``: the binary collation of ``charset`` to compare ids with; ``None`` if none.

    Preferred are the binary collations that do not pad (trailing spaces
    count): MariaDB's ``<charset>_nopad_bin``, MySQL 8's ``utf8mb4_0900_bin``.
    Else ``<charset>_bin``, which pads (``pads`` is then True): case and
    accents count, but ``"abc "`` still equals ``"abc"``, as on MySQL 5.7.
    """
    names = set(available)
    # Other names than the charset's own only where the server lists utf8 under its alias.
    no_pad = [
        f"{charset}_nopad_bin", *sorted(n for n in names if n.endswith("_nopad_bin")), f"{charset}_0900_bin",
    ]
    padded = [f"{charset}_bin", *sorted(n for n in names if n.endswith("_bin"))]
    for pads, candidates in ((False, no_pad), (True, padded)):
        for name in candidates:
            if name in names:
                return name, pads
    return None


def text_column(connection: BaseDatabaseWrapper, table: str, column: str) -> TextColumn:
    """The definition of ``table.column`` in the connection's database (MySQL/MariaDB only)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.COLUMN_TYPE, c.IS_NULLABLE, c.CHARACTER_SET_NAME, c.COLLATION_NAME, "
            "c.COLUMN_COMMENT, t.TABLE_COLLATION FROM information_schema.COLUMNS c "
            "JOIN information_schema.TABLES t "
            "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
            "WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = %s AND c.COLUMN_NAME = %s",
            [table, column],
        )
        row = cursor.fetchone()
        if row is None or row[2] is None:
            raise LookupError(f"{table}.{column} is not a text column of this database")
        charset = str(row[2])
        # MariaDB >= 10.6 and MySQL 8 call utf8 "utf8mb3"; either name may be listed.
        aliases = ["utf8", "utf8mb3"] if charset in ("utf8", "utf8mb3") else [charset]
        cursor.execute(
            "SELECT COLLATION_NAME, IS_DEFAULT FROM information_schema.COLLATIONS "
            f"WHERE CHARACTER_SET_NAME IN ({', '.join(['%s'] * len(aliases))}) ORDER BY ID",
            aliases,
        )
        collations = [(str(name), str(default).upper() == "YES") for name, default in cursor.fetchall()]
    column_type, nullable, _, collation, comment, table_collation = row
    return TextColumn(
        str(column_type), nullable == "YES", charset, str(collation), str(comment or ""),
        str(table_collation), tuple(name for name, _ in collations),
        next((name for name, default in collations if default), str(collation)),
    )


def _modify_column_sql(
    connection: BaseDatabaseWrapper, table: str, column: str, definition: TextColumn, collation: str,
) -> str:
    """``ALTER TABLE ... MODIFY`` restating ``definition`` with ``collation``."""
    qn = connection.ops.quote_name
    comment = ""
    if definition.comment:
        escaped = definition.comment.replace("\\", "\\\\").replace("'", "''")
        comment = f" COMMENT '{escaped}'"
    return (
        f"ALTER TABLE {qn(table)} MODIFY {qn(column)} {definition.column_type} "
        f"CHARACTER SET {definition.charset} COLLATE {collation} "
        f"{'NULL' if definition.nullable else 'NOT NULL'}{comment}"
    )


def exact_id_column_sql(connection: BaseDatabaseWrapper, table: str, column: str) -> list[str]:
    """Default MySQL collations equate ids differing in case, accents or trailing spaces: use a binary one."""
    if connection.vendor != "mysql":
        return []
    definition = text_column(connection, table, column)
    chosen = exact_collation(definition.charset, definition.collations)
    if chosen is None:
        raise LookupError(f"the server has no binary collation for {definition.charset}")
    if definition.collation == chosen[0]:
        return []
    return [_modify_column_sql(connection, table, column, definition, chosen[0])]


def default_id_column_sql(connection: BaseDatabaseWrapper, table: str, column: str) -> list[str]:
    """Undoes :func:`exact_id_column_sql`: the column goes back to the table's default collation."""
    if connection.vendor != "mysql":
        return []
    definition = text_column(connection, table, column)
    # A column of another charset than the table's gets that charset's default collation.
    fits = definition.table_collation in definition.collations
    collation = definition.table_collation if fits else definition.charset_default
    if definition.collation == collation:
        return []
    return [_modify_column_sql(connection, table, column, definition, collation)]


# -- Chord parts (one row per counted part) -------------------------------------


@dataclass(frozen=True)
class PartCount:
    """What counting one chord part did: decremented (and whether to zero), or not, and why if known."""

    counted: bool  # the part was new and the counter went down by one
    last: bool  # ... and it reached zero: this caller sends the callback
    counter_exists: bool | None  # when not counted: whether the counter exists (None: not asked)


def _count_part_postgresql(table: str, parts: str) -> str:
    """One statement: insert the part unless known, and only then decrement; report what happened.

    The insert needs a counter still waiting (no orphan rows for chords
    without one); the unique key arbitrates duplicates racing each other
    (the second waits for the first to commit, then does nothing). The
    counter's row lock is taken last and held only until the statement ends.
    A new part racing the one that completes the chord keeps its row without
    a decrement (told "not counted"): harmless, it goes with the counter.
    """
    qn = _quoter("postgresql")
    counter, group, task, count = qn(table), qn("group_id"), qn("task_id"), qn("count")
    return (
        f"WITH part AS (INSERT INTO {qn(parts)} ({group}, {task}) SELECT %s, %s "
        f"WHERE EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s AND {count} > 0) "
        f"ON CONFLICT ({group}, {task}) DO NOTHING RETURNING 1), "
        f"counted AS (UPDATE {counter} SET {count} = {count} - 1 "
        f"WHERE {group} = %s AND {count} > 0 AND EXISTS (SELECT 1 FROM part) RETURNING {count}) "
        f"SELECT (SELECT {count} FROM counted), EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s)"
    )


def count_chord_part(
    connection: BaseDatabaseWrapper, table: str, parts: str, group_id: str, task_id: str,
) -> PartCount:
    """Record ``task_id`` as a counted part of ``group_id`` and decrement its counter, atomically, once.

    PostgreSQL: one statement (:func:`_count_part_postgresql`). SQLite and
    MySQL/MariaDB have no data-modifying CTE (and MariaDB no ``UPDATE ...
    RETURNING``): a short transaction inserts the part ignoring a duplicate,
    then decrements (``count > 1``, else a second UPDATE for ``count = 1``),
    the counter's lock last, just before the commit; when nothing was
    decremented (no counter, or already at zero) it rolls back, so a part
    row always means a decrement. Columns: ``group_id``, ``task_id``, ``count``.
    """
    from django.db import transaction

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            params = [group_id, task_id, group_id, group_id, group_id]
            cursor.execute(_count_part_postgresql(table, parts), params)
            left, exists = cursor.fetchone()
        if left is None:
            return PartCount(False, False, bool(exists))
        return PartCount(True, int(left) == 0, True)
    qn = _quoter(connection.vendor)
    counter, group, task, count = qn(table), qn("group_id"), qn("task_id"), qn("count")
    if connection.vendor == "mysql":
        # IGNORE only skips the duplicate here: callers pass ids already checked against the columns.
        insert = f"INSERT IGNORE INTO {qn(parts)} ({group}, {task}) VALUES (%s, %s)"
    else:
        insert = (
            f"INSERT INTO {qn(parts)} ({group}, {task}) VALUES (%s, %s) "
            f"ON CONFLICT ({group}, {task}) DO NOTHING"
        )
    decrement = f"UPDATE {counter} SET {count} = {count} - 1 WHERE {group} = %s AND {count} > 1"
    finish = f"UPDATE {counter} SET {count} = 0 WHERE {group} = %s AND {count} = 1"
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(insert, [group_id, task_id])
        if cursor.rowcount != 1:
            # Counted before: a part row is only ever committed with its decrement.
            return PartCount(False, False, True)
        cursor.execute(decrement, [group_id])
        if cursor.rowcount == 1:
            return PartCount(True, False, True)
        cursor.execute(finish, [group_id])
        if cursor.rowcount == 1:
            return PartCount(True, True, True)
        transaction.set_rollback(True, using=connection.alias)
    return PartCount(False, False, None)


def relation_size(connection: BaseDatabaseWrapper, table: str) -> int | None:
    """Bytes ``table`` takes on disk with its indexes; ``None`` where the engine cannot tell.

    For the benchmarks' size figures: PostgreSQL's ``pg_total_relation_size``,
    MySQL/MariaDB's ``data_length + index_length`` (after ``ANALYZE TABLE``),
    SQLite's ``dbstat`` virtual table when compiled in.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            return int(cursor.fetchone()[0])
        if connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {_quoter('mysql')(table)}")
            cursor.fetchall()
            cursor.execute(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [table],
            )
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else None
        try:
            # The table and its indexes: dbstat names each index's own b-tree.
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = %s "
                "OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s)",
                [table, table],
            )
        except Exception:  # dbstat is an optional compile-time feature of SQLite
            return None
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else None
