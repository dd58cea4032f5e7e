# Group results; named indexes replace the db_index flags of 0004/0005/0006/0008.
from __future__ import annotations

from django.db import migrations, models

from django_celery_results.conf import app_settings

ID_LENGTH = app_settings.task_id_max_length


def state_only_index(model_name: str, field: str, name: str) -> migrations.SeparateDatabaseAndState:
    # Release 2.1.0 created these (they duplicate the unique constraints); a
    # later fix removed them from this migration. 0010 drops them where they exist.
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AddIndex(model_name, models.Index(fields=[field], name=name))],
    )


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0008_chordcounter")]

    operations = [
        migrations.CreateModel(
            name="GroupResult",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                (
                    "group_id",
                    models.CharField(
                        help_text="Celery ID of the group",
                        max_length=ID_LENGTH,
                        unique=True,
                        verbose_name="Group ID",
                    ),
                ),
                (
                    "date_created",
                    models.DateTimeField(
                        auto_now_add=True,
                        help_text="When the group result was first saved",
                        verbose_name="Created DateTime",
                    ),
                ),
                (
                    "date_done",
                    models.DateTimeField(
                        auto_now=True,
                        help_text="When the group result was last saved",
                        verbose_name="Completed DateTime",
                    ),
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
                        help_text="The serialized list of member result tuples",
                        null=True,
                        verbose_name="Result Data",
                    ),
                ),
            ],
            options={
                "verbose_name": "group result",
                "verbose_name_plural": "group results",
                "ordering": ["-date_done"],
            },
        ),
        migrations.AlterField(
            "chordcounter",
            "group_id",
            models.CharField(
                help_text="Celery ID of the chord header group",
                max_length=ID_LENGTH,
                unique=True,
                verbose_name="Group ID",
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "date_created",
            models.DateTimeField(
                auto_now_add=True, help_text="When the row was first written", verbose_name="Created DateTime"
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "date_done",
            models.DateTimeField(
                auto_now=True,
                help_text="When the latest state was stored; for ready states, when the task ended",
                verbose_name="Completed DateTime",
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "status",
            models.CharField(
                choices=[
                    (s, s)
                    for s in ("FAILURE", "PENDING", "RECEIVED", "RETRY", "REVOKED", "STARTED", "SUCCESS")
                ],
                default="PENDING",
                max_length=50,
                verbose_name="Task State",
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "task_id",
            models.CharField(
                help_text="Celery ID of the task", max_length=ID_LENGTH, unique=True, verbose_name="Task ID"
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "task_name",
            models.CharField(
                help_text="Name of the task", max_length=ID_LENGTH, null=True, verbose_name="Task Name"
            ),
        ),
        migrations.AlterField(
            "taskresult",
            "worker",
            models.CharField(
                default=None,
                help_text="Host name of the worker that ran the task",
                max_length=100,
                null=True,
                verbose_name="Worker",
            ),
        ),
        state_only_index("chordcounter", "group_id", "django_cele_group_i_299b0d_idx"),
        state_only_index("taskresult", "task_id", "django_cele_task_id_7f8fca_idx"),
        migrations.AddIndex(
            "taskresult", models.Index(fields=["task_name"], name="django_cele_task_na_08aec9_idx")
        ),
        migrations.AddIndex(
            "taskresult", models.Index(fields=["status"], name="django_cele_status_9b6201_idx")
        ),
        migrations.AddIndex(
            "taskresult", models.Index(fields=["worker"], name="django_cele_worker_d54dd8_idx")
        ),
        migrations.AddIndex(
            "taskresult", models.Index(fields=["date_created"], name="django_cele_date_cr_f04a50_idx")
        ),
        migrations.AddIndex(
            "taskresult", models.Index(fields=["date_done"], name="django_cele_date_do_f59aad_idx")
        ),
        state_only_index("groupresult", "group_id", "django_cele_group_i_3cddec_idx"),
        migrations.AddIndex(
            "groupresult", models.Index(fields=["date_created"], name="django_cele_date_cr_bd6c1d_idx")
        ),
        migrations.AddIndex(
            "groupresult", models.Index(fields=["date_done"], name="django_cele_date_do_caae0e_idx")
        ),
    ]
