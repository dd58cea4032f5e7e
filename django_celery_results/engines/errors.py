"""Which driver errors are worth another attempt, and which say the session is gone."""

from __future__ import annotations

from collections.abc import Iterator

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
