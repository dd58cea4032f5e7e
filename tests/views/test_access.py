"""Who may read the JSON views: ``VIEWS_ACCESS`` (and the older ``PUBLIC_VIEWS``), for every view.

Refusals are 403 JSON with a reason, decided before anything is read, and a
site's setup (no ``AuthenticationMiddleware``, a rule that does not import)
never makes a view fail with a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from celery import current_app, states
from celery.result import AsyncResult, GroupResult
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_celery_results import views

pytestmark = pytest.mark.django_db(transaction=True)

#: The four views: URL name, the kind the access rule is told, the view function.
VIEWS = {
    "celery-is_task_successful": ("task", views.is_task_successful),
    "celery-task_status": ("task", views.task_status),
    "celery-is_group_successful": ("group", views.is_group_successful),
    "celery-group_status": ("group", views.group_status),
}

#: What each user owns, as a site's own tables would say.
OWNED = {"viewer": {"t-viewer", "g-viewer"}, "other": {"t-other", "g-other"}}
RULE = "tests.views.test_access.owned_only"
#: (kind, id, user) of every call of :func:`owned_only`.
RULE_CALLS: list[tuple[str, str, Any]] = []


def owned_only(request: HttpRequest, kind: str, ident: str) -> bool:
    """The rule of a site where each user sees the tasks and groups they own; staff see all."""
    RULE_CALLS.append((kind, ident, request.user))
    user = request.user
    if getattr(user, "is_staff", False):
        return True
    return ident in OWNED.get(getattr(user, "username", ""), set())


def failing_rule(request: HttpRequest, kind: str, ident: str) -> bool:
    raise RuntimeError("the ownership table is gone")


def forgetful_rule(request: HttpRequest, kind: str, ident: str) -> Any:
    """Forgets to return: ``None`` must refuse, not admit."""


NOT_CALLABLE = {"rule": "a dict is not a rule"}


def one_argument_rule(request: HttpRequest) -> bool:
    return True


@pytest.fixture(autouse=True)
def _forget_rule_calls() -> Iterator[None]:
    RULE_CALLS.clear()
    yield
    RULE_CALLS.clear()


@pytest.fixture
def stored(celery_app_factory: Any) -> Iterator[Any]:
    """The current Celery app, holding a task and a group of each user's."""
    app = celery_app_factory()
    previous = current_app._get_current_object()
    app.set_current()
    for owner, value in (("viewer", 1), ("other", 2)):
        app.backend.mark_as_done(f"t-{owner}", value)
        GroupResult(f"g-{owner}", [AsyncResult(f"t-{owner}")], app=app).save(backend=app.backend)
    yield app
    previous.set_current()


