# Indexes on status, task name and completion date (replaced by named indexes in 0009).
from django.db import migrations, models

from django_celery_results.conf import app_settings

STATES = [(s, s) for s in ("FAILURE", "PENDING", "RECEIVED", "RETRY", "REVOKED", "STARTED", "SUCCESS")]
ID_LENGTH = app_settings.task_id_max_length


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0003_auto_20181106_1101")]

    operations = [
        migrations.AlterField(
            "taskresult",
            "date_done",
            models.DateTimeField(auto_now=True, db_index=True, verbose_name="Completed DateTime"),
        ),
        migrations.AlterField(
            "taskresult",
            "hidden",
            models.BooleanField(db_index=True, default=False, editable=False, verbose_name="Hidden"),
        ),
        migrations.AlterField(
            "taskresult",
            "status",
            models.CharField(
                choices=STATES, db_index=True, default="PENDING", max_length=50, verbose_name="Task State"
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "task_id",
            models.CharField(db_index=True, max_length=ID_LENGTH, unique=True, verbose_name="Task ID"),
        ),
        migrations.AlterField(
            "taskresult",
            "task_name",
            models.CharField(db_index=True, max_length=ID_LENGTH, null=True, verbose_name="Task Name"),
        ),
    ]
