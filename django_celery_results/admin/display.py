"""How stored values look on admin pages: escaped, readable, and the same on every page.

Every function returns text Django escapes, or :class:`SafeString` built with
:func:`format_html` from escaped parts: nothing a task stores reaches a page
as markup.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from celery import states
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from ..codec import printable, unescape_text

#: Characters of a task id shown in lists; the full id is in the link's title and copy button.
SHORT_ID_LENGTH = 8

#: CSS class suffix of each state's badge; other (custom) states get ``other``.
BADGE_KINDS = {
    states.SUCCESS: "success",
    states.FAILURE: "failure",
    states.STARTED: "started",
    states.RETRY: "retry",
    states.REVOKED: "revoked",
    states.PENDING: "pending",
    states.RECEIVED: "pending",
    states.REJECTED: "failure",
    states.IGNORED: "revoked",
}

#: A mark beside the state name, so that the badge does not rely on colour alone.
BADGE_MARKS = {
    "success": "\u2713",  # check mark
    "failure": "\u2717",  # ballot x
    "started": "\u25b6",  # play
    "retry": "\u21bb",  # clockwise arrow
    "revoked": "\u2298",  # circled slash
    "pending": "\u2026",  # ellipsis
    "other": "\u2022",  # bullet
}


def pretty_text(text: str | None, *, json_text: bool, empty: str = "-") -> SafeString | str:
    """``text`` escaped inside ``<pre>``; indented first when ``json_text`` and it parses as JSON.

    Stored values are the serializer's text: JSON is hard to read on one line,
    and anything else (base64 pickle, ``repr`` text of old rows, tracebacks)
    is shown exactly as stored. Every character of ``text`` is escaped.
    """
    text = unescape_text(text)  # what the task stored, not its escaped storage form
    if text is None or text == "":
        return empty
    shown = text
    if json_text:
        try:
            shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            shown = text
    return format_html('<pre class="dcr-pretty">{}</pre>', printable(shown))


def traceback_html(text: str | None, empty: str = "-") -> SafeString | str:
    """The traceback escaped, its last line (the exception raised) highlighted."""
    text = unescape_text(text)
    if not text:
        return empty
    lines = printable(text).rstrip("\n").split("\n")
    return format_html(
        '<pre class="dcr-pretty dcr-traceback">{}<mark class="dcr-exception">{}</mark></pre>',
        "".join(line + "\n" for line in lines[:-1]),
        lines[-1],
    )


def state_badge(status: str | None) -> SafeString:
    """The state as a coloured badge with a mark and its name: readable without colour too."""
    name = status or ""
    kind = BADGE_KINDS.get(name, "other")
    return format_html(
        '<span class="dcr-badge dcr-badge-{}"><span aria-hidden="true">{}</span> {}</span>',
        kind,
        BADGE_MARKS[kind],
        name,
    )


def duration_text(delta: timedelta | None) -> str:
    """``delta`` in the largest two units that matter: ``"850 ms"``, ``"3.2 s"``, ``"4 min 12 s"``."""
    if delta is None:
        return ""
    seconds = delta.total_seconds()
    if seconds < 0:
        return ""  # clocks of different hosts disagree: no reading is better than a wrong one
    if seconds < 1:
        return _("%(n)d ms") % {"n": round(seconds * 1000)}
    if seconds < 60:
        return _("%(n).1f s") % {"n": seconds}
    # The two largest units, the second left out when it is 0 ("1 h", not "1 h 0 min").
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        if second:
            return _("%(m)d min %(s)d s") % {"m": minutes, "s": second}
        return _("%(m)d min") % {"m": minutes}
    hours, minute = divmod(minutes, 60)
    if hours < 24:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minute} if minute else _("%(h)d h") % {"h": hours}
    days, hour = divmod(hours, 24)
    return _("%(d)d d %(h)d h") % {"d": days, "h": hour} if hour else _("%(d)d d") % {"d": days}


def between(start: datetime | None, end: datetime | None) -> timedelta | None:
    """``end - start`` when both are known."""
    if start is None or end is None:
        return None
    return end - start


def moment_html(moment: datetime | None, empty: str = "-") -> SafeString | str:
    """The date to the second in the current time zone, with how long ago it was beside it."""
    if moment is None:
        return empty
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    now = timezone.now() if timezone.is_aware(moment) else datetime.now()
    seconds = (now - moment).total_seconds()
    if 0 <= seconds < 60:
        ago = _("%(n)d s ago") % {"n": seconds}
    else:
        ago = _("%(delta)s ago") % {"delta": timesince(moment, now, depth=1)}
    return format_html(
        '<time class="dcr-moment" datetime="{}" title="{}">{}</time> <small class="dcr-ago">{}</small>',
        local.isoformat(),
        ago,
        date_format(local, "Y-m-d H:i:s"),
        ago,
    )


#: The copy button's icon: two sheets, drawn inline (no icon font, nothing fetched).
COPY_ICON = SafeString(
    '<svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true"><rect x="5" y="1" width="10" '
    'height="10" rx="1" fill="none" stroke="currentColor" stroke-width="1.5"/><rect x="1" y="5" width="10" '
    'height="10" rx="1" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>'
)


def short_id_html(task_id: str, url: str) -> SafeString:
    """The first characters of ``task_id`` linking to ``url``, and a button copying the whole id."""
    shown = task_id if len(task_id) <= SHORT_ID_LENGTH + 1 else task_id[:SHORT_ID_LENGTH] + "\u2026"
    return format_html(
        '<a class="dcr-id" href="{}" title="{}">{}</a>'
        '<button type="button" class="dcr-copy" data-copy="{}" title="{}" aria-label="{}">{}</button>',
        url,
        task_id,
        shown,
        task_id,
        _("Copy the task id"),
        _("Copy the task id"),
        COPY_ICON,
    )


def breakable(text: str) -> SafeString:
    """``text`` escaped, with line-break opportunities after dots and ``@`` (dotted names, hosts)."""
    parts = re.split(r"(?<=[.@])", text)
    return format_html_join(SafeString("<wbr>"), "{}", ((part,) for part in parts))


def json_value_html(value: Any) -> SafeString:
    """A decoded value as indented JSON (``repr`` for what JSON cannot show), escaped."""
    try:
        shown = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        shown = repr(value)
    return format_html('<pre class="dcr-pretty">{}</pre>', printable(shown))


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with one decimal, or empty when ``whole`` is 0."""
    return f"{100 * part / whole:.1f} %" if whole else ""
