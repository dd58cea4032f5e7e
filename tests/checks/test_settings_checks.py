"""Settings checks E001-E005 and W005-W007: plain checks, run by every ``manage.py check``.

No test here is marked ``django_db``: a query from any of these checks would fail it.
"""

from __future__ import annotations

import itertools
import os
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.core import checks
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_celery_results import conf
from django_celery_results.checks import DOCS_BASE, check_settings
from django_celery_results.conf import OPTION_KEYS, AppSettings, InvalidSetting, app_settings
from tests.support import ROOT
from tests.support.processes import run_python

APP = "django_celery_results"


class SiteAuthenticationMiddleware(AuthenticationMiddleware):
    """A site's own subclass: it sets ``request.user`` as well."""


class SiteLocMemCache(LocMemCache):
    """A site's own subclass: still one copy per process."""


def allow_all(request: Any, kind: str, ident: str) -> bool:
    return True


def one_argument_rule(request: Any) -> bool:
    return True


NOT_CALLABLE = "a string is not a rule"


def found(**settings: Any) -> list[checks.CheckMessage]:
    """The settings checks' issues under ``settings``; each must cite a page of the docs that exists."""
    with override_settings(**settings):
        issues = check_settings()
    for issue in issues:
        assert_cites_the_docs(issue)
    return issues


def ids(issues: list[checks.CheckMessage]) -> list[tuple[str | None, object]]:
    return [(issue.id, issue.obj) for issue in issues]


def assert_cites_the_docs(issue: checks.CheckMessage) -> None:
    """The hint ends with ``See docs/<page>.rst, "<section>".``: that page has that section (as rendered)."""
    match = re.search(r'See (\S+)\.rst, "([^"]+)"\.$', str(issue.hint))
    assert match is not None, issue.hint
    path, section = match.groups()
    assert path.startswith(DOCS_BASE)
    lines = (ROOT / f"{path}.rst").read_text().replace("``", "").splitlines()
    assert any(
        line == section and set(after) <= set("=-~") and after for line, after in itertools.pairwise(lines)
    ), (path, section)


# -- registration ---------------------------------------------------------------------------


def test_registered_without_the_database_tag() -> None:
    assert check_settings in checks.registry.registry.get_checks()
    assert not getattr(check_settings, "tags", ())


def test_default_test_settings_produce_none() -> None:
    assert check_settings() == []
    assert not [i for i in checks.run_checks() if (i.id or "").startswith(APP)]
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)
    assert APP not in out.getvalue() + err.getvalue()


