"""Rebuilding a task's call from its stored row, only when it is exact.

With ``result_extended``, rows hold the text of ``argsrepr``/``kwargsrepr``
(Celery's ``saferepr`` of the arguments, cut at ``argsrepr_maxsize``, or
whatever text the caller chose to mask them) or, for requests without those,
the serialized arguments. Re-running with arguments that differ from the
original's would run a different task, so anything that is not provably the
original is refused with the reason.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from celery.utils.saferepr import saferepr
from django.utils.translation import gettext as _
from kombu.exceptions import DecodeError

from ..codec import JSON, Codec, unescape_text
from ..models import TaskResult

#: ``saferepr`` may cut a text a few characters past its limit; texts this close to it are refused.
CUT_MARGIN = 16


class NotReconstructible(ValueError):
    """The stored row does not tell exactly how the task was called; the message says why."""


@dataclass(frozen=True)
class Call:
    """A task call rebuilt from a row: what ``send_task`` needs."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what a serializer sends back unchanged (no ``...``, sets, NaN)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


def _from_repr(text: str, limit: int) -> Any:
    """The value whose ``saferepr`` is ``text``, if ``text`` is provably a whole, uncut repr."""
    if len(text) >= limit - CUT_MARGIN:
        raise NotReconstructible(
            _("the stored arguments are %(n)d characters long: Celery may have cut them at %(limit)d")
            % {"n": len(text), "limit": limit}
        )
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise NotReconstructible(
            _("the stored arguments are not Python literals (masked by argsrepr?)")
        ) from exc
    if not _plain(value) or saferepr(value, limit) != text:
        raise NotReconstructible(_("the stored arguments are only a shortened or masked description"))
    return value


def _decoded(row: TaskResult, column: str, limit: int) -> Any:
    text = getattr(row, column)
    if text is None:
        raise NotReconstructible(_("the arguments were not stored (result_extended off?)"))
    if row.content_type != JSON:
        # Decoding pickle here would run code the row holds; other serializers are not checked.
        raise NotReconstructible(
            _("the arguments are stored as %(type)s; only JSON rows are re-run") % {"type": row.content_type}
        )
    codec = Codec(serializer="json", accept=[JSON])
    try:
        value = codec.decode(row.content_type, row.content_encoding, text)
    except (DecodeError, ValueError, TypeError) as exc:
        raise NotReconstructible(_("the stored arguments cannot be decoded")) from exc
    if isinstance(value, str):  # the text of argsrepr/kwargsrepr
        value = _from_repr(value, limit)
    elif not _plain(value):
        raise NotReconstructible(_("the stored arguments hold values that cannot be sent again"))
    return value


def call_of(row: TaskResult, args_limit: int, kwargs_limit: int) -> Call:
    """The exact call that produced ``row``, or :class:`NotReconstructible` saying why not.

    ``args_limit``/``kwargs_limit`` are the app's ``amqp.argsrepr_maxsize`` and
    ``kwargsrepr_maxsize``: the length at which Celery cut the descriptions.
    """
    name = unescape_text(row.task_name)
    if not name:
        raise NotReconstructible(_("the task name was not stored"))
    args = _decoded(row, "task_args", args_limit)
    kwargs = _decoded(row, "task_kwargs", kwargs_limit)
    if not isinstance(args, (list, tuple)):
        raise NotReconstructible(_("the stored positional arguments are not a sequence"))
    if not isinstance(kwargs, dict):
        raise NotReconstructible(_("the stored keyword arguments are not a mapping"))
    return Call(name, list(args), dict(kwargs))
