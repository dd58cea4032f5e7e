from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0010_remove_duplicate_indices")]

    operations = [
        migrations.AddField(
            "taskresult",
            "periodic_task_name",
            models.CharField(
                help_text="Name of the periodic task (celery beat entry) that sent the task",
                max_length=255,
                null=True,
                verbose_name="Periodic Task Name",
            ),
        ),
    ]
