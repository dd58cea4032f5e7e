"""Everything that differs between PostgreSQL, MySQL/MariaDB and SQLite, one module per job.

Each function says why the engines differ; nothing outside this package looks
at ``connection.vendor``. The names below are the package's interface
(``engines.upsert_task_sql``); :doc:`/engines` explains the differences.
"""

from __future__ import annotations

from .batches import (
    batch_settings_sql,
    delete_keys_sql,
    delete_range_sql,
    index_keeps_deleted_rows,
)
from .chords import (
    PartCount,
    count_chord_part,
    prepares_chord_parts,
)
from .errors import (
    error_chain,
    is_lost_connection,
    is_transient_error,
)
from .lookups import (
    filter_exactly,
    indexed_prefix_lookup,
)
from .probes import (
    KeyLimits,
    can_write_beside_a_transaction,
    is_hot_standby,
    isolation_level,
    key_limits,
    max_key_bytes,
    read_committed_hint,
    relation_size,
    snapshot_isolation_level,
    statement_size_limit,
    strict_sql_mode,
)
from .schema import (
    TextColumn,
    default_id_column_sql,
    exact_collation,
    exact_id_column_sql,
    text_column,
)
from .sql import (
    KEEP_IF_NULL_COLUMNS,
    NOTIFY_CHANNEL,
    STATE_COLUMNS,
    STATE_RANK,
    may_replace,
    prepared,
    quoter,
    select_tasks_sql,
    state_rank,
    upsert_row,
    upsert_sql,
    upsert_task_sql,
    write_row,
)

__all__ = [
    "KEEP_IF_NULL_COLUMNS",
    "NOTIFY_CHANNEL",
    "STATE_COLUMNS",
    "STATE_RANK",
    "KeyLimits",
    "PartCount",
    "TextColumn",
    "batch_settings_sql",
    "can_write_beside_a_transaction",
    "count_chord_part",
    "default_id_column_sql",
    "delete_keys_sql",
    "delete_range_sql",
    "error_chain",
    "exact_collation",
    "exact_id_column_sql",
    "filter_exactly",
    "index_keeps_deleted_rows",
    "indexed_prefix_lookup",
    "is_hot_standby",
    "is_lost_connection",
    "is_transient_error",
    "isolation_level",
    "key_limits",
    "max_key_bytes",
    "may_replace",
    "prepared",
    "prepares_chord_parts",
    "quoter",
    "read_committed_hint",
    "relation_size",
    "select_tasks_sql",
    "snapshot_isolation_level",
    "state_rank",
    "statement_size_limit",
    "strict_sql_mode",
    "text_column",
    "upsert_row",
    "upsert_sql",
    "upsert_task_sql",
    "write_row",
]
