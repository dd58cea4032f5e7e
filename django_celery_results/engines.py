"""Everything that differs between PostgreSQL, MySQL/MariaDB and SQLite.

One function per operation, each saying why the engines differ. Nothing
outside this module looks at ``connection.vendor``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from celery import states
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

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
)


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
    assignments left to right against the already-updated row.
    """
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    rank = state_rank(new_status)
    updatable = [c for c in columns if c in STATE_COLUMNS or c in KEEP_IF_NULL_COLUMNS]
    if connection.vendor == "mysql":
        guard = f"({qn('status')} <> '{states.SUCCESS}' AND {_rank_sql(qn('status'))} <= {rank})"

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
    return (
        f"INSERT INTO {current} ({cols}) VALUES ({marks}) "
        f"ON CONFLICT ({qn('task_id')}) DO UPDATE SET {', '.join(sets)} "
        f"WHERE {status_col} <> '{states.SUCCESS}' AND {_rank_sql(status_col)} <= {rank}"
    )


def upsert_row(model: Any, alias: str, row: Any, unique_field: str, update_fields: Sequence[str]) -> None:
    """Insert ``row`` or update the existing row with the same ``unique_field``, in one statement.

    MySQL's ``ON DUPLICATE KEY UPDATE`` cannot name the conflicting column (any
    unique key triggers it), so the target is given only where the engine takes one.
    """
    connection = connections[alias]
    target = [unique_field] if connection.features.supports_update_conflicts_with_target else None
    model._base_manager.using(alias).bulk_create(
        [row], update_conflicts=True, unique_fields=target, update_fields=list(update_fields),
    )


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

#: SQLSTATEs worth retrying on PostgreSQL: serialization failure, deadlock,
#: admin/crash shutdown, cannot connect now; class 08 is "connection exception".
_PG_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})
#: MySQL/MariaDB client and server error codes worth retrying: server gone away,
#: lost connection, cannot connect, deadlock, lock wait timeout, server
#: shutdown, connection killed, disconnected by the server.
_MYSQL_TRANSIENT_CODES = frozenset({2002, 2003, 2006, 2013, 2055, 1205, 1213, 1053, 1927, 4031})


def _causes(exc: BaseException) -> Iterator[BaseException]:
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
        args = getattr(exc, "args", ())
        return bool(args) and isinstance(args[0], int) and args[0] in _MYSQL_TRANSIENT_CODES
    if module == "sqlite3":
        message = str(exc).lower()
        return name == "OperationalError" and ("locked" in message or "busy" in message)
    return False


def is_transient_error(exc: BaseException) -> bool:
    """True when ``exc`` is a database error that a new attempt may not meet again.

    Looks through Django's wrappers at the driver's exception. Data errors,
    integrity errors and programming errors are never transient.
    """
    return any(_is_transient_one(e) for e in _causes(exc))


def prepared(connection: BaseDatabaseWrapper, model: Any, values: Mapping[str, Any]) -> list[Any]:
    """Column values as the driver wants them (datetimes, for instance)."""
    return [
        model._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in values.items()
    ]
