"""JSON views: names and URLs of the contract, 404 for unknown ids, access control, strict JSON."""

from __future__ import annotations

import base64
import json
import math
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from celery import current_app, states
from celery.result import AsyncResult, GroupResult
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results import views
from django_celery_results.models import GroupResult as GroupResultRow
from django_celery_results.models import TaskResult
from tests.support.strategies import safe_text

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
    for name in (
        "celery-is_task_successful",
        "celery-task_status",
        "celery-is_group_successful",
        "celery-group_status",
    ):
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
    assert done == {
        "group": {
            "id": "grp",
            "results": [
                {"id": "m1", "executed": True},
                {"id": "m2", "executed": False},
            ],
        }
    }
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


# -- strict JSON: non-finite floats ------------------------------------------------------------------


def strict_json(response: HttpResponse) -> Any:
    """The body parsed as JSON proper: ``Infinity``, ``-Infinity`` and ``NaN`` are refused."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    assert response["Content-Type"] == "application/json"
    return json.loads(response.content, parse_constant=refuse)


def documented(value: Any) -> Any:
    """The documented answer for a stored JSON value: non-finite floats as strings, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [documented(item) for item in value]
    if isinstance(value, dict):
        return {key: documented(item) for key, item in value.items()}
    return value


NON_FINITE = (float("inf"), float("-inf"), float("nan"))


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and any(map(has_non_finite, value))


#: JSON values holding at least one infinite or NaN float, at any depth.
json_with_non_finite = st.recursive(
    st.none() | st.booleans() | st.integers() | safe_text | st.floats() | st.sampled_from(NON_FINITE),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(safe_text, children, max_size=4),
    max_leaves=12,
).filter(has_non_finite)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
        ({"x": [1.0, float("inf")]}, {"x": [1.0, "Infinity"]}),
        ([{"deep": [[float("-inf"), float("nan")]]}, 2.5], [{"deep": [["-Infinity", "NaN"]]}, 2.5]),
    ],
)
def test_non_finite_floats_are_sent_as_strings(
    user_client: Client,
    celery_default: Any,
    value: Any,
    shown: Any,
) -> None:
    backend = celery_default.backend
    backend.mark_as_done("odd", value)
    GroupResult("odd-group", [AsyncResult("odd")], app=celery_default).save(backend=backend)

    task = strict_json(user_client.get(reverse("celery-task_status", args=["odd"])))
    group = strict_json(user_client.get(reverse("celery-group_status", args=["odd-group"])))

    assert task == {"task": {"id": "odd", "status": states.SUCCESS, "result": shown}}
    assert group["group"]["results"] == [{"id": "odd", "result": shown, "status": states.SUCCESS}]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_with_non_finite)
def test_any_stored_json_answers_strict_json_in_the_documented_form(
    user_client: Client,
    celery_default: Any,
    value: Any,
) -> None:
    backend = celery_default.backend
    task_id, group_id = f"t-{uuid.uuid4()}", f"g-{uuid.uuid4()}"
    backend.mark_as_done(task_id, value)
    GroupResult(group_id, [AsyncResult(task_id)], app=celery_default).save(backend=backend)

    task = strict_json(user_client.get(reverse("celery-task_status", args=[task_id])))
    group = strict_json(user_client.get(reverse("celery-group_status", args=[group_id])))

    assert task["task"]["result"] == documented(value)
    assert group["group"]["results"][0]["result"] == documented(value)


@settings(max_examples=300, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | safe_text | st.floats() | st.sampled_from(NON_FINITE),
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(safe_text, children, max_size=4)
        ),
        max_leaves=16,
    )
)
def test_json_safe_values_encode_strictly_and_keep_their_documented_form(value: Any) -> None:
    safe = views._json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == documented(value)


# -- rows that cannot be read ---------------------------------------------------------------------------

UNPICKLED: list[str] = []


def _record_unpickling() -> str:
    UNPICKLED.append("unpickled")
    return "unpickled"


