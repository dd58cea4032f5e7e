"""What the server is and allows: asked of a connection, for the system checks and the writers."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper


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
    storage_engine: str,
    row_format: str,
    page_size: int = 16384,
    large_prefix: bool | None = None,
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
    connection: BaseDatabaseWrapper,
    table: str,
    row_format: str | None = None,
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
            cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(table)}")
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
