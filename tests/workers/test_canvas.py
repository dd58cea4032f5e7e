"""Canvas through a real worker: chains, groups and saved group results (chords: test_chords.py)."""

from __future__ import annotations

import pytest
from celery import chain, group, states
from celery.result import GroupResult

from tests.support.rows import assert_dates_in_order, assert_ran_on, decoded, rows
from tests.support.workers import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

GROUP_SIZE = 100
CHORD_SIZE = 200


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
