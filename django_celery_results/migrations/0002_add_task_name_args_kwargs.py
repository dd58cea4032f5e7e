from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0001_initial")]

    operations = [
        migrations.AddField(
            "taskresult",
            "task_args",
            models.TextField(
                help_text="Serialized representation of the positional arguments",
                null=True,
                verbose_name="Task Positional Arguments",
            ),
        ),
        migrations.AddField(
            "taskresult",
            "task_kwargs",
            models.TextField(
                help_text="Serialized representation of the keyword arguments",
                null=True,
                verbose_name="Task Named Arguments",
            ),
        ),
        migrations.AddField(
            "taskresult", "task_name", models.CharField(max_length=255, null=True, verbose_name="task name")
        ),
    ]
