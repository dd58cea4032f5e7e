"""What the task, group and chord admins share: the changelist and read-only by default."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.db.models import Field, Max, Min, Model
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..models import ChordCounter, GroupResult, TaskResult
from . import display
from .display import pretty_text

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec as Fieldsets

    # ModelAdmin is generic in django-stubs only: Django itself cannot subscript it.
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    Fieldsets = Any
    _ModelAdmin = admin.ModelAdmin

#: The stored text of these encodings is base64 of binary data: never JSON.
BINARY_ENCODING = "binary"

WIDE = ("extrapretty", "wide")


def label(model: type[Model], name: str) -> Any:
    """The verbose name of a column: the labels users know from upstream."""
    field = model._meta.get_field(name)
    return field.verbose_name if isinstance(field, Field) else name


class ResultChangeList(ChangeList):
    """A changelist whose date hierarchy needs one ``MIN``/``MAX`` query, never a ``DISTINCT``."""

    def date_hierarchy_links(self) -> dict[str, Any]:
        """The context of ``admin/date_hierarchy.html``: back link and choices.

        Like Django's, it starts at the level where the matching rows differ
        (all in one year: months; all in one month: days), but it lists every
        period between the oldest and newest row rather than only those
        holding rows: finding those is a ``SELECT DISTINCT`` over every
        matching row on each page load.
        """
        field = self.date_hierarchy
        year_key, month_key, day_key = (f"{field}__{part}" for part in ("year", "month", "day"))
        year = self.params.get(year_key)
        month = self.params.get(month_key) if year else None
        day = self.params.get(day_key) if month else None

        def link(params: dict[str, Any]) -> str:
            return str(self.get_query_string(params, [f"{field}__"]))

        if year and month and day:
            moment = date(int(year), int(month), int(day))
            return {
                "show": True,
                "back": {
                    "link": link({year_key: year, month_key: month}),
                    "title": capfirst(date_format(moment, "YEAR_MONTH_FORMAT")),
                },
                "choices": [{"title": capfirst(date_format(moment, "MONTH_DAY_FORMAT"))}],
            }

        # Bounds of the rows the hierarchy alone selects (two index endpoints),
        # not of every matching row (a scan when filters or a search are on).
        dated = self.root_queryset
        if year:
            start = datetime(int(year), int(month) if month else 1, 1)
            end = (start + timedelta(days=32)).replace(day=1) if month else start.replace(year=start.year + 1)
            if settings.USE_TZ:
                start, end = timezone.make_aware(start), timezone.make_aware(end)
            dated = dated.filter(**{f"{field}__gte": start, f"{field}__lt": end})
        bounds = dated.aggregate(first=Min(field), last=Max(field))
        first, last = _local(bounds["first"]), _local(bounds["last"])
        if not year and first and last and first.year == last.year:
            year = str(first.year)
            if first.month == last.month:
                month = str(first.month)

        if year and month:
            y, m = int(year), int(month)
            days = range(first.day, last.day + 1) if first and last else range(0)
            return {
                "show": True,
                "back": {"link": link({year_key: year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({year_key: year, month_key: month, day_key: d}),
                        "title": capfirst(date_format(date(y, m, d), "MONTH_DAY_FORMAT")),
                    }
                    for d in days
                ],
            }
        if year:
            y = int(year)
            months = range(first.month, last.month + 1) if first and last else range(0)
            return {
                "show": True,
                "back": {"link": link({}), "title": _("All dates")},
                "choices": [
                    {
                        "link": link({year_key: year, month_key: m}),
                        "title": capfirst(date_format(date(y, m, 1), "YEAR_MONTH_FORMAT")),
                    }
                    for m in months
                ],
            }
        years = range(first.year, last.year + 1) if first and last else range(0)
        return {
            "show": True,
            "back": None,
            "choices": [{"link": link({year_key: y}), "title": str(y)} for y in years],
        }

    def get_results(self, request: HttpRequest) -> None:
        """Fetch the page, then drop the optional columns no row of it fills.

        A column empty on every row of the page (no periodic tasks, no queue
        recorded) only takes width; the model admin names which columns may
        go (``optional_columns``) and when a row fills each (``column_filled``).
        """
        super().get_results(request)
        model_admin = self.model_admin
        optional = getattr(model_admin, "optional_columns", ())
        if not optional or not self.result_list:
            return
        filled = model_admin.column_filled  # type: ignore[attr-defined]
        empty = {
            name
            for name in optional
            if name in self.list_display and not any(filled(name, row) for row in self.result_list)
        }
        if empty:
            self.list_display = [name for name in self.list_display if name not in empty]
            self.list_display_links = [n for n in (self.list_display_links or ()) if n not in empty]


def _local(moment: datetime | None) -> datetime | None:
    """``moment`` in the current time zone, the one the hierarchy's filters use."""
    if moment is not None and timezone.is_aware(moment):
        return timezone.localtime(moment)
    return moment