class LoudWhenUnpickled:
    """Pickles to a call of :func:`_record_unpickling`: loading it shows."""

    def __reduce__(self) -> tuple[Callable[[], str], tuple[()]]:
        return _record_unpickling, ()


JSON = {"content_type": "application/json", "content_encoding": "utf-8"}
PICKLE = {"content_type": "application/x-python-serialize", "content_encoding": "binary"}
#: Rows the views cannot read: (status, content columns, stored text, what the error names).
UNREADABLE_ROWS = {
    "failure-without-exc-type": (states.FAILURE, JSON, '{"exc_message": ["boom"]}', "exception type"),
    "failure-not-a-mapping": (states.FAILURE, JSON, '"boom"', "ValueError"),
    "failure-not-an-exception": (
        states.FAILURE,
        JSON,
        '{"exc_type": "system", "exc_module": "os", "exc_message": "id"}',
        "SecurityError",
    ),
    "garbage": (states.SUCCESS, JSON, "{not json", "DecodeError"),
    "pickle-not-accepted": (
        states.SUCCESS,
        PICKLE,
        base64.b64encode(pickle.dumps(LoudWhenUnpickled())).decode(),
        "application/x-python-serialize",
    ),
}


def add_unreadable(task_id: str, case: str) -> str:
    """Insert the row of ``UNREADABLE_ROWS[case]`` as ``task_id``; return its status."""
    status, content, text, _ = UNREADABLE_ROWS[case]
    TaskResult.objects.create(task_id=task_id, status=status, result=text, **content)
    return status


@pytest.mark.parametrize("case", sorted(UNREADABLE_ROWS))
def test_a_row_that_cannot_be_read_answers_its_status_and_an_error(
    user_client: Client,
    celery_default: Any,
    case: str,
) -> None:
    status = add_unreadable("unreadable", case)
    named = UNREADABLE_ROWS[case][3]

    answer = user_client.get(reverse("celery-task_status", args=["unreadable"]))
    done = user_client.get(reverse("celery-is_task_successful", args=["unreadable"]))

    assert answer.status_code == done.status_code == 200
    task = strict_json(answer)["task"]
    assert task == {"id": "unreadable", "status": status, "result": None, "error": task["error"]}
    assert task["error"].startswith("stored result cannot be read") and named in task["error"]
    assert len(task["error"]) <= views.REASON_WIDTH
    assert strict_json(done) == {
        "task": {
            "id": "unreadable",
            "executed": status == states.SUCCESS,
            "error": task["error"],
        }
    }
    assert UNPICKLED == []


def test_an_unreadable_failure_has_no_made_up_exception(staff_client: Client, celery_default: Any) -> None:
    TaskResult.objects.create(
        task_id="bad-failure",
        status=states.FAILURE,
        result='{"exc_message": "x"}',
        traceback="tb",
        **JSON,
    )
    task = strict_json(staff_client.get(reverse("celery-task_status", args=["bad-failure"])))["task"]
    assert set(task) == {"id", "status", "result", "error"}
    assert task["status"] == states.FAILURE


