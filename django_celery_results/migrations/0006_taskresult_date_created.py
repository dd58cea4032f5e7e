# date_created starts as the completion date of existing rows.
from __future__ import annotations

import django.utils.timezone
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def fill_date_created(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    TaskResult = apps.get_model("django_celery_results", "TaskResult")
    TaskResult.objects.using(schema_editor.connection.alias).update(date_created=models.F("date_done"))


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0005_taskresult_worker")]

    operations = [
        migrations.AddField(
            "taskresult",
            "date_created",
            models.DateTimeField(
                auto_now_add=True,
                db_index=True,
                default=django.utils.timezone.now,
                verbose_name="Created DateTime",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_date_created, migrations.RunPython.noop),
    ]
