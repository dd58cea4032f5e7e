from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0004_auto_20190516_0412")]

    operations = [
        migrations.AddField(
            "taskresult",
            "worker",
            models.CharField(db_index=True, default=None, max_length=100, null=True, verbose_name="Worker"),
        ),
    ]
