from django.db import migrations, models

from django_celery_results.conf import app_settings


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0007_remove_taskresult_hidden")]

    operations = [
        migrations.CreateModel(
            name="ChordCounter",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                (
                    "group_id",
                    models.CharField(
                        db_index=True,
                        max_length=app_settings.task_id_max_length,
                        unique=True,
                        verbose_name="Group ID",
                    ),
                ),
                (
                    "sub_tasks",
                    models.TextField(
                        help_text="JSON list of the header's result tuples; use .group_result() to decode"
                    ),
                ),
                (
                    "count",
                    models.PositiveIntegerField(help_text="Parts of the header that have not finished yet"),
                ),
            ],
        ),
    ]