def logged_in(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def clients() -> dict[str, Client]:
    """A client per kind of visitor: anonymous, a plain user (``viewer``) and a staff user."""
    return {
        "anonymous": logged_in(None),
        "user": logged_in(User.objects.create_user("viewer")),
        "staff": logged_in(User.objects.create_user("boss", is_staff=True)),
    }


def answer_for(name: str, ident: str, value: int = 1) -> dict[str, Any]:
    """The 200 body of view ``name`` for the stored task ``ident`` (or its group), holding ``value``."""
    task = ident.replace("g-", "t-")
    return {
        "celery-is_task_successful": {"task": {"id": ident, "executed": True}},
        "celery-task_status": {"task": {"id": ident, "status": states.SUCCESS, "result": value}},
        "celery-is_group_successful": {"group": {"id": ident, "results": [{"id": task, "executed": True}]}},
        "celery-group_status": {
            "group": {
                "id": ident,
                "results": [
                    {"id": task, "result": value, "status": states.SUCCESS},
                ],
            }
        },
    }[name]


def own_id(name: str, owner: str = "viewer") -> str:
    return f"{VIEWS[name][0][0]}-{owner}"


ADMITTED = None
EVERYONE: dict[str, str | None] = {"anonymous": ADMITTED, "user": ADMITTED, "staff": ADMITTED}
USERS = {"anonymous": views.ANONYMOUS, "user": ADMITTED, "staff": ADMITTED}
STAFF = {"anonymous": views.ANONYMOUS, "user": views.NOT_STAFF, "staff": ADMITTED}
OWNERS = {"anonymous": views.DENIED, "user": ADMITTED, "staff": ADMITTED}

#: DJANGO_CELERY_RESULTS, and the refusal (None: admitted) each visitor gets for its own ids.
ACCESS_MODES: dict[str, tuple[dict[str, Any], dict[str, str | None]]] = {
    "unset": ({}, USERS),
    "authenticated": ({"VIEWS_ACCESS": "authenticated"}, USERS),
    "staff": ({"VIEWS_ACCESS": "staff"}, STAFF),
    "public": ({"VIEWS_ACCESS": "public"}, EVERYONE),
    "PUBLIC_VIEWS": ({"PUBLIC_VIEWS": True}, EVERYONE),
    "PUBLIC_VIEWS off": ({"PUBLIC_VIEWS": False}, USERS),
    "VIEWS_ACCESS wins over PUBLIC_VIEWS on": ({"PUBLIC_VIEWS": True, "VIEWS_ACCESS": "staff"}, STAFF),
    "VIEWS_ACCESS wins over PUBLIC_VIEWS off": ({"PUBLIC_VIEWS": False, "VIEWS_ACCESS": "public"}, EVERYONE),
    "VIEWS_ACCESS None leaves PUBLIC_VIEWS": ({"PUBLIC_VIEWS": True, "VIEWS_ACCESS": None}, EVERYONE),
    "rule": ({"VIEWS_ACCESS": RULE}, OWNERS),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("mode", sorted(ACCESS_MODES))
def test_every_view_in_every_access_mode(
    stored: Any,
    clients: dict[str, Client],
    mode: str,
    name: str,
) -> None:
    options, expected = ACCESS_MODES[mode]
    ident = own_id(name)
    with override_settings(DJANGO_CELERY_RESULTS=options):
        for visitor, client in clients.items():
            response = client.get(reverse(name, args=[ident]))
            refusal = expected[visitor]
            if refusal is ADMITTED:
                assert response.status_code == 200, visitor
                assert response.json() == answer_for(name, ident), visitor
            else:
                assert response.status_code == 403, visitor
                assert response.json() == {"error": refusal, "id": ident}, visitor


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_the_rule_admits_only_what_the_user_owns(stored: Any, clients: dict[str, Client], name: str) -> None:
    kind = VIEWS[name][0]
    mine, theirs = own_id(name), own_id(name, "other")
    with override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": RULE}):
        own = clients["user"].get(reverse(name, args=[mine]))
        other = clients["user"].get(reverse(name, args=[theirs]))
        staff = clients["staff"].get(reverse(name, args=[theirs]))

    assert own.status_code == 200 and own.json() == answer_for(name, mine)
    assert other.status_code == 403
    assert other.json() == {"error": views.DENIED, "id": theirs}
    assert staff.status_code == 200 and staff.json() == answer_for(name, theirs, value=2)
    # The rule is told the kind and the id asked for, and sees the request's user.
    assert [(k, i, getattr(u, "username", None)) for k, i, u in RULE_CALLS] == [
        (kind, mine, "viewer"),
        (kind, theirs, "viewer"),
        (kind, theirs, "boss"),
    ]


def results_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "django_celery_results_" in q["sql"]]


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("options", [{}, {"VIEWS_ACCESS": "staff"}, {"VIEWS_ACCESS": RULE}])
def test_access_is_decided_before_existence(
    stored: Any,
    clients: dict[str, Client],
    name: str,
    options: dict[str, str],
) -> None:
    refused = clients["anonymous"] if not options else clients["user"]
    with override_settings(DJANGO_CELERY_RESULTS=options):
        with CaptureQueriesContext(connection) as captured:
            missing = refused.get(reverse(name, args=["no-such-id"]))
            existing = refused.get(reverse(name, args=[own_id(name, "other")]))
        admitted = clients["staff"].get(reverse(name, args=["no-such-id"]))

    # A refused visitor cannot tell an unknown id from one that exists: same status, same reason.
    assert missing.status_code == existing.status_code == 403
    assert missing.json()["error"] == existing.json()["error"]
    assert results_queries(captured) == []
    assert admitted.status_code == 404
    assert admitted.json() == {"error": f"unknown {VIEWS[name][0]} id", "id": "no-such-id"}


# -- requests without ``user``: no AuthenticationMiddleware -------------------------------------------


def body(response: HttpResponseBase) -> Any:
    """The JSON of a response a view returned itself (only the test client's have ``.json()``)."""
    assert isinstance(response, JsonResponse)
    return json.loads(response.content)


def bare_request() -> HttpRequest:
    request = RequestFactory().get("/")
    assert not hasattr(request, "user")
    return request


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({}, 403),
        ({"VIEWS_ACCESS": "staff"}, 403),
        ({"PUBLIC_VIEWS": True}, 200),
        ({"VIEWS_ACCESS": "public"}, 200),
    ],
)
def test_a_request_without_user_is_anonymous(
    stored: Any,
    name: str,
    options: dict[str, Any],
    status: int,
) -> None:
    view, ident = VIEWS[name][1], own_id(name)
    with override_settings(DJANGO_CELERY_RESULTS=options):
        response = view(bare_request(), ident)
    assert isinstance(response, JsonResponse)
    assert response.status_code == status
    if status == 403:
        assert body(response) == {"error": views.ANONYMOUS, "id": ident}
    else:
        assert body(response) == answer_for(name, ident)