def test_an_unreadable_member_does_not_spoil_its_group(staff_client: Client, celery_default: Any) -> None:
    backend = celery_default.backend
    backend.mark_as_done("m1", [1.5])
    add_unreadable("m2", "garbage")
    backend.mark_as_failure("m3", KeyError("k"), traceback="tb")
    members = [AsyncResult(task_id) for task_id in ("m1", "m2", "m3")]
    GroupResult("mixed", members, app=celery_default).save(backend=backend)

    status = strict_json(staff_client.get(reverse("celery-group_status", args=["mixed"])))["group"]
    done = strict_json(staff_client.get(reverse("celery-is_group_successful", args=["mixed"])))["group"]
    status, done = status["results"], done["results"]

    assert status[0] == {"id": "m1", "result": [1.5], "status": states.SUCCESS}
    assert status[1] == {"id": "m2", "result": None, "status": states.SUCCESS, "error": status[1]["error"]}
    assert "DecodeError" in status[1]["error"]
    assert status[2]["status"] == states.FAILURE and "KeyError" in status[2]["result"]
    assert done == [
        {"id": "m1", "executed": True},
        {"id": "m2", "executed": True, "error": status[1]["error"]},
        {"id": "m3", "executed": False},
    ]


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (JSON, "[not json"),
        (PICKLE, base64.b64encode(pickle.dumps(LoudWhenUnpickled())).decode()),
    ],
)
def test_an_unreadable_group_row_answers_an_error(
    user_client: Client,
    celery_default: Any,
    content: dict[str, str],
    text: str,
) -> None:
    GroupResultRow.objects.create(group_id="bad-group", result=text, **content)
    for name in ("celery-group_status", "celery-is_group_successful"):
        response = user_client.get(reverse(name, args=["bad-group"]))
        assert response.status_code == 200, name
        group = strict_json(response)["group"]
        assert group == {"id": "bad-group", "results": None, "error": group["error"]}, name
        assert group["error"].startswith("stored result cannot be read")
    assert UNPICKLED == []


def test_an_unreadable_cache_entry_answers_an_error(user_client: Client, celery_app_factory: Any) -> None:
    app = celery_app_factory("django-cache")
    previous = current_app._get_current_object()
    app.set_current()
    try:
        app.backend.set(app.backend.get_key_for_task("scrambled"), "{not json")
        task = user_client.get(reverse("celery-task_status", args=["scrambled"]))
        done = user_client.get(reverse("celery-is_task_successful", args=["scrambled"]))
    finally:
        previous.set_current()
    assert task.status_code == done.status_code == 200
    body = strict_json(task)["task"]
    # The cache keeps the status inside the content, so it is unknown too.
    assert body == {"id": "scrambled", "status": None, "result": None, "error": body["error"]}
    assert strict_json(done) == {"task": {"id": "scrambled", "executed": False, "error": body["error"]}}


# -- ids no row can have ---------------------------------------------------------------------------------

UNSTORABLE_IDS = {"too-long": "x" * 300, "nul": "nul\x00id", "lone-surrogate": "lone\ud800surrogate"}
ALL_VIEWS = {
    "task": (views.task_status, views.is_task_successful),
    "group": (views.group_status, views.is_group_successful),
}


@pytest.mark.parametrize("kind", sorted(ALL_VIEWS))
@pytest.mark.parametrize("case", sorted(UNSTORABLE_IDS))
def test_ids_no_row_can_have_answer_404_like_unknown_ones(celery_default: Any, kind: str, case: str) -> None:
    ident = UNSTORABLE_IDS[case]
    request = RequestFactory().get("/")
    request.user = User.objects.create_user("direct", password="x")
    for view in ALL_VIEWS[kind]:
        response = view(request, ident)
        assert response.status_code == 404, view.__name__
        assert strict_json(response) == {"error": f"unknown {kind} id", "id": ident}, view.__name__


def test_a_too_long_id_in_the_url_answers_404(user_client: Client, celery_default: Any) -> None:
    for name in (
        "celery-is_task_successful",
        "celery-task_status",
        "celery-is_group_successful",
        "celery-group_status",
    ):
        response = user_client.get(reverse(name, args=["x" * 300]))
        assert response.status_code == 404, name
        assert strict_json(response)["id"] == "x" * 300, name


def test_a_member_id_no_row_can_have_is_pending(user_client: Client, celery_default: Any) -> None:
    backend = celery_default.backend
    backend.mark_as_done("short", 1)
    GroupResult("long-member", [AsyncResult("short"), AsyncResult("x" * 300)], app=celery_default).save(
        backend=backend,
    )
    status = strict_json(user_client.get(reverse("celery-group_status", args=["long-member"])))
    assert status["group"]["results"] == [
        {"id": "short", "result": 1, "status": states.SUCCESS},
        {"id": "x" * 300, "result": None, "status": states.PENDING},
    ]
