"""Exact ids on MySQL/MariaDB (migration 0018): the binary collation of the id columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper


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
        f"{charset}_nopad_bin",
        *sorted(n for n in names if n.endswith("_nopad_bin")),
        f"{charset}_0900_bin",
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
        str(column_type),
        nullable == "YES",
        charset,
        str(collation),
        str(comment or ""),
        str(table_collation),
        tuple(name for name, _ in collations),
        next((name for name, default in collations if default), str(collation)),
    )


def _modify_column_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    column: str,
    definition: TextColumn,
    collation: str,
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
