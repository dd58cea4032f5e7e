"""Chord failures with a group as the body, on every supported Celery.

Celery < 5.6 stores a failed chord's error under the body group's id only, so
the body's own tasks stay PENDING forever (celery#8786); Celery 5.6 fails each
of them. Both backends do the same on the older releases.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import group
from celery.backends.base import Backend

#: Celery >= 5.6 fails each task of a group body itself.
CELERY_FAILS_GROUP_BODIES = hasattr(Backend, "_handle_group_chord_error")


class GroupBodyFailures:
    """Mixed into a backend: a failed chord fails every task of its group body."""

    def chord_error_from_stack(self, callback: Any, exc: BaseException | None = None) -> Any:
        if CELERY_FAILS_GROUP_BODIES or not isinstance(callback, group):
            return super().chord_error_from_stack(callback, exc)  # type: ignore[misc]
        error = exc if exc is not None else sys.exc_info()[1]
        failed = None
        for result in callback.freeze().results:
            failed = self.fail_from_current_stack(result.id, exc=error)  # type: ignore[attr-defined]
        return failed
