# 64-bit primary keys. A 32-bit id sequence runs out after 2**31 rows written
# over the table's life (deleted rows included), and then every write fails.
# On large tables this rewrites the table under an exclusive lock (PostgreSQL:
# ALTER COLUMN TYPE bigint; MySQL/MariaDB: ALTER TABLE copies the table;
# SQLite: the table is rebuilt): see the upgrade notes.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0016_taskresult_retries_queue")]

    operations = [
        migrations.AlterField(
            model, "id", models.BigAutoField(primary_key=True, serialize=False, verbose_name="ID")
        )
        for model in ("taskresult", "groupresult", "chordcounter")
    ]
