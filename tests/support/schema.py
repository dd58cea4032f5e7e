"""The schema catalogue: the app's tables as each engine's catalog describes them, and their differences.

Read from ``tests/compat/`` (the installed base) or from a live alias, for the tests that migrate schemas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from tests.settings import ENGINE
from tests.support import ROOT

APP = "django_celery_results"
#: The installed base's schema per engine, captured after upstream's migrations.
COMPAT_DIR = ROOT / "tests" / "compat"
TASK_TABLE = "django_celery_results_taskresult"
GROUP_TABLE = "django_celery_results_groupresult"
CHORD_TABLE = "django_celery_results_chordcounter"

#: Definitions of the installed schema our migrations after upstream's last one
#: deliberately change, as (table, section, name), e.g. (TASK_TABLE, "columns",
#: "id"). Empty: COMPAT.md has existing columns, constraints and indexes kept as
#: they are; an entry needs the contract amended first. The primary keys move to
#: 64 bits in 0017 (issue 6: 32-bit sequences run out on busy sites; the
#: upgrade notes give the cost), so the three ``id`` columns differ by type.
#: On MySQL/MariaDB, 0018 gives the id columns a binary collation, so that ids
#: differing only in case, accents or trailing spaces are different tasks and
#: groups (their default collations equate them); SHOW CREATE TABLE then names
#: the collation. PostgreSQL and SQLite compare exactly already: 0018 changes
#: nothing there.
ID_COLUMNS = ((TASK_TABLE, "task_id"), (GROUP_TABLE, "group_id"), (CHORD_TABLE, "group_id"))
CHANGED_AFTER_UPSTREAM: frozenset[tuple[str, str, str]] = frozenset(
    (table, "columns", "id")
    for table in (
        "django_celery_results_taskresult",
        "django_celery_results_groupresult",
        "django_celery_results_chordcounter",
    )
) | frozenset((table, "columns", column) for table, column in ID_COLUMNS if ENGINE == "mysql")


@dataclass
class Catalog:
    """One engine's description of the three tables, normalized for comparison.

    ``tables`` maps table -> section -> name -> definition, as text in the
    engine's own catalog vocabulary; ``column_order`` is kept apart so that a
    difference of order is reported on its own.
    """

    tables: dict[str, dict[str, dict[str, str]]]
    column_order: dict[str, list[str]]

    def table(self, name: str) -> dict[str, dict[str, str]]:
        if name not in self.tables:
            self.tables[name] = {}
            self.column_order[name] = []
        return self.tables[name]

    def add(self, table: str, section: str, name: str, definition: str) -> None:
        self.table(table).setdefault(section, {})[name] = " ".join(definition.split())
        if section == "columns":
            self.column_order[table].append(name)


def _split_top_level(text: str) -> list[str]:
    """Split a column list on the commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _unquote(text: str) -> str:
    return text.replace('"', "").replace("`", "")


# SQLite keeps the CREATE statements themselves; both sides are parsed the same way.


def _parse_sqlite(statements: list[str]) -> Catalog:
    catalog = Catalog({}, {})
    for statement in statements:
        statement = " ".join(statement.split())
        table = re.fullmatch(r'CREATE TABLE (?:IF NOT EXISTS )?"?(\w+)"? \((.*)\)', statement)
        if table:
            for part in _split_top_level(table[2]):
                if re.match(r"(CONSTRAINT|UNIQUE|PRIMARY|CHECK|FOREIGN)\b", part):
                    catalog.add(table[1], "table_constraints", _unquote(part), _unquote(part))
                else:
                    column = re.fullmatch(r'"?(\w+)"? (.*)', part)
                    assert column, f"unparsed column definition {part!r}"
                    catalog.add(table[1], "columns", column[1], column[2])
            continue
        index = re.fullmatch(
            r'CREATE (UNIQUE )?INDEX (?:IF NOT EXISTS )?"?(\w+)"? ON "?(\w+)"? \((.*)\)', statement
        )
        assert index, f"unparsed statement {statement!r}"
        catalog.add(index[3], "indexes", index[2], f"{index[1] or ''}({_unquote(index[4])})")
    return catalog


def _sqlite_compat() -> Catalog:
    text = (COMPAT_DIR / "schema-sqlite.sql").read_text()
    return _parse_sqlite([s for s in text.split(";\n") if s.strip()])