def test_a_plain_check_command_runs_them_and_fails_on_errors() -> None:
    with (
        override_settings(DJANGO_CELERY_RESULTS={"ALLOW_EDITS": "no"}),
        pytest.raises(SystemCheckError, match=f"{APP}.E002"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_a_warning_is_shown_and_does_not_fail_the_command() -> None:
    err = StringIO()
    with override_settings(DJANGO_CELERY_RESULTS={"PUBLIC_VIEW": True}):
        call_command("check", stdout=StringIO(), stderr=err)
    assert f"{APP}.W006" in err.getvalue()


def test_other_apps_checks_do_not_run_them() -> None:
    with override_settings(DJANGO_CELERY_RESULTS={"ALLOW_EDITS": "no"}):
        assert check_settings(app_configs=[apps.get_app_config("auth")]) == []
        assert ids(check_settings(app_configs=[apps.get_app_config(APP)])) == [
            (f"{APP}.E002", "ALLOW_EDITS"),
        ]


# -- E001, W006: the dictionary and its keys --------------------------------------------------


def test_e001_when_the_options_are_not_a_dict() -> None:
    issues = found(DJANGO_CELERY_RESULTS=["ALLOW_EDITS"])
    assert [i.id for i in issues] == [f"{APP}.E001"]
    assert "list" in issues[0].msg
    with override_settings(DJANGO_CELERY_RESULTS=["ALLOW_EDITS"]):
        assert app_settings.allow_edits is False  # ignored, not a crash


def test_the_known_keys_are_the_option_properties() -> None:
    assert set(OPTION_KEYS) == {
        "ALLOW_EDITS",
        "PUBLIC_VIEWS",
        "VIEWS_ACCESS",
        "PENDING_ON_PUBLISH",
        "CLEANUP_BATCH_SIZE",
        "WAITING_CHORD_EXPIRES",
        "MAX_RESULT_SIZE",
        "LISTEN_DATABASE",
    }
    # Each key's property reads that very key: a value no property accepts makes it refuse.
    for key in OPTION_KEYS:
        with (
            override_settings(DJANGO_CELERY_RESULTS={key: object()}),
            pytest.raises(InvalidSetting, match=re.escape(f'["{key}"]')),
        ):
            getattr(AppSettings(strict=True), key.lower())


@pytest.mark.parametrize(
    ("key", "guess"),
    [
        ("PUBLIC_VIEW", "PUBLIC_VIEWS"),
        ("allow_edits", "ALLOW_EDITS"),
        ("VIEW_ACCESS", "VIEWS_ACCESS"),
        ("CLEANUP_BATCHSIZE", "CLEANUP_BATCH_SIZE"),
        ("COMPLETELY_DIFFERENT", None),
    ],
)
def test_w006_for_an_unknown_key_with_a_guess(key: str, guess: str | None) -> None:
    issues = found(DJANGO_CELERY_RESULTS={key: True, "ALLOW_EDITS": False})
    assert ids(issues) == [(f"{APP}.W006", key)]
    assert issues[0].level == checks.WARNING
    hint = str(issues[0].hint)
    assert (f"Did you mean {guess!r}?" in hint) if guess else ("Did you mean" not in hint)
    assert all(known in hint for known in OPTION_KEYS)


# -- E002: values of the wrong type ----------------------------------------------------------------

BAD_VALUES = [
    ("ALLOW_EDITS", "no"),
    ("ALLOW_EDITS", 1),
    ("PUBLIC_VIEWS", "yes"),
    ("PENDING_ON_PUBLISH", "False"),
    ("PENDING_ON_PUBLISH", None),
    ("CLEANUP_BATCH_SIZE", "lots"),
    ("CLEANUP_BATCH_SIZE", "1000"),
    ("CLEANUP_BATCH_SIZE", True),
    ("CLEANUP_BATCH_SIZE", 2.5),
    ("CLEANUP_BATCH_SIZE", 0),
    ("LISTEN_DATABASE", "no-such-alias"),
    ("LISTEN_DATABASE", 1),
    ("CLEANUP_BATCH_SIZE", 10**7),
    ("WAITING_CHORD_EXPIRES", "7d"),
    ("WAITING_CHORD_EXPIRES", -1),
    ("WAITING_CHORD_EXPIRES", float("nan")),
    ("WAITING_CHORD_EXPIRES", timedelta(seconds=-1)),
    ("MAX_RESULT_SIZE", "4MB"),
    ("MAX_RESULT_SIZE", 0),
    ("MAX_RESULT_SIZE", 1.5),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_e002_for_a_value_of_the_wrong_type(key: str, value: Any) -> None:
    issues = found(DJANGO_CELERY_RESULTS={key: value})
    assert ids(issues) == [(f"{APP}.E002", key)]
    assert issues[0].level == checks.ERROR
    assert f'DJANGO_CELERY_RESULTS["{key}"]' in issues[0].msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ALLOW_EDITS", True),
        ("PUBLIC_VIEWS", False),
        ("PENDING_ON_PUBLISH", True),
        ("CLEANUP_BATCH_SIZE", 1),
        ("CLEANUP_BATCH_SIZE", 1_000_000),
        ("WAITING_CHORD_EXPIRES", 0),
        ("WAITING_CHORD_EXPIRES", 3600.5),
        ("WAITING_CHORD_EXPIRES", timedelta(days=30)),
        ("MAX_RESULT_SIZE", 1024),
    ],
)
def test_no_e002_for_a_good_value(key: str, value: Any) -> None:
    assert found(DJANGO_CELERY_RESULTS={key: value}) == []


@pytest.mark.parametrize("value", ["no", "False", 0, 1, "yes", None])
def test_a_boolean_that_is_not_a_bool_reads_as_false(value: Any) -> None:
    options = {"ALLOW_EDITS": value, "PUBLIC_VIEWS": value, "PENDING_ON_PUBLISH": value}
    with override_settings(DJANGO_CELERY_RESULTS=options):
        assert (app_settings.allow_edits, app_settings.public_views, app_settings.pending_on_publish) == (
            False,
            False,
            False,
        )
        assert app_settings.views_access == "authenticated"


def test_sizes_that_are_not_numbers_are_refused_or_replaced() -> None:
    with override_settings(
        DJANGO_CELERY_RESULTS={
            "CLEANUP_BATCH_SIZE": "lots",
            "WAITING_CHORD_EXPIRES": "7d",
            "MAX_RESULT_SIZE": "4MB",
        }
    ):
        # A cleanup must not guess how much to delete, nor when to give up a chord ...
        with pytest.raises(ValueError, match="CLEANUP_BATCH_SIZE"):
            app_settings.cleanup_batch_size  # noqa: B018
        with pytest.raises(InvalidSetting, match="WAITING_CHORD_EXPIRES"):
            app_settings.waiting_chord_expires  # noqa: B018
        # ... while W004's threshold may well be the default.
        assert app_settings.max_result_size == conf.DEFAULT_MAX_RESULT_SIZE


# -- E003: the id length -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "191", 35, 0, -1, True, 191.0, None])
def test_e003_for_an_id_length_that_is_not_a_length(value: Any) -> None:
    issues = found(DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH=value)
    assert ids(issues) == [(f"{APP}.E003", "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH")]
    assert repr(value) in issues[0].msg
    with override_settings(DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH=value):
        assert app_settings.task_id_max_length == conf.DEFAULT_TASK_ID_MAX_LENGTH


@pytest.mark.parametrize("value", [36, 191, 255, 1000])
def test_no_e003_for_a_length(value: int) -> None:
    assert found(DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH=value) == []
    with override_settings(DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH=value):
        assert app_settings.task_id_max_length == value


def test_a_bad_id_length_still_imports_the_models_and_fails_the_check(tmp_path: Path) -> None:
    """In a fresh process, as a site starts: the models load with the default, ``check`` says why."""
    (tmp_path / "bad_length_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\nDJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 'abc'\n"
    )
    script = (
        "import django\n"
        "django.setup()\n"
        "from django_celery_results.models import TaskResult\n"
        "print('length', TaskResult._meta.get_field('task_id').max_length)\n"
        "from django.core.management import call_command\n"
        "call_command('check')\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bad_length_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    done = run_python(["-c", script], env)
    assert "length 255" in done.stdout, done.stderr
    assert done.returncode != 0
    assert f"{APP}.E003" in done.stderr and "'abc'" in done.stderr


# -- E004: VIEWS_ACCESS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("tests.no_such_module.rule", "cannot be imported (ModuleNotFoundError"),
        ("tests.checks.test_settings_checks.no_such_rule", "cannot be imported (ImportError"),
        ("tests.checks.test_settings_checks.NOT_CALLABLE", "not callable (str)"),
        ("tests.checks.test_settings_checks.one_argument_rule", "rule(request, kind, id)"),
        ("staf", "Did you mean 'staff'?"),
        ("Public", "Did you mean 'public'?"),
        ("anyone", "neither one of"),
        (42, "must be a string"),
        (True, "must be a string"),
    ],
)
def test_e004_for_a_views_access_that_names_no_rule(value: Any, said: str) -> None:
    issues = found(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": value})
    assert ids(issues) == [(f"{APP}.E004", "VIEWS_ACCESS")]
    assert said in issues[0].msg
    assert "refuse every request" in issues[0].msg


@pytest.mark.parametrize(
    "value",
    [
        None,
        "authenticated",
        "staff",
        "public",
        "tests.checks.test_settings_checks.allow_all",
    ],
)
def test_no_e004_for_a_mode_or_a_rule(value: str | None) -> None:
    assert found(DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": value}) == []


def test_views_access_resolves_a_dotted_path_to_the_callable() -> None:
    with override_settings(
        DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "tests.checks.test_settings_checks.allow_all"}
    ):
        assert app_settings.views_access is allow_all


# -- E005, W005: the django-cache backend --------------------------------------------------------

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
DUMMY = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
FILES = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/tmp/dcr-unused"}
REDIS = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
SITE_LOCMEM = {"BACKEND": "tests.checks.test_settings_checks.SiteLocMemCache"}


def test_e005_for_a_cache_alias_caches_does_not_define() -> None:
    issues = found(
        CELERY_RESULT_BACKEND="django-cache",
        CELERY_CACHE_BACKEND="results-cache",
        CACHES={"default": FILES, "shared": REDIS},
    )
    assert ids(issues) == [(f"{APP}.E005", "CELERY_CACHE_BACKEND")]
    assert "'results-cache'" in issues[0].msg
    assert "'default', 'shared'" in str(issues[0].hint)


@pytest.mark.parametrize("cache", [LOCMEM, DUMMY, SITE_LOCMEM])
def test_w005_for_a_per_process_cache(cache: dict[str, str]) -> None:
    issues = found(
        CELERY_RESULT_BACKEND="django-cache",
        CELERY_CACHE_BACKEND="results",
        CACHES={"default": FILES, "results": cache},
    )
    assert ids(issues) == [(f"{APP}.W005", "CELERY_CACHE_BACKEND")]
    assert cache["BACKEND"].rsplit(".", 1)[-1] in issues[0].msg


def test_w005_for_the_default_alias_when_no_cache_backend_is_named() -> None:
    issues = found(CELERY_RESULT_BACKEND="django-cache", CACHES={"default": LOCMEM, "results": REDIS})
    assert ids(issues) == [(f"{APP}.W005", "CELERY_CACHE_BACKEND")]
    assert "'default'" in issues[0].msg


@pytest.mark.parametrize(
    "backend",
    [
        "django-cache://",
        "django_celery_results.backends:CacheBackend",
        "django_celery_results.backends.cache.CacheBackend",
    ],
)
def test_every_name_of_the_cache_backend_is_checked(backend: str) -> None:
    issues = found(CELERY_RESULT_BACKEND=backend, CACHES={"default": DUMMY})
    assert [i.id for i in issues] == [f"{APP}.W005"]


@pytest.mark.parametrize(
    ("backend", "caches"),
    [
        ("django-cache", {"default": FILES}),
        ("django-cache", {"default": REDIS}),
        ("django-db", {"default": LOCMEM}),
        ("redis://127.0.0.1:6379/0", {"default": DUMMY}),
        ("django-db", {"other": REDIS}),  # no "default" cache: only the cache backend would need one
    ],
)
def test_no_cache_issue_for_a_shared_cache_or_another_backend(backend: str, caches: dict[str, Any]) -> None:
    assert found(CELERY_RESULT_BACKEND=backend, CACHES=caches) == []


def test_the_cache_check_builds_no_celery_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import celery

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a check built a Celery app")

    monkeypatch.setattr(celery.Celery, "__init__", refuse)
    assert [i.id for i in found(CELERY_RESULT_BACKEND="django-cache", CACHES={"default": LOCMEM})] == [
        f"{APP}.W005",
    ]


# -- W007: views for users, and nothing sets request.user ------------------------------------------

WITHOUT_AUTHENTICATION = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]