class ResultAdmin(_ModelAdmin):
    """What the task and group result admins share: read-only by default, bounded queries.

    Subclasses give ``fieldsets`` (shown when read-only) and ``edit_fieldsets``
    with ``readonly_fields`` (used when ``ALLOW_EDITS`` is on).
    """

    edit_fieldsets: ClassVar[Fieldsets] = ()
    #: Columns left out of a changelist page when no row of it fills them.
    optional_columns: ClassVar[tuple[str, ...]] = ()
    ordering = ("-date_done",)
    date_hierarchy = "date_done"
    # Counting the whole table again beside the filtered count is a full scan.
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django 5.0+
        # Each facet is a count over the matching rows; on a big table, slow.
        show_facets = admin.ShowFacets.NEVER

    def edits_allowed(self, request: HttpRequest) -> bool:
        """Whether results may be added and changed: ``DJANGO_CELERY_RESULTS["ALLOW_EDITS"]``.

        Read on each request so that changing settings (or ``override_settings``)
        takes effect without a restart; override to decide per request.
        """
        return app_settings.allow_edits

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Adding needs ``ALLOW_EDITS`` and the add permission: results come from workers."""
        return self.edits_allowed(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Changing needs ``ALLOW_EDITS`` and the change permission; else pages are view-only."""
        return self.edits_allowed(request) and super().has_change_permission(request, obj)

    # has_delete_permission is Django's own on purpose: see the module docstring.

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Fieldsets:
        """Raw, editable fields when edits are allowed; pretty-printed read-only ones otherwise."""
        return self.edit_fieldsets if self.edits_allowed(request) else self.fieldsets or ()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """Every field shown, unless edits are allowed.

        Doing it here as well as in the permission hooks keeps pages read-only
        in subclasses that grant the change permission their own way.
        """
        if self.edits_allowed(request):
            return tuple(self.readonly_fields)
        return tuple(flatten_fieldsets(self.get_fieldsets(request, obj)))

    class Media:
        css = {"all": ("django_celery_results/admin.css",)}
        js = ("django_celery_results/admin.js",)

    def column_filled(self, name: str, row: Any) -> bool:
        """Whether ``row`` fills the optional column ``name`` (by default: a field of that name)."""
        value = getattr(row, name, None)
        return value is not None and value != ""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """:class:`ResultChangeList`, whose date hierarchy needs no ``DISTINCT``."""
        return ResultChangeList

    def _pretty(self, obj: TaskResult | GroupResult, text: str | None) -> SafeString | str:
        return pretty_text(
            text,
            json_text=obj.content_encoding != BINARY_ENCODING,
            empty=self.get_empty_value_display(),
        )

    @admin.display(description=label(TaskResult, "date_done"), ordering="date_done")
    def date_done_moment(self, obj: TaskResult | GroupResult) -> SafeString | str:
        """When the latest state was stored, to the second, and how long ago."""
        return display.moment_html(obj.date_done, self.get_empty_value_display())

    @admin.display(description=label(TaskResult, "date_created"), ordering="date_created")
    def date_created_moment(self, obj: TaskResult | GroupResult | ChordCounter) -> SafeString | str:
        """When the row was first written, to the second, and how long ago."""
        return display.moment_html(obj.date_created, self.get_empty_value_display())

    @admin.display(description=label(TaskResult, "result"))
    def pretty_result(self, obj: TaskResult | GroupResult) -> SafeString | str:
        """The result: JSON indented, anything else as stored; always escaped."""
        return self._pretty(obj, obj.result)
