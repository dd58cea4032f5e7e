"""JSON views: names and URLs of the contract, 404 for unknown ids, access control."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app, states
from celery.result import AsyncResult, GroupResult
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def celery_default(celery_app_factory: Any) -> Any:
    """The views use the current Celery app; make ours current for the test."""
    app = celery_app_factory()
    previous = current_app._get_current_object()
    app.set_current()
    yield app
    previous.set_current()


@pytest.fixture
def user_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("viewer", password="x"))
    return client


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("staff", password="x", is_staff=True))
    return client


def test_url_names_and_paths() -> None:
    assert reverse("celery-is_task_successful", args=["abc-1"]).endswith("/task/done/abc-1/")
    assert reverse("celery-task_status", args=["abc"]).endswith("/task/status/abc/")
    assert reverse("celery-is_group_successful", args=["g.1"]).endswith("/group/done/g.1/")
    assert reverse("celery-group_status", args=["g"]).endswith("/group/status/g/")


def test_id_first_urls_still_resolve(user_client: Client, celery_default: Any) -> None:
    celery_default.backend.mark_as_done("old-style", 1)
    assert user_client.get("/results/old-style/done/").json() == {
        "task": {"id": "old-style", "executed": True}
    }
    assert user_client.get("/results/old-style/status/").json()["task"]["status"] == states.SUCCESS


def test_anonymous_users_are_refused_by_default(client: Client, celery_default: Any) -> None:
    celery_default.backend.mark_as_done("t", 1)
    response = client.get(reverse("celery-task_status", args=["t"]))
    assert response.status_code == 403
    assert "result" not in response.json()


def test_public_views_setting_opens_them(client: Client, celery_default: Any) -> None:
    celery_default.backend.mark_as_done("t", 1)
    with override_settings(DJANGO_CELERY_RESULTS={"PUBLIC_VIEWS": True}):
        response = client.get(reverse("celery-task_status", args=["t"]))
    assert response.status_code == 200
    assert response.json() == {"task": {"id": "t", "status": states.SUCCESS, "result": 1}}


def test_task_views(user_client: Client, celery_default: Any) -> None:
    celery_default.backend.mark_as_done("ok", {"answer": 42})
    done = user_client.get(reverse("celery-is_task_successful", args=["ok"])).json()
    assert done == {"task": {"id": "ok", "executed": True}}
    status = user_client.get(reverse("celery-task_status", args=["ok"])).json()
    assert status == {"task": {"id": "ok", "status": states.SUCCESS, "result": {"answer": 42}}}


def test_unknown_ids_answer_404_json(user_client: Client, celery_default: Any) -> None:
    for name in ("celery-is_task_successful", "celery-task_status",
                 "celery-is_group_successful", "celery-group_status"):
        response = user_client.get(reverse(name, args=["missing-id"]))
        assert response.status_code == 404, name
        assert response.json()["id"] == "missing-id"


def test_failure_shows_traceback_to_staff_only(client: Client, celery_default: Any) -> None:
    celery_default.backend.mark_as_failure("bad", ValueError("<b>no</b>"), traceback="Traceback: secret")
    url = reverse("celery-task_status", args=["bad"])

    client.force_login(User.objects.create_user("plain", password="x"))
    plain = client.get(url).json()["task"]
    assert plain["status"] == states.FAILURE
    assert plain["exc"] == "builtins.ValueError"
    assert "traceback" not in plain

    client.force_login(User.objects.create_user("staffer", password="x", is_staff=True))
    staff = client.get(url).json()["task"]
    assert staff["traceback"] == "Traceback: secret"
    assert "ValueError" in staff["result"]


def test_results_json_cannot_carry_come_back_as_repr(user_client: Client, celery_app_factory: Any) -> None:
    app = celery_app_factory(result_serializer="pickle", accept_content=["json", "pickle"])
    previous = current_app._get_current_object()
    app.set_current()
    try:
        app.backend.mark_as_done("bytes", {b"raw"})
        body = user_client.get(reverse("celery-task_status", args=["bytes"])).json()
    finally:
        previous.set_current()
    assert body["task"]["result"] == "{b'raw'}"


def test_group_views(staff_client: Client, celery_default: Any) -> None:
    backend = celery_default.backend
    backend.mark_as_done("m1", 1)
    backend.mark_as_failure("m2", KeyError("k"), traceback="tb")
    GroupResult("grp", [AsyncResult("m1"), AsyncResult("m2")], app=celery_default).save(backend=backend)

    done = staff_client.get(reverse("celery-is_group_successful", args=["grp"])).json()
    assert done == {"group": {"id": "grp", "results": [
        {"id": "m1", "executed": True}, {"id": "m2", "executed": False},
    ]}}
    status = staff_client.get(reverse("celery-group_status", args=["grp"])).json()["group"]
    assert status["results"][0] == {"id": "m1", "result": 1, "status": states.SUCCESS}
    assert status["results"][1]["status"] == states.FAILURE
    assert "KeyError" in status["results"][1]["result"]


def test_views_work_with_the_cache_backend(user_client: Client, celery_app_factory: Any) -> None:
    app = celery_app_factory("django-cache")
    previous = current_app._get_current_object()
    app.set_current()
    try:
        app.backend.mark_as_done("cached", 5)
        GroupResult("cached-group", [AsyncResult("cached")], app=app).save(backend=app.backend)
        task = user_client.get(reverse("celery-task_status", args=["cached"]))
        group = user_client.get(reverse("celery-is_group_successful", args=["cached-group"]))
        missing = user_client.get(reverse("celery-task_status", args=["not-cached"]))
    finally:
        previous.set_current()
    assert task.json() == {"task": {"id": "cached", "status": states.SUCCESS, "result": 5}}
    assert group.json()["group"]["results"] == [{"id": "cached", "executed": True}]
    assert missing.status_code == 404
