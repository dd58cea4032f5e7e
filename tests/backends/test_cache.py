"""The ``django-cache`` backend: the configured cache alias, the configured serializer, expiry."""

from __future__ import annotations

from typing import Any

import pytest
from celery import states
from celery import uuid as celery_uuid
from celery.result import AsyncResult, GroupResult
from django.core.cache import caches
from kombu.exceptions import ContentDisallowed

from django_celery_results.backends.cache import CacheBackend


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    caches["default"].clear()
    caches["results"].clear()


def test_uses_the_cache_named_by_cache_backend(celery_app_factory: Any) -> None:
    backend = celery_app_factory("django-cache", cache_backend="results").backend
    assert backend.cache_backend is caches["results"]
    backend.mark_as_done("t", 5)
    assert caches["results"].get("celery-task-meta-t") is not None
    assert caches["default"].get("celery-task-meta-t") is None


def test_default_cache_when_unset(celery_app_factory: Any) -> None:
    backend = celery_app_factory("django-cache").backend
    assert backend.cache_backend is caches["default"]


def test_json_by_default_not_pickle(celery_app_factory: Any) -> None:
    backend = celery_app_factory("django-cache").backend
    backend.mark_as_done("j", {"a": [1, 2]})
    stored = caches["default"].get("celery-task-meta-j")
    assert isinstance(stored, str) and '"a": [1, 2]' in stored
    assert AsyncResult("j", backend=backend).result == {"a": [1, 2]}


def test_pickle_only_when_accepted(celery_app_factory: Any) -> None:
    writer = celery_app_factory(
        "django-cache", result_serializer="pickle", accept_content=["pickle", "json"]
    ).backend
    writer.mark_as_done("p", {b"bytes"})
    assert writer.get_task_meta("p", cache=False)["result"] == {b"bytes"}
    reader = celery_app_factory(
        "django-cache", result_serializer="pickle", accept_content=["json"], result_accept_content=["json"]
    ).backend
    with pytest.raises(ContentDisallowed):
        reader.get_task_meta("p", cache=False)


@pytest.mark.parametrize("expires", [None, 0])
def test_no_expiry_means_keep(celery_app_factory: Any, expires: int | None) -> None:
    backend = celery_app_factory("django-cache", result_expires=expires).backend
    backend.mark_as_done("keep", 1)
    # Django's timeout 0 would mean "expire at once": the value must still be there.
    assert AsyncResult("keep", backend=backend).result == 1


def test_expiry_is_passed_to_the_cache(celery_app_factory: Any) -> None:
    backend = celery_app_factory("django-cache", result_expires=120).backend
    assert backend._timeout == 120
    backend.mark_as_done("e", 1)
    assert AsyncResult("e", backend=backend).result == 1


def test_native_join_with_get_many(celery_app_factory: Any) -> None:
    app = celery_app_factory("django-cache")
    backend = app.backend
    assert backend.supports_native_join
    members = [AsyncResult(celery_uuid(), backend=backend) for _ in range(10)]
    for index, member in enumerate(members):
        backend.mark_as_done(member.id, index)
    group = GroupResult(celery_uuid(), members, app=app)
    assert group.join_native(timeout=5) == list(range(10))
    assert group.join(timeout=5) == list(range(10))


def test_failure_forget_and_groups(celery_app_factory: Any) -> None:
    app = celery_app_factory("django-cache")
    backend = app.backend
    backend.mark_as_failure("f", KeyError("k"), traceback="tb")
    result = AsyncResult("f", backend=backend)
    assert (result.state, result.traceback) == (states.FAILURE, "tb")
    assert isinstance(result.result, KeyError)
    result.forget()
    assert AsyncResult("f", backend=backend).state == states.PENDING

    group = GroupResult("g", [AsyncResult("x", backend=backend)], app=app)
    group.save(backend=backend)
    assert GroupResult.restore("g", backend=backend, app=app).results[0].id == "x"
    group.delete(backend=backend)
    assert GroupResult.restore("g", backend=backend, app=app) is None


def test_get_set_delete_encode_decode(celery_app_factory: Any) -> None:
    backend: CacheBackend = celery_app_factory("django-cache").backend
    backend.set("k", backend.encode({"v": 1}))
    assert backend.decode(backend.get("k")) == {"v": 1}
    backend.delete("k")
    assert backend.get("k") is None
