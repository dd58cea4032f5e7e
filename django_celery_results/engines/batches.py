"""Cleanup batches: what each selects its rows by, and the DELETE that re-checks them."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.db.models.expressions import Expression, RawSQL

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
    connection: BaseDatabaseWrapper,
    table: str,
    pk: str,
    date_column: str,
    keys_sql: str,
    recheck_sql: str,
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
