# Any state name is allowed (custom states from update_state()).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0013_taskresult_django_cele_periodi_1993cf_idx")]

    operations = [
        migrations.AlterField(
            "taskresult",
            "status",
            models.CharField(
                default="PENDING",
                help_text="Current state of the task",
                max_length=50,
                verbose_name="Task State",
            ),
        ),
    ]
