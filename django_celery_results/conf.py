"""The package's settings, read from Django's settings each time they are used.

Nothing here is read at import time: tests and sites may change settings
after this module is imported (``override_settings``), and the values must
follow.

A value of the wrong type is never taken at face value (``"no"`` is not
``True``). Where the default is a harmless stand-in, it is used instead;
where guessing could delete or expose the wrong thing, reading the setting
raises :class:`InvalidSetting`. Either way the system checks report it
(docs/engines.rst, "System checks"): they read through a *strict*
:class:`AppSettings`, which raises for every value it cannot use.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django.http import HttpRequest

DEFAULT_TASK_ID_MAX_LENGTH = 255
#: The shortest id column that holds Celery's own ids (UUIDs in their 36-character form).
MIN_TASK_ID_MAX_LENGTH = 36
#: Rows per cleanup transaction; ``None``: each batch sized to take about 50 ms
#: (``managers.BatchSizer``), so its commit is shared by as many rows as a short transaction allows.
DEFAULT_CLEANUP_BATCH_SIZE: int | None = None
DEFAULT_WAITING_CHORD_EXPIRES = 7 * 24 * 3600
DEFAULT_MAX_RESULT_SIZE = 4 * 1024 * 1024

#: The named values of ``VIEWS_ACCESS``; any other string is the dotted path of an :data:`AccessRule`.
VIEWS_ACCESS_MODES = ("authenticated", "staff", "public")

#: A site's own rule for the JSON views: ``rule(request, kind, id)`` with ``kind`` ``"task"`` or
#: ``"group"``; true lets the request see that task or group.
AccessRule = Callable[["HttpRequest", str, str], bool]

T = TypeVar("T")
Getter = TypeVar("Getter", bound=Callable[..., Any])

#: Names of the properties reading ``DJANGO_CELERY_RESULTS[<name in capitals>]``, filled by :func:`option`.
_OPTION_PROPERTIES: list[str] = []


class InvalidSetting(ImproperlyConfigured, ValueError):
    """A setting holds a value this package cannot use; the message names it and what it must be.

    A ``ValueError`` too, so callers that already refused ``int("lots")`` refuse it the same way.
    """


def option(getter: Getter) -> Getter:
    """Mark a property's getter as reading the ``DJANGO_CELERY_RESULTS`` key of its name in capitals.

    The known keys (:data:`OPTION_KEYS`) come from these marks, so they cannot drift from the properties.
    """
    _OPTION_PROPERTIES.append(getter.__name__)
    return getter


def _named(key: str) -> str:
    return f'DJANGO_CELERY_RESULTS["{key}"]'


def _is_int(value: Any) -> bool:
    """A real integer: ``True`` is an ``int`` to Python but not a size, and ``"1000"`` is text."""
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


class AppSettings:
    """Typed access to every setting this package reads.

    ``strict=True`` raises :class:`InvalidSetting` where the ordinary instance would
    fall back to a default: the system checks read through such an instance.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict

    def _fallback(self, problem: str, default: T) -> T:
        """``default`` in place of an unusable value; strict instances raise ``problem`` instead."""
        if self.strict:
            raise InvalidSetting(problem)
        return default

    @property
    def _options(self) -> Mapping[str, Any]:
        options = getattr(settings, "DJANGO_CELERY_RESULTS", None)
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            return self._fallback(
                f"DJANGO_CELERY_RESULTS must be a dict, not {_shown(options)}; it is ignored.",
                {},
            )
        return options

    def _flag(self, key: str) -> bool:
        """A boolean option: only ``True`` or ``False``; anything else reads as ``False``, the safe side."""
        value = self._options.get(key, False)
        if isinstance(value, bool):
            return value
        return self._fallback(
            f"{_named(key)} must be True or False, not {_shown(value)}; it reads as False.", False
        )

    def _positive_int(self, key: str, default: int) -> int:
        """A size option: an ``int`` of at least 1; anything else reads as ``default``."""
        value = self._options.get(key, default)
        if _is_int(value) and value >= 1:
            return int(value)
        return self._fallback(
            f"{_named(key)} must be a whole number of at least 1, not {_shown(value)}; "
            f"it reads as {default}.",
            default,
        )

    @property
    def task_id_max_length(self) -> int:
        """``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH``: length of task/group id and task name.

        It shapes the schema (column lengths), so it is read when models and
        migrations are loaded; 191 suits MySQL servers with a 767-byte key limit.
        An unusable value reads as the default so that models still import; check
        E003 reports it, and stops ``migrate`` from creating columns of that length.
        """
        value = getattr(settings, "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH", DEFAULT_TASK_ID_MAX_LENGTH)
        if _is_int(value) and value >= MIN_TASK_ID_MAX_LENGTH:
            return int(value)
        return self._fallback(
            f"DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH must be a whole number of at least "
            f"{MIN_TASK_ID_MAX_LENGTH} (a UUID's length), not {_shown(value)}; "
            f"it reads as {DEFAULT_TASK_ID_MAX_LENGTH}.",
            DEFAULT_TASK_ID_MAX_LENGTH,
        )

    @property
    @option
    def allow_edits(self) -> bool:
        """``DJANGO_CELERY_RESULTS["ALLOW_EDITS"]``: the admin may change results."""
        return self._flag("ALLOW_EDITS")

    @property
    @option
    def public_views(self) -> bool:
        """``DJANGO_CELERY_RESULTS["PUBLIC_VIEWS"]``: serve the JSON views to anonymous users.

        Off by default: results can hold private data. Upstream served them to anyone.
        ``VIEWS_ACCESS``, when set, decides instead (:attr:`views_access`).
        """
        return self._flag("PUBLIC_VIEWS")

    @property
    @option
    def views_access(self) -> str | AccessRule:
        """``DJANGO_CELERY_RESULTS["VIEWS_ACCESS"]``: who may read the JSON views.

        One of :data:`VIEWS_ACCESS_MODES`, or the :data:`AccessRule` its dotted path names.
        Unset (or ``None``), ``PUBLIC_VIEWS`` decides: ``"public"`` when on, else
        ``"authenticated"``. Raises :class:`InvalidSetting` for anything else: no
        fallback would be right, so the views deny everyone and log it.
        """
        value = self._options.get("VIEWS_ACCESS")
        if value is None:
            return "public" if self.public_views else "authenticated"
        if not isinstance(value, str):
            raise InvalidSetting(f"{_named('VIEWS_ACCESS')} must be a string, not {_shown(value)}.")
        if value in VIEWS_ACCESS_MODES:
            return value
        return _access_rule(value)

    @property
    @option
    def pending_on_publish(self) -> bool:
        """``DJANGO_CELERY_RESULTS["PENDING_ON_PUBLISH"]``: store a PENDING row when a task is sent."""
        return self._flag("PENDING_ON_PUBLISH")

    @property
    @option
    def listen_database(self) -> str | None:
        """``DJANGO_CELERY_RESULTS["LISTEN_DATABASE"]``: the alias waiting ``get()`` calls LISTEN on.

        For sites whose result alias goes through a pooler in transaction mode,
        where LISTEN cannot work: an alias of the same PostgreSQL database
        reached directly. ``None`` (the default) listens on the result alias,
        and falls back to polling when notifications do not come through.
        """
        value = self._options.get("LISTEN_DATABASE")
        if value is None:
            return None
        if isinstance(value, str) and value in settings.DATABASES:
            return value
        return self._fallback(
            f"{_named('LISTEN_DATABASE')} must name an alias of DATABASES, not "
            f"{_shown(value)}; waits listen on the result alias.",
            None,
        )

    @property
    def id_first_urls(self) -> bool:
        """``DJANGO_CELERY_RESULTS_ID_FIRST_URLS``: also serve the deprecated ``<id>/done/`` URLs."""
        return bool(getattr(settings, "DJANGO_CELERY_RESULTS_ID_FIRST_URLS", True))

    @property
    @option
    def cleanup_batch_size(self) -> int | None:
        """``DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"]``: rows deleted per short transaction.

        ``None`` (unset): batches sized to take about 50 ms each. Not an ``int``:
        raises :class:`InvalidSetting` (a ``ValueError``), so a cleanup refuses
        to start rather than guess. Its bounds are the cleanup command's.
        """
        value = self._options.get("CLEANUP_BATCH_SIZE", DEFAULT_CLEANUP_BATCH_SIZE)
        if value is None:
            return None
        if not _is_int(value):
            raise InvalidSetting(
                f"{_named('CLEANUP_BATCH_SIZE')} must be a whole number, not {_shown(value)}."
            )
        return int(value)

    @property
    @option
    def waiting_chord_expires(self) -> timedelta:
        """``DJANGO_CELERY_RESULTS["WAITING_CHORD_EXPIRES"]``: age (seconds) at which a chord still
        waiting for parts is given up and its counter cleaned (default 7 days).

        Longer than ``result_expires``: a chord may rightly run for longer than
        its results are kept, and without its counter it can never complete. Not a
        number of seconds (nor a ``timedelta``), at least 0: raises :class:`InvalidSetting`,
        since a guess could give up chords still running.
        """
        value = self._options.get("WAITING_CHORD_EXPIRES", DEFAULT_WAITING_CHORD_EXPIRES)
        if isinstance(value, timedelta) and value >= timedelta(0):
            return value
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        ):
            return timedelta(seconds=value)
        raise InvalidSetting(
            f"{_named('WAITING_CHORD_EXPIRES')} must be a number of seconds (or a timedelta) of at "
            f"least 0, not {_shown(value)}."
        )

    @property
    @option
    def max_result_size(self) -> int:
        """``DJANGO_CELERY_RESULTS["MAX_RESULT_SIZE"]``: bytes a stored result may take (default 4 MiB).

        Only read by system check W004, which compares it with MySQL's ``max_allowed_packet``.
        """
        return self._positive_int("MAX_RESULT_SIZE", DEFAULT_MAX_RESULT_SIZE)


