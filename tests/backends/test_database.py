"""The ``django-db`` backend honours Celery's result-backend contract."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery import group, states
from celery import uuid as celery_uuid
from celery.backends.base import Backend
from celery.exceptions import ChordError
from celery.result import AsyncResult, GroupResult
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import ContentDisallowed

from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import ChordCounter, TaskResult
from django_celery_results.models import GroupResult as GroupResultModel
from tests.support.brokers import drain
from tests.support.requests import chord_part, task_request
from tests.support.statements import STATEMENTS_PER_PART

pytestmark = pytest.mark.django_db(transaction=True)

SERIALIZERS = {
    "json": {"result_serializer": "json", "accept_content": ["json"]},
    "pickle": {"result_serializer": "pickle", "accept_content": ["json", "pickle"]},
}


@pytest.fixture(
    params=[(s, e) for s in SERIALIZERS for e in (True, False)],
    ids=lambda p: f"{p[0]}-{'extended' if p[1] else 'plain'}",
)
def configured(request: Any, celery_app_factory: Any) -> Any:
    serializer, extended = request.param
    return celery_app_factory(result_extended=extended, **SERIALIZERS[serializer])


@pytest.mark.parametrize(
    "state",
    [
        states.PENDING,
        states.RECEIVED,
        states.STARTED,
        states.RETRY,
        states.SUCCESS,
        states.REVOKED,
        "PROGRESS",
    ],
)
def test_every_state_is_stored_and_read_back(configured: Any, state: str) -> None:
    backend = configured.backend
    task_id = celery_uuid()
    value: Any = {"progress": 50} if state == "PROGRESS" else [1, "two", {"3": 4.5}]
    if state in states.EXCEPTION_STATES:
        value = ValueError("why it stopped")
    backend.store_result(task_id, value, state, request=task_request(task_id))

    meta = backend.get_task_meta(task_id, cache=False)
    assert meta["status"] == state
    assert meta["task_id"] == task_id
    if state in states.EXCEPTION_STATES:
        assert isinstance(meta["result"], ValueError)
        assert meta["result"].args == ("why it stopped",)
    else:
        assert meta["result"] == value
    assert meta["children"] == []
    assert (meta["date_done"] is not None) == (state in states.READY_STATES)
    extended = configured.conf.result_extended
    assert meta["name"] == ("proj.tasks.add" if extended else None)
    assert meta["args"] == ("(2, 3)" if extended else None)
    assert meta["kwargs"] == ("{'z': 1}" if extended else None)
    assert meta["worker"] == ("celery@worker1" if extended else None)
    assert meta["queue"] == ("celery" if extended else None)
    assert meta["retries"] == (0 if extended else None)
    assert AsyncResult(task_id, backend=backend).state == state


def test_failure_keeps_exception_and_traceback_without_result_extended(configured: Any) -> None:
    backend = configured.backend
    task_id = celery_uuid()
    backend.mark_as_failure(
        task_id, KeyError("missing"), traceback="Traceback: boom", request=task_request(task_id)
    )
    result = AsyncResult(task_id, backend=backend)
    assert result.state == states.FAILURE
    assert isinstance(result.result, KeyError)
    assert result.result.args == ("missing",)
    assert result.traceback == "Traceback: boom"
    assert TaskResult.objects.get(task_id=task_id).traceback == "Traceback: boom"


def test_pickle_rows_are_binary_base64(celery_app_factory: Any) -> None:
    backend = celery_app_factory(**SERIALIZERS["pickle"]).backend
    backend.mark_as_done("p1", {b"raw": (1, 2)}, request=task_request("p1"))
    row = TaskResult.objects.get(task_id="p1")
    assert (row.content_type, row.content_encoding) == ("application/x-python-serialize", "binary")
    assert backend.get_task_meta("p1", cache=False)["result"] == {b"raw": (1, 2)}
    # A JSON-only reader refuses pickle instead of unpickling untrusted data.
    reader = celery_app_factory(**SERIALIZERS["json"]).backend
    with pytest.raises(ContentDisallowed):
        reader.get_task_meta("p1", cache=False)


def test_store_result_accepts_celery_keyword_names(backend: DatabaseBackend) -> None:
    backend.store_result(
        task_id="kw", result=7, state=states.SUCCESS, traceback=None, request=task_request("kw")
    )
    assert backend.get_task_meta(task_id="kw", cache=False)["result"] == 7


def test_started_then_success_keeps_date_started_and_date_created(backend: DatabaseBackend) -> None:
    backend.mark_as_started("s1")
    started = TaskResult.objects.get(task_id="s1")
    assert started.date_started is not None
    backend.mark_as_done("s1", 1, request=task_request("s1"))
    done = TaskResult.objects.get(task_id="s1")
    assert done.status == states.SUCCESS
    assert done.date_started == started.date_started
    assert done.date_created == started.date_created
    assert done.date_done >= started.date_done
    assert backend.get_task_meta("s1", cache=False)["date_started"] == started.date_started


def test_progress_update_does_not_blank_what_started_stored(backend: DatabaseBackend) -> None:
    backend.store_result("u1", None, states.STARTED, request=task_request("u1"))
    backend.store_result("u1", {"done": 3}, "PROGRESS")  # update_state(): no request
    row = TaskResult.objects.get(task_id="u1")
    assert (row.status, row.task_name, row.worker) == ("PROGRESS", "proj.tasks.add", "celery@worker1")


def test_a_write_knowing_less_keeps_what_it_does_not_know_and_replaces_what_it_does(
    backend: DatabaseBackend,
) -> None:
    backend.store_result("k1", None, states.STARTED, request=task_request("k1"))
    # As the worker's main process has it for a time limit: no worker name, no queue, one retry.
    later = task_request("k1", hostname=None, delivery_info=None, retries=1, task="proj.tasks.other")
    backend.store_result("k1", 5, states.SUCCESS, request=later)
    row = TaskResult.objects.get(task_id="k1")
    assert (row.status, row.worker, row.queue) == (states.SUCCESS, "celery@worker1", "celery")
    assert (row.retries, row.task_name, row.date_started is not None) == (1, "proj.tasks.other", True)


def test_a_write_is_one_statement(backend: DatabaseBackend) -> None:
    with CaptureQueriesContext(connection) as queries:
        backend.store_result("one", 1, states.STARTED, request=task_request("one"))
        backend.store_result("one", 2, states.SUCCESS, request=task_request("one"))
    assert len(queries) == 2, [q["sql"] for q in queries]


def test_reading_meta_is_one_query(backend: DatabaseBackend) -> None:
    backend.mark_as_done("r1", 1)
    with CaptureQueriesContext(connection) as queries:
        backend.get_task_meta("r1", cache=False)
    assert len(queries) == 1


def test_user_meta_is_stored_but_cannot_replace_protocol_keys(backend: DatabaseBackend) -> None:
    request = task_request("m1", meta={"status": "FORGED", "result": "forged", "owner": "alice"})
    backend.store_result("m1", "real", states.SUCCESS, request=request)
    meta = backend.get_task_meta("m1", cache=False)
    assert (meta["status"], meta["result"], meta["owner"]) == (states.SUCCESS, "real", "alice")


def test_missing_task_is_pending(backend: DatabaseBackend) -> None:
    meta = backend.get_task_meta("never-sent", cache=False)
    assert meta["status"] == states.PENDING
    assert meta["result"] is None
    assert not backend.task_result_exists("never-sent")
    backend.store_result("pending-row", None, states.PENDING)
    assert backend.task_result_exists("pending-row")


def test_forget_deletes_the_row(backend: DatabaseBackend) -> None:
    backend.mark_as_done("f1", 1)
    AsyncResult("f1", backend=backend).forget()
    assert not TaskResult.objects.filter(task_id="f1").exists()
    backend.forget("f1")  # forgetting twice is fine


def test_children_are_stored(backend: DatabaseBackend) -> None:
    child = AsyncResult("child-1", backend=backend)
    request = task_request("parent")
    request.children.append(child)
    backend.mark_as_done("parent", 1, request=request)
    assert backend.get_task_meta("parent", cache=False)["children"] == [[["child-1", None], None]]
    assert AsyncResult("parent", backend=backend).children[0].id == "child-1"


def test_groups_save_restore_delete(configured: Any) -> None:
    backend = configured.backend
    members = [AsyncResult(celery_uuid(), backend=backend) for _ in range(3)]
    for member in members:
        backend.mark_as_done(member.id, member.id[:4])
    group = GroupResult(celery_uuid(), members, app=configured)
    group.save(backend=backend)
    group.save(backend=backend)  # saving again replaces, no duplicate row

    restored = GroupResult.restore(group.id, backend=backend, app=configured)
    assert [r.id for r in restored.results] == [m.id for m in members]
    assert restored.join(timeout=5) == [m.id[:4] for m in members]
    assert GroupResultModel.objects.filter(group_id=group.id).count() == 1

    group.delete(backend=backend)
    assert GroupResult.restore(group.id, backend=backend, app=configured) is None
    backend.delete_group("no-such-group")  # a no-op, not an error


def test_cleanup_deletes_expired_results_groups_and_counters(celery_app_factory: Any) -> None:
    backend = celery_app_factory(result_expires=timedelta(hours=1)).backend
    for task_id in ("old-1", "old-2", "new-1"):
        backend.mark_as_done(task_id, 1)
    backend.save_group("old-group", GroupResult("old-group", [AsyncResult("old-1")]))
    long_ago = timezone.now() - timedelta(days=2)
    TaskResult.objects.filter(task_id__startswith="old").update(date_done=long_ago)
    GroupResultModel.objects.filter(group_id="old-group").update(date_done=long_ago)
    ChordCounter.objects.create(group_id="completed", sub_tasks='[[["old-1", null], null]]', count=0)
    ChordCounter.objects.filter(group_id="completed").update(date_created=long_ago)
    # Still waiting for a part: kept past result_expires, until WAITING_CHORD_EXPIRES (7 days).
    ChordCounter.objects.create(group_id="waiting", sub_tasks='[[["old-2", null], null]]', count=1)
    ChordCounter.objects.filter(group_id="waiting").update(date_created=long_ago)
    ChordCounter.objects.create(group_id="abandoned", sub_tasks='[[["old-1", null], null]]', count=1)
    ChordCounter.objects.filter(group_id="abandoned").update(date_created=timezone.now() - timedelta(days=8))
    ChordCounter.objects.create(group_id="alive", sub_tasks='[[["new-1", null], null]]', count=1)
    # A counter written by the code we replace has no date: it is kept, and its clock starts.
    ChordCounter.objects.create(group_id="dateless", sub_tasks="[]", count=1)
    ChordCounter.objects.filter(group_id="dateless").update(date_created=None)

    backend.cleanup()

    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new-1"]
    assert not GroupResultModel.objects.exists()
    assert sorted(ChordCounter.objects.values_list("group_id", flat=True)) == ["alive", "dateless", "waiting"]
    assert ChordCounter.objects.get(group_id="dateless").date_created is not None


def test_cleanup_keeps_everything_when_results_never_expire(celery_app_factory: Any) -> None:
    backend = celery_app_factory(result_expires=None).backend
    backend.mark_as_done("keep", 1)
    TaskResult.objects.update(date_done=timezone.now() - timedelta(days=3650))
    backend.cleanup()
    assert TaskResult.objects.filter(task_id="keep").exists()


# -- chords -------------------------------------------------------------------


def _chord_parts(app: Any, size: int) -> tuple[str, list[AsyncResult]]:
    group_id = celery_uuid()
    return group_id, [AsyncResult(celery_uuid(), app=app) for _ in range(size)]


def _finish_part(
    app: Any, group_id: str, part: AsyncResult, callback: Any, state: str = states.SUCCESS, value: Any = 1
) -> None:
    request = chord_part(part.id, group_id, callback)
    if state == states.SUCCESS:
        app.backend.mark_as_done(part.id, value, request=request)
    else:
        app.backend.mark_as_failure(part.id, value, traceback="tb", request=request, call_errbacks=False)


def _published(app: Any) -> list[Any]:
    return drain(app.connection_for_read())


def test_chord_sends_callback_once_with_all_results(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 4)
    app.backend.apply_chord((group_id, parts), callback)
    assert ChordCounter.objects.get(group_id=group_id).count == 4

    for index, part in enumerate(parts):
        _finish_part(app, group_id, part, callback, value=index)

    messages = _published(app)
    assert len(messages) == 1
    assert messages[0].headers["task"] == "proj.tasks.collect"
    assert messages[0].decode()[0] == [[0, 1, 2, 3]]
    # Kept at zero until cleanup, so a late duplicate is recognised as one.
    assert ChordCounter.objects.get(group_id=group_id).count == 0
    _finish_part(app, group_id, parts[0], callback, value=0)
    assert _published(app) == []


def test_chord_with_failing_part_marks_callback_failed(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 2)
    app.backend.apply_chord((group_id, parts), callback)
    _finish_part(app, group_id, parts[0], callback)
    _finish_part(app, group_id, parts[1], callback, state=states.FAILURE, value=ValueError("bad part"))

    assert _published(app) == []
    outcome = AsyncResult(callback.id, backend=app.backend)
    assert outcome.state == states.FAILURE
    assert isinstance(outcome.result, ChordError)
    assert parts[1].id in str(outcome.result)


#: Celery >= 5.6 fails each task of a chord's group body with the header's own exception.
FAILS_GROUP_BODIES = hasattr(Backend, "_handle_group_chord_error")


@pytest.mark.skipif(not FAILS_GROUP_BODIES, reason="Celery < 5.6 fails a group body as one")
def test_a_failed_part_fails_each_task_of_a_group_body_with_its_own_exception(app: Any) -> None:
    body = group(app.signature("proj.tasks.collect"), app.signature("proj.tasks.collect"), app=app)
    members = body.freeze().results
    group_id, parts = _chord_parts(app, 2)
    app.backend.apply_chord((group_id, parts), body)
    _finish_part(app, group_id, parts[0], body)
    _finish_part(app, group_id, parts[1], body, state=states.FAILURE, value=KeyError("bad part"))

    for member in members:
        outcome = AsyncResult(member.id, backend=app.backend)
        # The ChordError's __cause__ is the part's own exception, and Celery stores that.
        assert outcome.state == states.FAILURE
        assert isinstance(outcome.result, KeyError) and outcome.result.args == ("bad part",)


def test_chord_size_counts_nested_leaves(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 2)
    app.backend.apply_chord((group_id, parts), callback)
    app.backend.set_chord_size(group_id, 5)
    assert ChordCounter.objects.get(group_id=group_id).count == 5


def test_applying_the_same_chord_group_twice_does_not_crash(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 3)
    app.backend.apply_chord((group_id, parts), callback)
    app.backend.apply_chord((group_id, parts), callback)
    assert ChordCounter.objects.get(group_id=group_id).count == 3


def test_group_result_of_a_counter(app: Any) -> None:
    group_id, parts = _chord_parts(app, 2)
    app.backend.apply_chord((group_id, parts), app.signature("proj.cb"))
    header = ChordCounter.objects.get(group_id=group_id).group_result(app=app)
    assert [r.id for r in header.results] == [p.id for p in parts]


def test_backend_resolves_from_result_backend_aliases(celery_app_factory: Any) -> None:
    from django_celery_results.backends import CacheBackend

    assert isinstance(celery_app_factory("django-db").backend, DatabaseBackend)
    assert isinstance(celery_app_factory("django-cache").backend, CacheBackend)


def test_models_are_imported_lazily() -> None:
    assert DatabaseBackend.TaskModel is TaskResult
    assert DatabaseBackend.GroupModel is GroupResultModel
    assert DatabaseBackend.subpolling_interval == 0.5


def test_encode_and_decode_content(backend: DatabaseBackend) -> None:
    content_type, encoding, text = backend.encode_content({"a": [1]})
    row = TaskResult(content_type=content_type, content_encoding=encoding)
    assert backend.decode_content(row, text) == {"a": [1]}
    assert backend.decode_content(row, None) is None


def test_unique_ids_do_not_collide(backend: DatabaseBackend) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for task_id in ids:
        backend.mark_as_done(task_id, task_id)
    assert {backend.get_task_meta(i, cache=False)["result"] for i in ids} == set(ids)


def test_redelivered_part_counts_once(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 3)
    app.backend.apply_chord((group_id, parts), callback)
    _finish_part(app, group_id, parts[0], callback)
    _finish_part(app, group_id, parts[0], callback)  # acks_late redelivery
    _finish_part(app, group_id, parts[1], callback)
    assert ChordCounter.objects.get(group_id=group_id).count == 1
    assert _published(app) == []
    _finish_part(app, group_id, parts[2], callback)
    assert len(_published(app)) == 1


def test_part_of_an_unknown_chord_marks_the_callback_failed(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    _finish_part(app, "never-applied", AsyncResult(celery_uuid(), app=app), callback)
    outcome = AsyncResult(callback.id, backend=app.backend)
    assert outcome.state == states.FAILURE
    assert "never-applied" in str(outcome.result) and "counter is missing" in str(outcome.result)


def test_parts_of_a_chord_without_counter_fail_its_callback_once(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    callback.link_error(app.signature("proj.tasks.report_error"))
    parts = [AsyncResult(celery_uuid(), app=app) for _ in range(4)]
    for part in parts:
        _finish_part(app, "counter-cleaned", part, callback)
    errbacks = [m for m in _published(app) if m.headers["task"] == "proj.tasks.report_error"]
    assert len(errbacks) == 1
    assert AsyncResult(callback.id, backend=app.backend).state == states.FAILURE
    # What the first part left behind is a completed counter: cleanup removes it like any other.
    assert ChordCounter.objects.get(group_id="counter-cleaned").count == 0


def test_a_non_final_part_is_one_statement(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 3)
    app.backend.apply_chord((group_id, parts), callback)
    with CaptureQueriesContext(connection) as queries:
        app.backend.on_chord_part_return(
            chord_part(parts[0].id, group_id, callback),
            states.SUCCESS,
            1,
        )
    # One statement on PostgreSQL; a short transaction elsewhere (tests/test_structure.py).
    assert len(queries) == STATEMENTS_PER_PART[connection.vendor], [q["sql"] for q in queries]


def test_add_to_chord_waits_for_one_more_part(app: Any) -> None:
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 1)
    app.backend.apply_chord((group_id, parts), callback)
    extra = AsyncResult(celery_uuid(), app=app)
    app.backend.add_to_chord(group_id, extra)
    _finish_part(app, group_id, parts[0], callback)
    assert _published(app) == []
    _finish_part(app, group_id, extra, callback)
    assert len(_published(app)) == 1


def test_nul_characters_are_stored_and_read_back_unchanged(backend: DatabaseBackend) -> None:
    request = task_request("nul", argsrepr="('a\x00b',)", kwargsrepr="{'k': '\x00'}")
    backend.store_result("nul", {"text": "x\x00y"}, states.SUCCESS, traceback="line\x00two", request=request)
    meta = backend.get_task_meta("nul", cache=False)
    assert meta["result"] == {"text": "x\x00y"}
    assert meta["traceback"] == "line\x00two"
    assert meta["args"] == "('a\x00b',)"
    assert meta["kwargs"] == "{'k': '\x00'}"


def test_a_result_the_serializer_cannot_encode_is_a_clear_error(backend: DatabaseBackend) -> None:
    from kombu.exceptions import EncodeError

    with pytest.raises(EncodeError, match="not JSON serializable"):
        backend.mark_as_done("bad-result", object())
    assert not TaskResult.objects.filter(task_id="bad-result").exists()


@pytest.mark.engine("postgresql", "mysql")
def test_chord_counter_is_visible_before_the_callers_transaction_commits(app: Any) -> None:
    from django.db import connections, transaction

    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id, parts = _chord_parts(app, 2)
    other = connections.create_connection("default")
    try:
        with transaction.atomic():
            TaskResult.objects.store_result("application/json", "utf-8", "in-tx", "1", states.SUCCESS)
            app.backend.apply_chord((group_id, parts), callback)
            # A worker's connection: sees the counter, not the caller's uncommitted row.
            with other.cursor() as cursor:
                cursor.execute(
                    "SELECT count FROM django_celery_results_chordcounter WHERE group_id = %s", [group_id]
                )
                assert [tuple(row) for row in cursor.fetchall()] == [(2,)]
                cursor.execute("SELECT 1 FROM django_celery_results_taskresult WHERE task_id = 'in-tx'")
                assert list(cursor.fetchall()) == []
    finally:
        other.close()
