# The task result table as the first release created it.
from django.db import migrations, models

from django_celery_results.conf import app_settings

STATES = [(s, s) for s in ("FAILURE", "PENDING", "RECEIVED", "RETRY", "REVOKED", "STARTED", "SUCCESS")]


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="TaskResult",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                (
                    "task_id",
                    models.CharField(
                        max_length=app_settings.task_id_max_length, unique=True, verbose_name="task id"
                    ),
                ),
                (
                    "status",
                    models.CharField(choices=STATES, default="PENDING", max_length=50, verbose_name="state"),
                ),
                (
                    "content_type",
                    models.CharField(
                        help_text="Content type of the serialized result",
                        max_length=128,
                        verbose_name="Result Content Type",
                    ),
                ),
                (
                    "content_encoding",
                    models.CharField(
                        help_text="Encoding of the serialized result ('binary' means base64 text)",
                        max_length=64,
                        verbose_name="Result Encoding",
                    ),
                ),
                (
                    "result",
                    models.TextField(
                        default=None,
                        editable=False,
                        help_text="The serialized return value (or exception) of the task",
                        null=True,
                        verbose_name="Result Data",
                    ),
                ),
                ("date_done", models.DateTimeField(auto_now=True, verbose_name="done at")),
                (
                    "traceback",
                    models.TextField(
                        blank=True,
                        help_text="Traceback of the failure, if the task failed",
                        null=True,
                        verbose_name="Traceback",
                    ),
                ),
                ("hidden", models.BooleanField(db_index=True, default=False, editable=False)),
                (
                    "meta",
                    models.TextField(
                        default=None,
                        editable=False,
                        help_text="Serialized extra information: children and user metadata",
                        null=True,
                        verbose_name="Task Meta Information",
                    ),
                ),
            ],
            options={"verbose_name": "task result", "verbose_name_plural": "task results"},
        ),
    ]
