# Part rows get a ``counted`` flag. On MySQL/MariaDB a chord's part rows are
# written ahead when it starts (not counted), and a finished part counts by
# flipping its row and decrementing the counter in one multi-table UPDATE: one
# statement in autocommit instead of a transaction of four round trips. Every
# existing row stands for a counted part, hence the default.
from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0020_admin_rerun_permission_and_age_indexes")]

    operations = [
        migrations.AddField(
            model_name="chordpart",
            name="counted",
            field=models.BooleanField(default=True, editable=False),
        ),
    ]
