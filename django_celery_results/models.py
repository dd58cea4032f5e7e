"""The tables: task results, group results, chord counters and their counted parts.

Table names, columns and index names are those of the installed base of
``django-celery-results`` so that switching needs only ``migrate``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from celery import states
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import managers
from .conf import app_settings

if TYPE_CHECKING:
    from celery import Celery
    from celery.result import GroupResult as CeleryGroupResult

# Column lengths are part of the schema, so they are fixed when the models load.
ID_MAX_LENGTH = app_settings.task_id_max_length
#: The unique index of ``ChordPart`` on (group_id, task_id): each part counts once.
CHORD_PART_UNIQUE = "django_cele_chordpart_uniq"
#: The index of ``TaskResult`` on (status, date_created): the oldest rows of a state.
TASK_STATE_AGE_INDEX = "django_cele_status_age_idx"
#: The index of ``TaskResult`` on (date_done, status): states of the newest rows, without the table.
TASK_DONE_STATE_INDEX = "django_cele_done_state_idx"
#: The index of ``ChordCounter`` on date_created: the oldest (stuck) chords.
CHORD_AGE_INDEX = "django_cele_chord_age_idx"


def content_type_field() -> models.CharField[str, str]:
    """How a task or group result is serialized: the column both tables share."""
    return models.CharField(
        _("Result Content Type"),
        max_length=128,
        help_text=_("Content type of the serialized result"),
    )


def content_encoding_field() -> models.CharField[str, str]:
    """How the serialized result is encoded as text: the column both tables share."""
    return models.CharField(
        _("Result Encoding"),
        max_length=64,
        help_text=_("Encoding of the serialized result ('binary' means base64 text)"),
    )


class TaskResult(models.Model):
    """One row per task id: its latest state, result and what ran it."""

    # 64-bit: every upsert draws an id, and 32-bit sequences run out on busy sites.
    id = models.BigAutoField(primary_key=True, verbose_name="ID")

    task_id = models.CharField(
        _("Task ID"),
        max_length=ID_MAX_LENGTH,
        unique=True,
        help_text=_("Celery ID of the task"),
    )
    periodic_task_name = models.CharField(
        _("Periodic Task Name"),
        max_length=255,
        null=True,
        help_text=_("Name of the periodic task (celery beat entry) that sent the task"),
    )
    task_name = models.CharField(
        _("Task Name"),
        max_length=ID_MAX_LENGTH,
        null=True,
        help_text=_("Name of the task"),
    )
    task_args = models.TextField(
        _("Task Positional Arguments"),
        null=True,
        help_text=_("Serialized representation of the positional arguments"),
    )
    task_kwargs = models.TextField(
        _("Task Named Arguments"),
        null=True,
        help_text=_("Serialized representation of the keyword arguments"),
    )
    status = models.CharField(
        _("Task State"),
        max_length=50,
        default=states.PENDING,
        help_text=_("Current state of the task"),
    )
    worker = models.CharField(
        _("Worker"),
        max_length=100,
        default=None,
        null=True,
        help_text=_("Host name of the worker that ran the task"),
    )
    content_type = content_type_field()
    content_encoding = content_encoding_field()
    result = models.TextField(
        _("Result Data"),
        null=True,
        default=None,
        editable=False,
        help_text=_("The serialized return value (or exception) of the task"),
    )
    date_created = models.DateTimeField(
        _("Created DateTime"),
        auto_now_add=True,
        help_text=_("When the row was first written"),
    )
    date_started = models.DateTimeField(
        _("Started DateTime"),
        null=True,
        default=None,
        help_text=_("When a worker started the task (with task_track_started)"),
    )
    date_done = models.DateTimeField(
        _("Completed DateTime"),
        auto_now=True,
        help_text=_("When the latest state was stored; for ready states, when the task ended"),
    )
    retries = models.PositiveIntegerField(
        _("Retries"),
        null=True,
        default=None,
        help_text=_("How many times the task had been retried (with result_extended)"),
    )
    queue = models.CharField(
        _("Queue"),
        max_length=255,
        null=True,
        default=None,
        help_text=_("Routing key the task was delivered with (with result_extended)"),
    )
    traceback = models.TextField(
        _("Traceback"),
        blank=True,
        null=True,
        help_text=_("Traceback of the failure, if the task failed"),
    )
    meta = models.TextField(
        _("Task Meta Information"),
        null=True,
        default=None,
        editable=False,
        help_text=_("Serialized extra information: children and user metadata"),
    )

    objects = managers.TaskResultManager()

    class Meta:
        ordering = ["-date_done"]
        verbose_name = _("task result")
        verbose_name_plural = _("task results")
        indexes = [
            models.Index(fields=["task_name"], name="django_cele_task_na_08aec9_idx"),
            models.Index(fields=["status"], name="django_cele_status_9b6201_idx"),
            models.Index(fields=["worker"], name="django_cele_worker_d54dd8_idx"),
            models.Index(fields=["date_created"], name="django_cele_date_cr_f04a50_idx"),
            models.Index(fields=["date_done"], name="django_cele_date_do_f59aad_idx"),
            models.Index(fields=["periodic_task_name"], name="django_cele_periodi_1993cf_idx"),
            # The admin overview's oldest PENDING/STARTED tasks: the first rows of one state.
            models.Index(fields=["status", "date_created"], name=TASK_STATE_AGE_INDEX),
            # The overview's counts per state: the newest rows' states, read from the index alone.
            models.Index(fields=["date_done", "status"], name=TASK_DONE_STATE_INDEX),
        ]
        permissions = [("rerun_taskresult", _("Can re-run task results"))]

    def __str__(self) -> str:
        return f"<Task: {self.task_id} ({self.status})>"

    def as_dict(self) -> dict[str, Any]:
        """The row's raw (still serialized) values, under the names upstream used."""
        return {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "task_args": self.task_args,
            "task_kwargs": self.task_kwargs,
            "status": self.status,
            "result": self.result,
            "date_done": self.date_done,
            "traceback": self.traceback,
            "meta": self.meta,
            "worker": self.worker,
            "retries": self.retries,
            "queue": self.queue,
        }