def _sqlite_live(connection: BaseDatabaseWrapper) -> Catalog:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name LIKE 'django_celery_results_%' "
            "AND sql IS NOT NULL ORDER BY type DESC, rowid"
        )
        return _parse_sqlite([row[0] for row in cursor.fetchall()])


# PostgreSQL: pg_dump text on one side, the catalog queried in the same vocabulary on the other.


def _postgresql_compat() -> Catalog:
    catalog = Catalog({}, {})
    text = (COMPAT_DIR / "schema-postgresql.sql").read_text()
    for statement in text.split(";\n"):
        statement = " ".join(statement.split())
        if not statement or statement.startswith("--") or " OWNER TO " in statement:
            continue
        if match := re.fullmatch(r"CREATE TABLE public\.(\w+) \((.*)\)", statement):
            for part in _split_top_level(match[2]):
                if constraint := re.fullmatch(r"CONSTRAINT (\w+) (.*)", part):
                    catalog.add(match[1], "constraints", constraint[1], constraint[2])
                else:
                    column = re.fullmatch(r"(\w+) (.*?)( NOT NULL)?", part)
                    assert column, f"unparsed column {part!r}"
                    catalog.add(
                        match[1], "columns", column[1], f"{column[2]} {'NOT NULL' if column[3] else 'NULL'}"
                    )
        elif match := re.fullmatch(
            r"ALTER TABLE public\.(\w+) ALTER COLUMN (\w+) ADD GENERATED (BY DEFAULT|ALWAYS) AS IDENTITY "
            r"\( SEQUENCE NAME public\.(\w+) .*\)",
            statement,
        ):
            catalog.add(match[1], "identity", match[2], f"{match[3]} {match[4]}")
        elif match := re.fullmatch(r"ALTER TABLE ONLY public\.(\w+) ADD CONSTRAINT (\w+) (.*)", statement):
            catalog.add(match[1], "constraints", match[2], match[3])
        elif match := re.fullmatch(r"CREATE (UNIQUE )?INDEX (\w+) ON public\.(\w+) (.*)", statement):
            catalog.add(match[3], "indexes", match[2], f"{match[1] or ''}{match[4]}")
        else:
            raise AssertionError(f"unparsed pg_dump statement {statement!r}")
    return catalog