def _access_rule(path: str) -> AccessRule:
    """The callable ``path`` names; :class:`InvalidSetting` saying why when there is none to call."""
    name = _named("VIEWS_ACCESS")
    if "." not in path:
        close = difflib.get_close_matches(path, VIEWS_ACCESS_MODES, n=1)
        guess = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidSetting(
            f"{name} is {path!r}: neither one of {', '.join(map(repr, VIEWS_ACCESS_MODES))} "
            f"nor the dotted path of a callable.{guess}"
        )
    try:
        rule = import_string(path)
    except Exception as error:  # a module failing to import may raise anything
        raise InvalidSetting(
            f"{name} is {path!r}, which cannot be imported ({type(error).__name__}: {error})."
        ) from error
    if not callable(rule):
        raise InvalidSetting(f"{name} is {path!r}, which is not callable ({type(rule).__name__}).")
    try:
        inspect.signature(rule).bind(None, "task", "")
    except TypeError as error:
        raise InvalidSetting(
            f"{name} is {path!r}, which cannot be called as rule(request, kind, id) ({error})."
        ) from error
    except ValueError:  # no signature to inspect (some built-ins): calling it will tell
        pass
    checked: AccessRule = rule
    return checked


app_settings = AppSettings()

#: The keys ``DJANGO_CELERY_RESULTS`` may hold: one per property marked with :func:`option`.
OPTION_KEYS: tuple[str, ...] = tuple(name.upper() for name in _OPTION_PROPERTIES)