@pytest.mark.parametrize(
    ("options", "who"),
    [
        ({}, "authenticated"),
        ({"VIEWS_ACCESS": "authenticated"}, "authenticated"),
        ({"VIEWS_ACCESS": "staff"}, "staff"),
        ({"PUBLIC_VIEWS": True, "VIEWS_ACCESS": "staff"}, "staff"),
    ],
)
def test_w007_when_the_views_need_users_and_no_middleware_sets_them(
    options: dict[str, Any],
    who: str,
) -> None:
    issues = found(MIDDLEWARE=WITHOUT_AUTHENTICATION, DJANGO_CELERY_RESULTS=options)
    assert ids(issues) == [(f"{APP}.W007", "MIDDLEWARE")]
    assert f"admit {who} users only" in issues[0].msg
    assert "AuthenticationMiddleware" in str(issues[0].hint)


@pytest.mark.parametrize(
    ("middleware", "options"),
    [
        (WITHOUT_AUTHENTICATION, {"PUBLIC_VIEWS": True}),
        (WITHOUT_AUTHENTICATION, {"VIEWS_ACCESS": "public"}),
        # A rule of the site's own may authenticate some other way (a token, say).
        (WITHOUT_AUTHENTICATION, {"VIEWS_ACCESS": "tests.checks.test_settings_checks.allow_all"}),
        ([*WITHOUT_AUTHENTICATION, "tests.checks.test_settings_checks.SiteAuthenticationMiddleware"], {}),
    ],
)
def test_no_w007_when_the_views_need_no_user_or_one_is_set(
    middleware: list[str],
    options: dict[str, Any],
) -> None:
    assert found(MIDDLEWARE=middleware, DJANGO_CELERY_RESULTS=options) == []


def test_w007_is_not_added_to_an_unusable_views_access() -> None:
    issues = found(MIDDLEWARE=WITHOUT_AUTHENTICATION, DJANGO_CELERY_RESULTS={"VIEWS_ACCESS": "staf"})
    assert [i.id for i in issues] == [f"{APP}.E004"]


def test_several_problems_are_all_reported_in_order() -> None:
    issues = found(
        DJANGO_CELERY_RESULTS={"ALLOW_EDIT": True, "PUBLIC_VIEWS": "yes", "VIEWS_ACCESS": "nobody"},
        DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH="abc",
        CELERY_RESULT_BACKEND="django-cache",
        CACHES={"default": DUMMY},
        MIDDLEWARE=WITHOUT_AUTHENTICATION,
    )
    assert [i.id for i in issues] == [f"{APP}.{n}" for n in ("W006", "E002", "E003", "E004", "W005")]