def _postgresql_live(connection: BaseDatabaseWrapper) -> Catalog:
    catalog = Catalog({}, {})
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   a.attidentity, pg_get_expr(d.adbin, d.adrelid),
                   pg_get_serial_sequence(quote_ident(c.relname), a.attname)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relname LIKE 'django\\_celery\\_results\\_%%' AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY c.relname, a.attnum
            """
        )
        for table, column, type_, notnull, identity, default, sequence in cursor.fetchall():
            definition = (
                f"{type_}{f' DEFAULT {default}' if default else ''} {'NOT NULL' if notnull else 'NULL'}"
            )
            catalog.add(table, "columns", column, definition)
            if identity:
                kind = {"d": "BY DEFAULT", "a": "ALWAYS"}[identity]
                # Schema-qualified: public in the dump, the scratch schema here.
                catalog.add(table, "identity", column, f"{kind} {sequence.split('.')[-1]}")
        cursor.execute(
            """
            SELECT c.relname, co.conname, pg_get_constraintdef(co.oid)
            FROM pg_constraint co
            JOIN pg_class c ON c.oid = co.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            WHERE c.relname LIKE 'django\\_celery\\_results\\_%%'
              AND co.contype <> 'n'  -- PostgreSQL 18 lists NOT NULL too; the columns say it already
            """
        )
        constraints = set()
        for table, name, definition in cursor.fetchall():
            catalog.add(table, "constraints", name, definition)
            constraints.add(name)
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename LIKE 'django\\_celery\\_results\\_%%'"
        )
        for table, name, definition in cursor.fetchall():
            if name in constraints:  # the index behind a unique or primary key constraint
                continue
            match = re.fullmatch(r"CREATE (UNIQUE )?INDEX (\w+) ON (?:\w+\.)?(\w+) (.*)", definition)
            assert match, f"unparsed index definition {definition!r}"
            catalog.add(table, "indexes", name, f"{match[1] or ''}{match[4]}")
    return catalog


# MySQL/MariaDB: SHOW CREATE TABLE on both sides.


def _parse_show_create(catalog: Catalog, text: str) -> None:
    lines = [line.strip().rstrip(",") for line in text.strip().splitlines()]
    head = re.fullmatch(r"CREATE TABLE `(\w+)` \(", lines[0])
    assert head, f"unparsed SHOW CREATE TABLE head {lines[0]!r}"
    table = head[1]
    for line in lines[1:-1]:
        # Display widths (int(11)) are cosmetic and MySQL 8 no longer shows them.
        line = re.sub(r"\b(tinyint|smallint|int|bigint)\(\d+\)", r"\1", line)
        if match := re.fullmatch(r"`(\w+)` (.*)", line):
            catalog.add(table, "columns", match[1], match[2])
        elif match := re.fullmatch(r"PRIMARY KEY (\(.*\))", line):
            catalog.add(table, "keys", "PRIMARY", f"PRIMARY KEY {_unquote(match[1])}")
        elif match := re.fullmatch(r"(UNIQUE |FULLTEXT )?KEY `(\w+)` (\(.*\))(.*)", line):
            catalog.add(table, "keys", match[2], f"{match[1] or ''}KEY {_unquote(match[3])}{match[4]}")
        elif match := re.fullmatch(r"CONSTRAINT `(\w+)` (.*)", line):
            catalog.add(table, "constraints", match[1], match[2])
        else:
            raise AssertionError(f"unparsed SHOW CREATE TABLE line {line!r}")
    # The AUTO_INCREMENT counter depends on the rows ever inserted, not on the schema.
    options = re.sub(r" AUTO_INCREMENT=\d+", "", lines[-1].removeprefix(")").strip())
    catalog.add(table, "options", "table", options)


def _mysql_compat() -> Catalog:
    catalog = Catalog({}, {})
    text = (COMPAT_DIR / "schema-mariadb.txt").read_text()
    for chunk in text.split("Create Table: ")[1:]:
        _parse_show_create(catalog, chunk.split("***")[0])
    return catalog


def _mysql_live(connection: BaseDatabaseWrapper) -> Catalog:
    catalog = Catalog({}, {})
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            if table.startswith(f"{APP}_"):
                cursor.execute(f"SHOW CREATE TABLE {connection.ops.quote_name(table)}")
                _parse_show_create(catalog, cursor.fetchone()[1])
    return catalog


COMPAT_READERS = {"sqlite": _sqlite_compat, "postgresql": _postgresql_compat, "mysql": _mysql_compat}
LIVE_READERS = {"sqlite": _sqlite_live, "postgresql": _postgresql_live, "mysql": _mysql_live}


def installed_catalog() -> Catalog:
    """The installed base's schema on this engine (``tests/compat``)."""
    return COMPAT_READERS[ENGINE]()


def live_catalog(alias: str) -> Catalog:
    """The schema of the app's tables on ``alias``, as its engine's catalog reports it."""
    return LIVE_READERS[ENGINE](connections[alias])


def schema_differences(live: Catalog, expected: Catalog, *, additions: bool = False) -> list[str]:
    """Every difference, one line each: ``table section name: live != expected``.

    With ``additions``, what ``expected`` lacks is no difference (our migrations
    after upstream's last one may add columns and indexes; COMPAT.md), nor are
    the changes listed in :data:`CHANGED_AFTER_UPSTREAM`, and column
    order is not compared: SQLite rebuilds a table to add a column with a default,
    and the rebuild reorders columns. Order is compared exactly everywhere else.
    """
    differences = []
    for table in sorted(set(live.tables) | set(expected.tables)):
        ours, theirs = live.tables.get(table, {}), expected.tables.get(table, {})
        if additions and not theirs:
            continue
        for section in sorted(set(ours) | set(theirs)):
            mine, base = ours.get(section, {}), theirs.get(section, {})
            for name in sorted(set(mine) | set(base)):
                allowed = additions and (name not in base or (table, section, name) in CHANGED_AFTER_UPSTREAM)
                if mine.get(name) != base.get(name) and not allowed:
                    differences.append(f"{table} {section} {name}: {mine.get(name)!r} != {base.get(name)!r}")
        order, base_order = live.column_order.get(table, []), expected.column_order.get(table, [])
        if not additions and order != base_order:
            differences.append(f"{table} column order: {order} != {base_order}")
    return differences


def assert_same_schema(alias: str, expected: Catalog) -> None:
    """The app's tables on ``alias`` are exactly ``expected``, column order included."""
    differences = schema_differences(live_catalog(alias), expected)
    assert not differences, "schema differences (live != expected):\n" + "\n".join(differences)
