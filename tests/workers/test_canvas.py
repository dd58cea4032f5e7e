"""Canvas through a real worker: chains, groups, chords (nested, failing) and saved group results."""

from __future__ import annotations

from typing import Any

import pytest
from celery import chain, chord, group, states
from celery.exceptions import ChordError
from celery.result import GroupResult

from tests.support.rows import assert_dates_in_order, assert_ran_on, decoded, row, rows, wait_all
from tests.support.workers import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

GROUP_SIZE = 100
CHORD_SIZE = 200


def chord_counter(group_id: str) -> Any:
    from django_celery_results.models import ChordCounter

    return ChordCounter.objects.get(group_id=group_id)


def counted_parts(counter: Any) -> set[str]:
    parts = type(counter).objects.parts().filter(group_id=counter.group_id)
    return set(parts.values_list("task_id", flat=True))


def test_chain_passes_each_result_on(worker: Worker) -> None:
    add = worker.tasks.add
    last = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()
    worker.wait(last)

    assert last.get(timeout=5) == 10
    links = [last.parent.parent, last.parent, last]
    assert [link.get(timeout=5) for link in links] == [3, 6, 10]
    stored = rows(link.id for link in links)
    assert [decoded(stored[link.id].task_args) for link in links] == ["(1, 2)", "(3, 3)", "(6, 4)"]
    for link, value in zip(links, (3, 6, 10), strict=True):
        found = stored[link.id]
        assert (found.status, decoded(found.result)) == (states.SUCCESS, value)
        assert_ran_on(found, worker, "tests.support.workers.add")
        assert_dates_in_order(found)
    # Each link started after the one before had started, and names the next as its child.
    starts = [stored[link.id].date_started for link in links]
    assert starts == sorted(starts)
    assert [child.id for child in links[0].children] == [links[1].id]
    assert [child.id for child in links[1].children] == [last.id]


def test_group_joins_with_join_and_join_native(worker: Worker) -> None:
    add = worker.tasks.add
    result = group(add.s(i, i) for i in range(GROUP_SIZE)).apply_async()
    expected = [2 * i for i in range(GROUP_SIZE)]

    assert result.join(timeout=60) == expected
    assert result.join_native(timeout=60) == expected
    assert (result.ready(), result.successful(), result.completed_count()) == (True, True, GROUP_SIZE)
    stored = rows(part.id for part in result.results)
    assert len(stored) == GROUP_SIZE
    for i, part in enumerate(result.results):
        found = stored[part.id]
        assert (found.status, decoded(found.result), decoded(found.task_args)) == (
            states.SUCCESS,
            2 * i,
            f"({i}, {i})",
        )
        assert_ran_on(found, worker, "tests.support.workers.add")
        assert_dates_in_order(found)


def test_chord_callback_gets_every_part(worker: Worker) -> None:
    tasks = worker.tasks
    result = chord((tasks.add.s(i, i) for i in range(CHORD_SIZE)), tasks.total.s()).apply_async()
    worker.wait(result, timeout=120)

    expected = [2 * i for i in range(CHORD_SIZE)]
    assert result.get(timeout=5) == sum(expected)
    header = result.parent
    assert [part.get(timeout=5) for part in header.results] == expected
    callback = row(result.id)
    assert (callback.status, decoded(callback.result)) == (states.SUCCESS, sum(expected))
    assert decoded(callback.task_args).startswith("([0, 2, 4, 6")
    assert_ran_on(callback, worker, "tests.support.workers.total")
    stored = rows(part.id for part in header.results)
    assert {found.status for found in stored.values()} == {states.SUCCESS}
    assert len(stored) == CHORD_SIZE
    # The callback started once the last part was done.
    assert max(found.date_done for found in stored.values()) <= callback.date_started
    counter = chord_counter(header.id)
    assert counter.count == 0
    assert counted_parts(counter) == {part.id for part in header.results}


def test_chord_with_a_group_in_its_header(worker: Worker) -> None:
    tasks = worker.tasks
    header = [tasks.add.s(1, 1), group(tasks.add.s(2, 2), tasks.add.s(3, 3)), tasks.add.s(4, 4)]
    result = chord(header, tasks.echo.s()).apply_async()
    worker.wait(result, timeout=60)

    # Celery unrolls a group nested in a header: the callback gets one value per
    # leaf task, in the order of the header's results (Celery's Redis backend
    # gives the same list).
    values = result.get(timeout=5)
    header_result = result.parent
    assert len(header_result.results) == 4
    assert values == [part.get(timeout=5) for part in header_result.results]
    assert sorted(values) == [2, 4, 6, 8]
    callback = row(result.id)
    assert (callback.status, decoded(callback.result)) == (states.SUCCESS, values)
    assert_ran_on(callback, worker, "tests.support.workers.echo")
    counter = chord_counter(header_result.id)
    assert counter.count == 0
    assert counted_parts(counter) == {part.id for part in header_result.results}


def test_chord_with_a_failed_part_fails_its_callback(worker: Worker) -> None:
    tasks = worker.tasks
    header = [tasks.add.s(1, 1), tasks.fail.s("part failed"), tasks.add.s(2, 2)]
    result = chord(header, tasks.total.s()).apply_async()
    worker.wait(result, timeout=60)
    parts = result.parent.results
    wait_all(worker, parts)

    assert result.state == states.FAILURE
    assert isinstance(result.result, ChordError)
    assert parts[1].id in str(result.result)
    assert "part failed" in str(result.result)
    # get() raises the header's error first, as for any result whose parent failed.
    with pytest.raises(ValueError, match="part failed"):
        result.get(timeout=5)
    assert isinstance(result.get(timeout=5, propagate=False), ChordError)
    callback = row(result.id)
    assert callback.status == states.FAILURE
    assert decoded(callback.result)["exc_type"] == "ChordError"
    assert "ChordError" in callback.traceback
    stored = rows(part.id for part in parts)
    assert [stored[part.id].status for part in parts] == [states.SUCCESS, states.FAILURE, states.SUCCESS]
    failed = stored[parts[1].id]
    assert "ValueError: part failed" in failed.traceback
    assert_ran_on(failed, worker, "tests.support.workers.fail")
    assert isinstance(parts[1].result, ValueError)


def test_group_result_save_restore_delete(worker: Worker) -> None:
    from django_celery_results.models import GroupResult as GroupResultModel

    add = worker.tasks.add
    result = group(add.s(i, 1) for i in range(5)).apply_async()
    assert result.join(timeout=30) == [1, 2, 3, 4, 5]

    result.save()

    saved = GroupResultModel.objects.get(group_id=result.id)
    assert saved.content_type == "application/json"
    assert [item[0][0] for item in decoded(saved.result)[1]] == [part.id for part in result.results]
    restored = GroupResult.restore(result.id, app=worker.app)
    assert restored is not None
    assert [part.id for part in restored.results] == [part.id for part in result.results]
    assert restored.join(timeout=5) == [1, 2, 3, 4, 5]
    assert restored.successful()

    restored.delete()

    assert not GroupResultModel.objects.filter(group_id=result.id).exists()
    assert GroupResult.restore(result.id, app=worker.app) is None
    # The members' own results stay.
    assert {found.status for found in rows(part.id for part in result.results).values()} == {states.SUCCESS}
