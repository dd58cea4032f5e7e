# Chord counters remember which parts they counted (redeliveries count once)
# and when they were created (cleanup of abandoned chords).
from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.utils import timezone


def date_existing_counters(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    ChordCounter = apps.get_model("django_celery_results", "ChordCounter")
    ChordCounter.objects.using(schema_editor.connection.alias).filter(date_created__isnull=True).update(
        date_created=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0014_alter_taskresult_status")]

    operations = [
        migrations.AddField(
            "chordcounter",
            "counted_parts",
            models.TextField(
                default="|",
                editable=False,
                help_text="Ids of the parts already counted, '|'-separated: a redelivered part counts once",
                null=True,
                verbose_name="Counted parts",
            ),
        ),
        migrations.AddField(
            "chordcounter",
            "date_created",
            models.DateTimeField(
                auto_now_add=True,
                help_text="When the chord was applied; cleanup() removes counters older than result_expires",
                null=True,
                verbose_name="Created DateTime",
            ),
        ),
        migrations.RunPython(date_existing_counters, migrations.RunPython.noop),
    ]
