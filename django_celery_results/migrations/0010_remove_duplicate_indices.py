# Drop the duplicate id indexes that release 2.1.0's 0009 created, where they exist.
from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

DUPLICATES = [
    ("chordcounter", "django_cele_group_i_299b0d_idx"),
    ("groupresult", "django_cele_group_i_3cddec_idx"),
    ("taskresult", "django_cele_task_id_7f8fca_idx"),
]


def drop_duplicates(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    connection = schema_editor.connection
    for model_name, index_name in DUPLICATES:
        model = apps.get_model("django_celery_results", model_name)
        table = model._meta.db_table
        with connection.cursor() as cursor:
            existing = connection.introspection.get_constraints(cursor, table)
        if index_name in existing:
            # A private method of Django's that django-stubs does not declare.
            schema_editor.execute(schema_editor._delete_index_sql(model, index_name))  # type: ignore[attr-defined]


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0009_groupresult")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_duplicates, migrations.RunPython.noop)],
            state_operations=[migrations.RemoveIndex(model, name) for model, name in DUPLICATES],
        ),
    ]
