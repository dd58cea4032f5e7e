# The admin: a dedicated permission for re-running tasks (no schema change);
# an index on (status, date_created) so the overview's oldest PENDING/STARTED
# tasks are the first entries of one index range; one on (date_done, status)
# so its counts per state read the newest entries of an index and never the
# table; one on the chord counters' date_created so stuck chords are found
# without reading the table. Building the task indexes reads the whole table
# (minutes on tens of millions of rows; PostgreSQL blocks writes to the table
# meanwhile, InnoDB builds them online).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0019_chordpart")]

    operations = [
        migrations.AlterModelOptions(
            name="taskresult",
            options={
                "ordering": ["-date_done"],
                "permissions": [("rerun_taskresult", "Can re-run task results")],
                "verbose_name": "task result",
                "verbose_name_plural": "task results",
            },
        ),
        migrations.AddIndex(
            model_name="chordcounter",
            index=models.Index(fields=["date_created"], name="django_cele_chord_age_idx"),
        ),
        migrations.AddIndex(
            model_name="taskresult",
            index=models.Index(fields=["status", "date_created"], name="django_cele_status_age_idx"),
        ),
        migrations.AddIndex(
            model_name="taskresult",
            index=models.Index(fields=["date_done", "status"], name="django_cele_done_state_idx"),
        ),
    ]