def test_a_rule_sees_an_anonymous_user_on_a_request_without_one(stored: Any) -> None:
    with override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": RULE}):
        response = views.task_status(bare_request(), "t-viewer")
    assert response.status_code == 403
    assert [(kind, ident) for kind, ident, _ in RULE_CALLS] == [("task", "t-viewer")]
    user = RULE_CALLS[0][2]
    assert isinstance(user, AnonymousUser) and not user.is_authenticated


def test_public_views_show_no_traceback_to_a_request_without_user(stored: Any) -> None:
    stored.backend.mark_as_failure("failed", KeyError("k"), traceback="Traceback: secret")
    with override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "public"}):
        task = body(views.task_status(bare_request(), "failed"))["task"]
    assert task["status"] == states.FAILURE and task["exc"] == "builtins.KeyError"
    assert "traceback" not in task


WITHOUT_AUTHENTICATION = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]


@pytest.mark.parametrize(("options", "status"), [({}, 403), ({"VIEWS_ACCESS": "public"}, 200)])
def test_a_site_without_authentication_middleware(stored: Any, options: dict[str, str], status: int) -> None:
    client = logged_in(User.objects.create_user("viewer", is_staff=True))
    with override_settings(MIDDLEWARE=WITHOUT_AUTHENTICATION, DJANGO_CELERY_RESULTS=options):
        for name in VIEWS:
            response = client.get(reverse(name, args=[own_id(name)]))
            assert response.status_code == status, name
            if status == 403:
                # Logged in, but nothing tells the views so.
                assert response.json() == {"error": views.ANONYMOUS, "id": own_id(name)}, name


def test_staff_mode_refuses_an_inactive_staff_user(stored: Any) -> None:
    request = bare_request()
    request.user = User.objects.create_user("gone", is_staff=True, is_active=False)
    with override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "staff"}):
        response = views.task_status(request, "t-viewer")
    assert response.status_code == 403
    assert body(response) == {"error": views.NOT_STAFF, "id": "t-viewer"}


# -- rules that cannot be used ---------------------------------------------------------------------------

BAD_RULES = {
    "module missing": ("tests.no_such_module.rule", "cannot be imported"),
    "attribute missing": ("tests.views.test_access.no_such_rule", "cannot be imported"),
    "not callable": ("tests.views.test_access.NOT_CALLABLE", "not callable"),
    "wrong signature": ("tests.views.test_access.one_argument_rule", "rule(request, kind, id)"),
    "no dot": ("staf", "Did you mean 'staff'?"),
    "not a string": (owned_only, "must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_RULES))
def test_a_rule_that_cannot_be_used_refuses_everyone_and_is_logged(
    stored: Any,
    clients: dict[str, Client],
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    setting, logged = BAD_RULES[case]
    with (
        override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": setting, "PUBLIC_VIEWS": True}),
        caplog.at_level(logging.ERROR, logger="django_celery_results.views"),
    ):
        for name in VIEWS:
            for visitor, client in clients.items():
                response = client.get(reverse(name, args=[own_id(name)]))
                assert response.status_code == 403, (name, visitor)
                assert response.json() == {"error": views.MISCONFIGURED, "id": own_id(name)}, (name, visitor)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == len(VIEWS) * len(clients)
    assert all("VIEWS_ACCESS" in r.getMessage() and logged in r.getMessage() for r in errors)
    # The reason the client reads names no module path.
    assert "tests." not in views.MISCONFIGURED


def test_a_rule_that_raises_refuses_and_logs_the_traceback(
    stored: Any,
    clients: dict[str, Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "tests.views.test_access.failing_rule"}),
        caplog.at_level(logging.ERROR, logger="django_celery_results.views"),
    ):
        response = clients["staff"].get(reverse("celery-task_status", args=["t-viewer"]))
    assert response.status_code == 403
    assert response.json() == {"error": views.RULE_FAILED, "id": "t-viewer"}
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None and "ownership table is gone" in str(record.exc_info[1])


def test_a_rule_returning_none_refuses(stored: Any, clients: dict[str, Client]) -> None:
    with override_settings(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "tests.views.test_access.forgetful_rule"}):
        response = clients["staff"].get(reverse("celery-group_status", args=["g-viewer"]))
    assert response.status_code == 403
    assert response.json() == {"error": views.DENIED, "id": "g-viewer"}


@pytest.mark.parametrize("value", ["yes", 1, "True"])
def test_public_views_that_is_not_a_bool_keeps_them_closed(
    stored: Any,
    clients: dict[str, Client],
    value: Any,
) -> None:
    with override_settings(DJANGO_CELERY_RESULTS={"PUBLIC_VIEWS": value}):
        response = clients["anonymous"].get(reverse("celery-task_status", args=["t-viewer"]))
    assert response.status_code == 403
    assert response.json() == {"error": views.ANONYMOUS, "id": "t-viewer"}
