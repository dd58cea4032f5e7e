# Chord parts get a row each (group_id, task_id, unique together) instead of
# being appended to ChordCounter.counted_parts: counting a part then costs the
# same at any chord size, and any task id works (the '|'-separated text with
# LIKE lookups lost ids holding '|', '%' or '_', and ids differing in case on
# SQLite). On MySQL/MariaDB both id columns compare exactly, as 0018 made the
# other id columns. The ids already in counters' counted_parts move into part
# rows, and counted_parts goes back to '|', so chords in flight at the upgrade
# keep counting each part once. The column itself stays (installed schema).
from __future__ import annotations

from collections.abc import Callable

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from django_celery_results import engines
from django_celery_results.conf import app_settings

#: The id columns of the new table that must compare exactly on MySQL/MariaDB.
ID_COLUMNS = ("group_id", "task_id")
#: Part rows inserted per statement when moving counted_parts.
BATCH = 1000

StatementsFor = Callable[[BaseDatabaseWrapper, str, str], list[str]]


def altering_part_columns(statements_for: StatementsFor) -> Callable[[Apps, BaseDatabaseSchemaEditor], None]:
    """A RunPython function running ``statements_for`` (0018's engine helpers) on both id columns."""

    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        model = apps.get_model("django_celery_results", "ChordPart")
        for field_name in ID_COLUMNS:
            field = model._meta.get_field(field_name)
            assert isinstance(field, models.Field)
            for sql in statements_for(schema_editor.connection, model._meta.db_table, str(field.column)):
                schema_editor.execute(sql, params=None)

    return run


def move_counted_parts(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Each id in a counter's counted_parts becomes a part row; counted_parts is reset to '|'."""
    alias = schema_editor.connection.alias
    counter_model = apps.get_model("django_celery_results", "ChordCounter")
    part_model = apps.get_model("django_celery_results", "ChordPart")
    limit = app_settings.task_id_max_length
    counters = (
        counter_model.objects.using(alias)
        .exclude(counted_parts__isnull=True)
        .exclude(counted_parts="|")
        .exclude(counted_parts="")
    )
    for pk, group_id, text in counters.values_list("pk", "group_id", "counted_parts").iterator():
        # An id longer than the column could never be a stored task's: it cannot be redelivered.
        ids = sorted({part for part in str(text).split("|") if part and len(part) <= limit})
        for start in range(0, len(ids), BATCH):
            part_model.objects.using(alias).bulk_create(
                [part_model(group_id=group_id, task_id=task_id) for task_id in ids[start : start + BATCH]],
                ignore_conflicts=True,
            )
        counter_model.objects.using(alias).filter(pk=pk).update(counted_parts="|")


def restore_counted_parts(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """The reverse: each counter's part rows go back into its counted_parts text, and leave the table.

    Emptied first, because 0018's collations would then merge ids the part
    rows kept apart (``a`` and ``A``) before the table is dropped.
    """
    alias = schema_editor.connection.alias
    counter_model = apps.get_model("django_celery_results", "ChordCounter")
    part_model = apps.get_model("django_celery_results", "ChordPart")
    parts: dict[str, list[str]] = {}
    for group_id, task_id in (
        part_model.objects.using(alias).order_by("pk").values_list("group_id", "task_id")
    ):
        parts.setdefault(group_id, []).append(task_id)
    for group_id, ids in parts.items():
        counter_model.objects.using(alias).filter(group_id=group_id).update(
            counted_parts="|" + "".join(f"{task_id}|" for task_id in ids),
        )
    part_model.objects.using(alias).all().delete()


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0018_exact_ids_on_mysql")]

    operations = [
        migrations.CreateModel(
            name="ChordPart",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "group_id",
                    models.CharField(
                        help_text="Celery ID of the chord header group",
                        max_length=app_settings.task_id_max_length,
                        verbose_name="Group ID",
                    ),
                ),
                (
                    "task_id",
                    models.CharField(
                        help_text="Celery ID of the task",
                        max_length=app_settings.task_id_max_length,
                        verbose_name="Task ID",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("group_id", "task_id"), name="django_cele_chordpart_uniq"
                    ),
                ],
            },
        ),
        migrations.RunPython(
            altering_part_columns(engines.exact_id_column_sql),
            altering_part_columns(engines.default_id_column_sql),
            # MySQL cannot roll DDL back, and Django refuses DDL inside a transaction there.
            atomic=False,
        ),
        migrations.RunPython(move_counted_parts, restore_counted_parts),
    ]
