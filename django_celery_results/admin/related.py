"""Following tasks to their children and groups to their members, from stored result tuples.

Celery stores children (in a task's ``meta``) and group members (in a group
result) as nested result tuples: ``[[id, parent], null]`` for a task and
``[[id, parent], [member tuples...]]`` for a group. Only JSON rows are read:
decoding other serializers (pickle) in the admin would run what they hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..codec import JSON, unescape_text

#: Children or members read from one row at most: a page lists them, it does not page them.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Ref:
    """A task (``members is None``) or a group (its member refs) named in a result tuple."""

    id: str
    members: tuple[Ref, ...] | None = None


def _ref(item: Any) -> Ref | None:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list) and item[0]):
        return None
    ident = item[0][0]
    if not isinstance(ident, str):
        return None
    members = item[1]
    if isinstance(members, list):
        return Ref(ident, tuple(ref for ref in map(_ref, members[:MAX_LISTED]) if ref is not None))
    return Ref(ident)


def _json(content_type: str, text: str | None) -> Any:
    text = unescape_text(text)
    if content_type != JSON or not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def children_of(content_type: str, meta: str | None) -> list[Ref]:
    """The children a task's ``meta`` names (tasks it called, groups it started)."""
    decoded = _json(content_type, meta)
    children = decoded.get("children") if isinstance(decoded, dict) else None
    if not isinstance(children, list):
        return []
    return [ref for ref in map(_ref, children[:MAX_LISTED]) if ref is not None]


def lineage_of(content_type: str, meta: str | None) -> tuple[str | None, str | None]:
    """The group a task is a member of and the task that sent it (``group_id``, ``parent_id`` in ``meta``)."""
    decoded = _json(content_type, meta)
    if not isinstance(decoded, dict):
        return None, None
    group_id, parent_id = decoded.get("group_id"), decoded.get("parent_id")
    return (
        group_id if isinstance(group_id, str) and group_id else None,
        parent_id if isinstance(parent_id, str) and parent_id else None,
    )


def members_of(content_type: str, result: str | None) -> list[Ref]:
    """The members of a saved group result (its ``result`` column is the group's tuple)."""
    ref = _ref(_json(content_type, result))
    return list(ref.members or ()) if ref is not None else []


def task_ids(refs: list[Ref]) -> Iterator[str]:
    """Ids of the tasks among ``refs``, nested groups' members included."""
    for ref in refs:
        if ref.members is None:
            yield ref.id
        else:
            yield from task_ids(list(ref.members))


def parts_of(sub_tasks: str | None) -> list[Ref]:
    """The header parts a chord counter lists (``sub_tasks``: a JSON list of result tuples)."""
    decoded = _json(JSON, sub_tasks)
    if not isinstance(decoded, list):
        return []
    return [ref for ref in map(_ref, decoded[:MAX_LISTED]) if ref is not None]
