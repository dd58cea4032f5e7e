"""Cleanup batches: their transaction's settings, where their index scan starts, their two DELETEs."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper


def batch_settings_sql(connection: BaseDatabaseWrapper) -> list[str]:
    """Statements run at the start of each cleanup batch's transaction (and undone at its end).

    PostgreSQL only, both for the batch's transaction alone (``set_config(...,
    true)`` is ``SET LOCAL``: safe behind a transaction pooler). ``enable_sort``
    off: with the statistics of a table that grew since its last ANALYZE it
    would sort every expired row for each batch instead of reading the oldest
    through the ``date_done`` index. ``synchronous_commit`` off: the commit
    does not wait for its WAL flush (milliseconds per batch on a slow disk);
    a crash can only bring back expired rows, which the next cleanup deletes
    (docs/cleanup.rst).
    """
    if connection.vendor != "postgresql":
        return []
    return ["SELECT set_config('enable_sort', 'off', true), set_config('synchronous_commit', 'off', true)"]


def index_keeps_deleted_rows(connection: BaseDatabaseWrapper) -> bool:
    """Whether an index still holds the entries of deleted rows for a while: PostgreSQL and InnoDB.

    They stay until vacuum (PostgreSQL) or purge (InnoDB), so there each
    cleanup batch starts its index scan at the date where the last one
    ended, past them. SQLite removes them with the row, and its dates are
    text that a date read back may not spell alike (``.5`` is read back as
    ``.500000``), so a lower bound could leave a row out.
    """
    return connection.vendor != "sqlite"


def delete_keys_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    pk: str,
    keys_sql: str,
    recheck_sql: str,
) -> str:
    """One DELETE of the rows whose primary keys ``keys_sql`` selects that still match ``recheck_sql``.

    The keys are read through a derived table on every engine: MySQL refuses
    ``LIMIT`` in an ``IN`` subquery, and a subquery on the table being
    deleted from. The re-check is the selection's own condition, applied to
    those rows only: a row written again meanwhile is no longer expired and
    stays. The derived table's column is qualified: an unknown column must be
    an error, never the outer row's own key.
    """
    qn = connection.ops.quote_name
    keys = f"SELECT batch.{qn(pk)} FROM ({keys_sql}) AS batch"
    return f"DELETE FROM {qn(table)} WHERE {qn(pk)} IN ({keys}) AND ({recheck_sql or '1 = 1'})"


def delete_range_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    column: str,
    bounded: list[bool],
    recheck_sql: str,
) -> str:
    """One DELETE of the rows dated from a lower bound up to an upper one (excluded), re-checked.

    ``bounded`` says which of the two bounds are given (a ``%s`` each, in
    that order); ``recheck_sql`` is the selection's condition. The dates come
    first in the WHERE clause and the re-check after them: SQLite bounds its
    index scan by the first upper bound it meets, and the selection's own
    cutoff would make every batch scan all the expired rows left.
    """
    qn = connection.ops.quote_name
    dates = [f"{qn(column)} {op} %s" for op, given in zip((">=", "<"), bounded, strict=True) if given]
    conditions = [*dates, *([f"({recheck_sql})"] if recheck_sql else [])]
    return f"DELETE FROM {qn(table)} WHERE {' AND '.join(conditions) or '1 = 1'}"
