"""docs/metadata.rst ("Injecting metadata"): its examples run as written, and its claims hold.

The page's ``python`` block is the tasks module of a project ``proj`` and its
``pycon`` blocks are one interactive session; both run here unchanged, the
session as a doctest, so the outputs the page shows are the outputs the code
gives. ``proj.celery.app`` is a test app whose tasks run eagerly with
``task_store_eager_result``: ``delay()`` then goes through Celery's tracer,
which stores every state with the task's own request (``self.request``) as a
worker's does.
"""

from __future__ import annotations

import doctest
import functools
import io
import re
import sys
import textwrap
import types
from typing import Any
from unittest import mock

import pytest
from celery import states
from celery.app.task import Context

from django_celery_results import codec
from tests.support import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = ROOT / "docs" / "metadata.rst"
DIRECTIVE = re.compile(r"^\.\. code-block:: (\w+)\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


def code_blocks(language: str) -> list[tuple[int, str]]:
    """``(line number, dedented source)`` of each ``code-block`` of ``language`` on the page."""
    text = PAGE.read_text(encoding="utf-8")
    found = []
    for match in DIRECTIVE.finditer(text):
        if match.group(1) == language:
            line = text.count("\n", 0, match.start(2)) + 1
            found.append((line, textwrap.dedent(match.group(2))))
    return found


@pytest.fixture
def proj(celery_app_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a ``proj`` package whose ``celery.app`` is made by the returned function."""

    def install(backend: str = "django-db", **conf: Any) -> types.ModuleType:
        app = celery_app_factory(backend, task_always_eager=True, task_store_eager_result=True, **conf)
        # The page's tasks belong to this app only: a shared task would join every app made
        # later in the run, where the next test's copy of it clashes (DuplicateTaskNameWarning).
        app.task = functools.partial(app.task, shared=False)  # type: ignore[method-assign]
        package = types.ModuleType("proj")
        package.__path__ = []
        celery_module = types.ModuleType("proj.celery")
        celery_module.app = app  # type: ignore[attr-defined]
        tasks = types.ModuleType("proj.tasks")
        for name, module in (("proj", package), ("proj.celery", celery_module), ("proj.tasks", tasks)):
            monkeypatch.setitem(sys.modules, name, module)
        [(line, source)] = code_blocks("python")
        # Line numbers of errors point into the page.
        exec(compile("\n" * (line - 1) + source, str(PAGE), "exec"), tasks.__dict__)
        return tasks

    return install


def run_session(globs: dict[str, Any]) -> None:
    """Run the page's ``pycon`` blocks as one doctest session; fail with doctest's report."""
    blocks = code_blocks("pycon")
    assert blocks, "the page has no pycon example"
    parser = doctest.DocTestParser()
    examples = []
    for line, source in blocks:
        for example in parser.get_examples(source, PAGE.name):
            example.lineno += line - 1
            examples.append(example)
    session = doctest.DocTest(examples, globs, PAGE.name, str(PAGE), 0, None)
    report = io.StringIO()
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(session, out=report.write)
    assert result.attempted >= 8
    assert result.failed == 0, report.getvalue()


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "plain"])
def test_the_documented_example_runs_as_shown(proj: Any, extended: bool) -> None:
    tasks = proj(result_extended=extended)
    run_session({"__name__": "metadata_howto"})

    # The session shows the final state; each PROGRESS row carried the metadata too.
    backend = sys.modules["proj.celery"].app.backend
    seen: list[tuple[str, Any, Any]] = []
    store = backend.store_result

    def spy(task_id: str, result: Any, state: str, *args: Any, **kwargs: Any) -> Any:
        stored = store(task_id, result, state, *args, **kwargs)
        meta = backend.get_task_meta(task_id, cache=False)
        seen.append((meta["status"], meta["result"], meta.get("batch_id")))
        return stored

    with mock.patch.object(backend, "store_result", spy):
        tasks.import_orders.delay("b-18", rows=[{"sku": "C3"}, {"sku": "D4"}])
    assert seen == [
        ("PROGRESS", {"done": 1, "total": 2}, "b-18"),
        ("PROGRESS", {"done": 2, "total": 2}, "b-18"),
        (states.SUCCESS, 2, "b-18"),
    ]


def test_django_cache_does_not_store_request_meta(proj: Any) -> None:
    tasks = proj("django-cache", cache_backend="results")
    result = tasks.import_orders.delay("b-17", rows=[{"sku": "A1"}])
    meta = sys.modules["proj.celery"].app.backend.get_task_meta(result.id)
    assert (meta["status"], meta["result"]) == (states.SUCCESS, 1)
    assert "batch_id" not in meta and "source" not in meta


@pytest.mark.parametrize("value", ["batch b-17", ["b-17"], 17, None])
def test_request_meta_that_is_not_a_mapping_is_ignored(backend: Any, value: Any) -> None:
    task_id = f"not-a-mapping-{type(value).__name__}"
    backend.store_result(task_id, "done", states.SUCCESS, request=Context(id=task_id, meta=value))
    meta = backend.get_task_meta(task_id, cache=False)
    assert (meta["status"], meta["result"]) == (states.SUCCESS, "done")
    assert set(meta) <= codec.PROTOCOL_KEYS


def test_the_page_lists_exactly_the_keys_that_cannot_be_replaced() -> None:
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    listed = re.search(r"Keys named like Celery's own fields \((.*?)\) are left out", text)
    assert listed, "the list of Celery's own keys is missing from the page"
    assert set(re.findall(r"``(\w+)``", listed.group(1))) == codec.PROTOCOL_KEYS


def test_own_keys_never_replace_celerys(backend: Any) -> None:
    forged = {key: "forged" for key in codec.PROTOCOL_KEYS}
    request = Context(id="forging", meta={**forged, "tenant": "acme"})
    backend.store_result("forging", {"real": True}, states.SUCCESS, request=request)
    meta = backend.get_task_meta("forging", cache=False)
    assert (meta["status"], meta["result"], meta["task_id"]) == (states.SUCCESS, {"real": True}, "forging")
    assert meta["tenant"] == "acme"
    assert "forged" not in [value for key, value in meta.items() if key != "tenant"]


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        ("json", {"nested": {"ids": [1, 2.5, None, True], "name": "h\u00e9llo"}}),
        ("pickle", {"tags": {"a", "b"}, "pair": (1, 2), "raw": b"\x00\x01"}),
    ],
    ids=["json", "pickle"],
)
def test_values_read_back_through_the_result_serializer(
    celery_app_factory: Any,
    serializer: str,
    value: dict[str, Any],
) -> None:
    backend = celery_app_factory(result_serializer=serializer, accept_content=["json", "pickle"]).backend
    backend.store_result("typed", 1, states.SUCCESS, request=Context(id="typed", meta=value))
    meta = backend.get_task_meta("typed", cache=False)
    assert {key: meta[key] for key in value} == value


def test_each_stored_state_writes_the_metadata_of_its_moment(backend: Any) -> None:
    request = Context(id="moments", meta={"step": "download"})
    backend.store_result("moments", {"done": 0}, "PROGRESS", request=request)
    assert backend.get_task_meta("moments", cache=False)["step"] == "download"
    request.meta = {"step": "import", "rows": 2}
    backend.store_result("moments", 2, states.SUCCESS, request=request)
    meta = backend.get_task_meta("moments", cache=False)
    assert (meta["status"], meta["step"], meta["rows"]) == (states.SUCCESS, "import", 2)
    # A state the precedence rules refuse (progress after SUCCESS) leaves the metadata too.
    late = Context(id="moments", meta={"step": "late"})
    backend.store_result("moments", None, states.STARTED, request=late)
    meta = backend.get_task_meta("moments", cache=False)
    assert (meta["status"], meta["step"], meta["rows"]) == (states.SUCCESS, "import", 2)