class ChordCounter(models.Model):
    """How many parts of a chord header are still to finish."""

    id = models.BigAutoField(primary_key=True, verbose_name="ID")

    group_id = models.CharField(
        _("Group ID"),
        max_length=ID_MAX_LENGTH,
        unique=True,
        help_text=_("Celery ID of the chord header group"),
    )
    sub_tasks = models.TextField(
        help_text=_("JSON list of the header's result tuples; use .group_result() to decode"),
    )
    count = models.PositiveIntegerField(
        help_text=_("Parts of the header that have not finished yet"),
    )
    # Both nullable: during a rolling deploy the code we replace still inserts
    # counters without them.
    counted_parts = models.TextField(
        _("Counted parts"),
        null=True,
        default="|",
        editable=False,
        help_text=_("Ids of the parts already counted, '|'-separated: a redelivered part counts once"),
    )
    date_created = models.DateTimeField(
        _("Created DateTime"),
        auto_now_add=True,
        null=True,
        help_text=_("When the chord was applied; cleanup() removes counters older than result_expires"),
    )

    objects = managers.ChordCounterManager()

    class Meta:
        indexes = [
            # The admin's stuck chords: the oldest counters, whatever the table's size.
            models.Index(fields=["date_created"], name=CHORD_AGE_INDEX),
        ]

    def __str__(self) -> str:
        return f"<ChordCounter: {self.group_id} ({self.count} left)>"

    def group_result(self, app: Celery | None = None) -> CeleryGroupResult:
        """The chord header as a :class:`celery.result.GroupResult`."""
        from celery.result import GroupResult as CeleryGroupResult
        from celery.result import result_from_tuple

        return CeleryGroupResult(
            self.group_id,
            [result_from_tuple(item, app=app) for item in json.loads(self.sub_tasks)],
            app=app,
        )


class ChordPart(models.Model):
    """One part of a chord header: one row per part, so counting a part costs the same at any size.

    The unique key on (group, task) makes a redelivered part count once; the
    rows live beside their :class:`ChordCounter` (same alias) and go with it.
    ``counted`` is false only for a part written ahead, when the chord starts,
    on engines that count a part in one statement by flipping it
    (:func:`~django_celery_results.engines.prepares_chord_parts`).
    """

    id = models.BigAutoField(primary_key=True, verbose_name="ID")

    group_id = models.CharField(
        _("Group ID"),
        max_length=ID_MAX_LENGTH,
        help_text=_("Celery ID of the chord header group"),
    )
    task_id = models.CharField(
        _("Task ID"),
        max_length=ID_MAX_LENGTH,
        help_text=_("Celery ID of the task"),
    )
    counted = models.BooleanField(default=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group_id", "task_id"], name=CHORD_PART_UNIQUE),
        ]

    def __str__(self) -> str:
        return f"<ChordPart: {self.task_id} of {self.group_id}>"


class GroupResult(models.Model):
    """A saved :class:`celery.result.GroupResult` (``GroupResult.save()``)."""

    id = models.BigAutoField(primary_key=True, verbose_name="ID")

    group_id = models.CharField(
        _("Group ID"),
        max_length=ID_MAX_LENGTH,
        unique=True,
        help_text=_("Celery ID of the group"),
    )
    date_created = models.DateTimeField(
        _("Created DateTime"),
        auto_now_add=True,
        help_text=_("When the group result was first saved"),
    )
    date_done = models.DateTimeField(
        _("Completed DateTime"),
        auto_now=True,
        help_text=_("When the group result was last saved"),
    )
    content_type = content_type_field()
    content_encoding = content_encoding_field()
    result = models.TextField(
        _("Result Data"),
        null=True,
        default=None,
        editable=False,
        help_text=_("The serialized list of member result tuples"),
    )

    objects = managers.GroupResultManager()

    class Meta:
        ordering = ["-date_done"]
        verbose_name = _("group result")
        verbose_name_plural = _("group results")
        indexes = [
            models.Index(fields=["date_created"], name="django_cele_date_cr_bd6c1d_idx"),
            models.Index(fields=["date_done"], name="django_cele_date_do_caae0e_idx"),
        ]

    def __str__(self) -> str:
        return f"<Group: {self.group_id}>"

    def as_dict(self) -> dict[str, Any]:
        """The row's raw values, under the names upstream used."""
        return {"group_id": self.group_id, "result": self.result, "date_done": self.date_done}
