from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0011_taskresult_periodic_task_name")]

    operations = [
        migrations.AddField(
            "taskresult",
            "date_started",
            models.DateTimeField(
                default=None,
                help_text="When a worker started the task (with task_track_started)",
                null=True,
                verbose_name="Started DateTime",
            ),
        ),
    ]
