# With result_extended, rows also record the retry count and the queue (as
# Celery's own database backend does).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0015_chordcounter_counted_parts_date_created")]

    operations = [
        migrations.AddField(
            "taskresult",
            "retries",
            models.PositiveIntegerField(
                default=None,
                help_text="How many times the task had been retried (with result_extended)",
                null=True,
                verbose_name="Retries",
            ),
        ),
        migrations.AddField(
            "taskresult",
            "queue",
            models.CharField(
                default=None,
                help_text="Routing key the task was delivered with (with result_extended)",
                max_length=255,
                null=True,
                verbose_name="Queue",
            ),
        ),
    ]
