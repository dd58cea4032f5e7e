# Exact task and group ids on MySQL/MariaDB. The default collations there
# ignore case, accents and trailing spaces, so "abc", "ABC", "àbc" and "abc "
# were one task (one row under the unique key). The three id columns get the
# binary collation of their own character set, without padding where the
# server has one; type, length, nullability and charset stay as they are.
# PostgreSQL and SQLite compare exactly already: nothing to do there. The
# model state does not change: the collation is an engine detail, not a field
# option (a ``db_collation`` name would have to exist on every engine).
# engines.exact_id_column_sql says which statements; see the upgrade notes for the cost.
from __future__ import annotations

from collections.abc import Callable

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from django_celery_results import engines

#: (model, field) of each id column.
ID_COLUMNS = (("taskresult", "task_id"), ("groupresult", "group_id"), ("chordcounter", "group_id"))

StatementsFor = Callable[[BaseDatabaseWrapper, str, str], list[str]]


def altering_id_columns(statements_for: StatementsFor) -> Callable[[Apps, BaseDatabaseSchemaEditor], None]:
    """A RunPython function that runs the statements ``statements_for`` gives for each id column."""

    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        for model_name, field_name in ID_COLUMNS:
            model = apps.get_model("django_celery_results", model_name)
            column = model._meta.get_field(field_name).column
            for sql in statements_for(schema_editor.connection, model._meta.db_table, column):
                # No parameters: a "%" in a kept column comment must reach the server as is.
                schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("django_celery_results", "0017_bigint_primary_keys")]

    operations = [
        migrations.RunPython(
            altering_id_columns(engines.exact_id_column_sql),
            altering_id_columns(engines.default_id_column_sql),
            # MySQL cannot roll DDL back, and Django refuses DDL inside a transaction there.
            atomic=False,
        ),
    ]
