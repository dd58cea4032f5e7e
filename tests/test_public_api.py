"""Every public name of the drop-in contract exists where users import it from."""

from __future__ import annotations

import inspect
from datetime import datetime
from importlib.metadata import entry_points

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models
from django.test import override_settings

import django_celery_results
from django_celery_results import utils


def test_version_names() -> None:
    assert isinstance(django_celery_results.__version__, str)
    assert django_celery_results.VERSION is django_celery_results.version_info
    assert django_celery_results.version_info[:3] >= (3, 0, 0)
    assert ".".join(map(str, django_celery_results.VERSION[:3])) in django_celery_results.__version__


def test_app_config() -> None:
    config = apps.get_app_config("django_celery_results")
    assert type(config).__module__ + "." + type(config).__name__ == (
        "django_celery_results.apps.CeleryResultConfig"
    )
    assert (config.name, config.label, str(config.verbose_name)) == (
        "django_celery_results",
        "django_celery_results",
        "Celery Results",
    )
    assert config.default_auto_field == "django.db.models.AutoField"
    # The tables move to 64-bit ids in migration 0017; the app default stays as upstream's.
    for model in config.get_models():
        assert isinstance(model._meta.pk, models.BigAutoField)


def test_backend_entry_points() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="celery.result_backends")}
    assert found["django-db"] == "django_celery_results.backends:DatabaseBackend"
    assert found["django-cache"] == "django_celery_results.backends:CacheBackend"


def test_backend_import_paths() -> None:
    from django_celery_results.backends import CacheBackend, DatabaseBackend
    from django_celery_results.backends.cache import CacheBackend as Cache2
    from django_celery_results.backends.database import DatabaseBackend as Database2

    assert (CacheBackend, DatabaseBackend) == (Cache2, Database2)
    for name in (
        "encode_content",
        "decode_content",
        "cleanup",
        "exception_safe_to_retry",
        "apply_chord",
        "on_chord_part_return",
        "store_result",
        "get_task_meta",
        "forget",
        "save_group",
        "restore_group",
        "delete_group",
        "task_result_exists",
    ):
        assert callable(getattr(DatabaseBackend, name)), name
    for name in ("get", "set", "delete", "encode", "decode"):
        assert callable(getattr(CacheBackend, name)), name
    assert isinstance(inspect.getattr_static(CacheBackend, "cache_backend"), property)


def test_model_helpers() -> None:
    from django_celery_results.models import ChordCounter, GroupResult, TaskResult

    assert list(inspect.signature(ChordCounter.group_result).parameters) == ["self", "app"]
    assert callable(TaskResult.as_dict) and callable(GroupResult.as_dict)


def test_views_and_admin_registration() -> None:
    from django_celery_results import views
    from django_celery_results.models import GroupResult, TaskResult

    for name in ("is_task_successful", "task_status", "is_group_successful", "group_status"):
        assert callable(getattr(views, name))
    assert admin.site.is_registered(TaskResult)
    assert admin.site.is_registered(GroupResult)


@pytest.mark.parametrize("use_tz", [True, False])
def test_now_follows_use_tz(use_tz: bool) -> None:
    with override_settings(USE_TZ=use_tz):
        moment = utils.now()
    assert isinstance(moment, datetime)
    assert (moment.tzinfo is not None) == use_tz
