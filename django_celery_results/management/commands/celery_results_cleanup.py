"""``manage.py celery_results_cleanup``: delete expired task results, group results and chord counters.

It runs the same :class:`~django_celery_results.cleanup.Cleanup` as
``backend.cleanup()`` (the ``celery.backend_cleanup`` periodic task), with
options to narrow it and to see what it would do first. Decisions:

* ``--older-than`` defaults to ``result_expires`` of the current Celery app:
  the project's app when its module is imported at Django startup, as the
  Celery docs recommend; otherwise Celery's default app, whose
  ``result_expires`` is Celery's default of 1 day. When ``result_expires`` is
  None (results never expire) the command refuses to guess and asks for
  ``--older-than``. ``-v 2`` shows which app the default came from.
* ``--status`` and ``--task-name`` select task results. Group results and
  chord counters have no state or task name: a filter cannot say which of
  them belong to the selected tasks, so they are kept unless
  ``--include-groups``/``--include-chords`` ask for them (then those older
  than the cutoff go, whatever their members). Without a filter all three go.
* Rows are deleted from each model's write alias (``router.db_for_write``).
  ``--database`` names one alias for all three tables; the command refuses an
  unknown alias, an alias the routers read the results from but do not
  write them to (a read replica: its primary's deletions reach it), and an
  alias the routers keep the tables out of (``allow_migrate``). Any other
  alias is accepted, e.g. a second database holding its own results.
* Deletion runs oldest first, ``--batch-size`` rows per short transaction
  (1 to 1,000,000, checked before any query, as is the setting it defaults to).
  SIGINT (Ctrl-C) or SIGTERM stops it after the batch in flight commits;
  a second signal stops it at once and that batch rolls back. Either way
  the command reports what was deleted and exits with 128 + the signal
  number (130 for Ctrl-C). A database error exits with status 1. Exit
  status 0 means the cleanup finished.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

from celery import states
from celery.utils.time import maybe_timedelta
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db import DatabaseError, router

from django_celery_results.cleanup import CHORDS, GROUPS, KINDS, TABLES, TASKS, Cleanup
from django_celery_results.conf import app_settings
from django_celery_results.utils import now

AGE = re.compile(
    r"(?:(?P<weeks>\d+)w)?(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?"
)
AGE_HELP = "a number and a unit: s, m, h, d or w (e.g. 90s, 30m, 12h, 7d, 2w, or 1d12h)"

#: Rows per batch the command accepts (1 to 1,000,000).
BATCH_SIZES = range(1, 1_000_001)
BATCH_SIZE_SETTING = 'DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"]'

#: Signals that stop the cleanup after the batch in flight.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w``, or units combined largest first (``1d12h``).

    Raises ``ValueError`` with a message for the operator.
    """
    match = AGE.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"Invalid --older-than {text!r}: use {AGE_HELP}.")
    try:
        return timedelta(**{unit: int(amount) for unit, amount in match.groupdict().items() if amount})
    except OverflowError:
        raise ValueError(f"Invalid --older-than {text!r}: too long ago.") from None


def plural(count: float, noun: str) -> str:
    """``1 day``, ``2 days``, ``1.5 seconds``; ``noun`` is singular."""
    amount = f"{count:g}" if isinstance(count, float) else str(count)
    return f"{amount} {noun}" if count == 1 else f"{amount} {noun}s"


def describe_age(age: timedelta) -> str:
    """``7 days``, ``1 day 12 hours``, ``1 minute 30 seconds``."""
    rest = age.total_seconds()
    parts = []
    for noun, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(plural(int(amount), noun))
    if rest or not parts:
        parts.append(plural(round(rest, 6), "second"))
    return " ".join(parts)


@contextmanager
def stop_requests() -> Iterator[list[int]]:
    """Collect SIGINT/SIGTERM instead of dying of them; yield the signals received.

    The first signal only asks to stop (the caller checks between batches);
    it also puts the previous handlers back, so a second signal acts at
    once (Ctrl-C raises ``KeyboardInterrupt`` in the batch in flight). Handlers
    can only be set in the main thread: elsewhere nothing is collected.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def ask_to_stop(number: int, frame: FrameType | None) -> None:
        received.append(number)
        restore()

    for number in STOP_SIGNALS:
        signal.signal(number, ask_to_stop)
    try:
        yield received
    finally:
        restore()


class ProgressLine:
    """One terminal line, rewritten after each batch: rows deleted of those counted at the start.

    Shown on a terminal only: the count costs one COUNT per table before the first batch.
    """

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out = out
        self.total = total
        self.shown = False

    def update(self, done: int) -> None:
        share = min(100, done * 100 // self.total) if self.total else 100
        self.out.write(f"\rDeleting expired results: {done}/{self.total} rows ({share}%)", ending="")
        self.out.flush()
        self.shown = True

    def close(self) -> None:
        """End the line, so what follows starts on a line of its own."""
        if self.shown:
            self.out.write("")
            self.shown = False


class Command(BaseCommand):
    help = (
        "Delete task results, group results and chord counters older than a given age, in short "
        "batches, oldest first. Try --dry-run first. Exit status 0 means the cleanup finished."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than", metavar="DURATION",
            help=f"Delete rows older than this: {AGE_HELP}. Default: result_expires of the "
            "current Celery app (Celery's default: 1 day); refused when it is None.",
        )
        parser.add_argument(
            "--status", action="append", metavar="STATE",
            help="Only task results in this state (exact, e.g. SUCCESS); repeat for several. "
            "Keeps group results and chord counters unless --include-groups/--include-chords.",
        )
        parser.add_argument(
            "--task-name", action="append", metavar="NAME",
            help="Only task results of this task (exact name); repeat for several. "
            "Keeps group results and chord counters unless --include-groups/--include-chords.",
        )
        parser.add_argument(
            "--include-groups", action=argparse.BooleanOptionalAction,
            help="Also delete expired group results. Default: yes, unless --status or --task-name is given.",
        )
        parser.add_argument(
            "--include-chords", action=argparse.BooleanOptionalAction,
            help="Also delete chord counters older than the cutoff (their chord completed or was "
            "abandoned). Default: yes, unless --status or --task-name is given.",
        )
        parser.add_argument(
            "--batch-size", type=int, metavar="N",
            help="Rows deleted per transaction, from 1 to 1,000,000. Default: "
            "DJANGO_CELERY_RESULTS['CLEANUP_BATCH_SIZE'] (1000 when unset).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing.",
        )
        parser.add_argument(
            "--database", metavar="ALIAS",
            help="Delete from this database alias. Default: each model's write alias from the routers; "
            "a read replica is refused.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        age, origin = self.age(options["older_than"])
        statuses = tuple(dict.fromkeys(options["status"] or ()))
        task_names = tuple(dict.fromkeys(options["task_name"] or ()))
        filtered = bool(statuses or task_names)
        included = {
            GROUPS: not filtered if options["include_groups"] is None else bool(options["include_groups"]),
            CHORDS: not filtered if options["include_chords"] is None else bool(options["include_chords"]),
        }
        try:
            before = now() - age
        except OverflowError:
            raise CommandError(f"Invalid --older-than: {describe_age(age)} ago is before year 1.") from None
        cleanup = Cleanup(
            before=before, statuses=statuses, task_names=task_names,
            groups=included[GROUPS], chords=included[CHORDS],
            batch_size=self.batch_size(options["batch_size"]), database=options["database"],
        )
        self.check_database(cleanup)
        if verbosity >= 1:
            self.explain_filters(statuses, options)
        if verbosity >= 2:
            where = ", ".join(f"{kind} on '{cleanup.alias(kind)}'" for kind in cleanup.kinds)
            self.stdout.write(
                f"Cleaning {where}: older than {describe_age(age)} ({origin}), before "
                f"{before.isoformat()}, {cleanup.batch_size} rows per batch."
            )
        started = time.monotonic()
        if options["dry_run"]:
            counts = cleanup.count()
            verb = "Would delete"
        else:
            counts = self.delete(cleanup, age, verbosity)
            verb = "Deleted"
        if verbosity >= 1:
            line = (
                f"{verb} {self.amounts(cleanup, counts)} older than {describe_age(age)} "
                f"({time.monotonic() - started:.1f} s)."
            )
            self.stdout.write(line if options["dry_run"] else self.style.SUCCESS(line))

    # -- options ----------------------------------------------------------------------------

    def age(self, text: str | None) -> tuple[timedelta, str]:
        """The age from ``--older-than``, else from the Celery app; and where it came from."""
        if text is not None:
            try:
                return parse_age(text), "--older-than"
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        from celery import current_app

        expires = current_app.conf.result_expires
        if not expires:
            raise CommandError(
                f"result_expires of the Celery app {current_app.main!r} is {expires!r}: its results "
                "never expire. Pass --older-than to say which results to delete."
            )
        return maybe_timedelta(expires), f"result_expires of the Celery app {current_app.main!r}"

    def batch_size(self, value: int | str | None) -> int:
        """``--batch-size``, else the setting, within :data:`BATCH_SIZES`; checked before any query.

        Past the bound the driver fails mid-run (a ``LIMIT`` beyond 64 bits), and a
        million rows is already one long transaction.
        """
        source = "--batch-size"
        try:
            if value is None:
                source = BATCH_SIZE_SETTING
                value = app_settings.cleanup_batch_size
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size not in BATCH_SIZES:
            given = "" if value is None else f" {value!r}"  # None: the setting is not a number
            raise CommandError(
                f"Invalid {source}{given}: it must be a whole number from "
                f"{BATCH_SIZES.start:,} to {BATCH_SIZES.stop - 1:,}."
            )
        return size

    def check_database(self, cleanup: Cleanup) -> None:
        """Refuse an alias that is unknown, a read replica of the results, or without their tables."""
        alias = cleanup.database
        if alias is None:
            return
        if alias not in settings.DATABASES:
            known = ", ".join(repr(name) for name in settings.DATABASES)
            raise CommandError(f"Unknown --database {alias!r}: DATABASES defines {known}.")
        for kind in cleanup.kinds:
            model, _ = TABLES[kind]
            write = router.db_for_write(model)
            if alias != write and router.db_for_read(model) == alias:
                raise CommandError(
                    f"--database {alias!r} is where the routers read {kind} from, but they write them "
                    f"to {write!r}: a read replica is not cleaned, its primary is. "
                    f"Use --database {write!r} or leave the option out."
                )
            if not router.allow_migrate_model(alias, model):
                raise CommandError(f"--database {alias!r}: the routers keep the {kind} table out of it.")

    def explain_filters(self, statuses: tuple[str, ...], options: dict[str, Any]) -> None:
        unknown = [status for status in statuses if status not in states.ALL_STATES]
        if unknown:
            self.stderr.write(
                f"Note: {', '.join(unknown)} is not a built-in Celery state (states are case-sensitive); "
                "only task results stored with exactly this state match."
            )
        if not (statuses or options["task_name"]):
            return
        kept = [kind for kind, flag in ((GROUPS, "include_groups"), (CHORDS, "include_chords"))
                if options[flag] is None]
        if kept:
            self.stdout.write(
                f"Keeping {' and '.join(kept)}: --status and --task-name select task results only "
                "(add --include-groups or --include-chords to clean them too)."
            )

    # -- running ------------------------------------------------------------------------------

    def delete(self, cleanup: Cleanup, age: timedelta, verbosity: int) -> dict[str, int]:
        """Run the cleanup batch by batch; stop between batches when asked to."""
        deleted = dict.fromkeys(KINDS, 0)
        progress = None
        in_flight = "stopped between two batches"
        with stop_requests() as received:
            try:
                if verbosity >= 1 and self.stdout.isatty():
                    progress = ProgressLine(self.stdout, sum(cleanup.count().values()))
                    progress.update(0)
                with closing(cleanup.delete_batches()) as batches:
                    while not received:
                        step = next(batches, None)
                        if step is None:
                            break
                        kind, count = step
                        deleted[kind] += count
                        if progress is not None:
                            progress.update(sum(deleted.values()))
            except KeyboardInterrupt:
                received.append(signal.SIGINT)
                in_flight = "the batch in flight was rolled back"
            except DatabaseError as exc:
                raise CommandError(
                    f"Failed after deleting {self.amounts(cleanup, deleted)} older than "
                    f"{describe_age(age)}: {exc}", returncode=1,
                ) from exc
            finally:
                if progress is not None:
                    progress.close()
        if received:
            name = signal.Signals(received[0]).name
            raise CommandError(
                f"Interrupted by {name} ({in_flight}): deleted {self.amounts(cleanup, deleted)} older "
                f"than {describe_age(age)} so far. Run the command again to delete the rest.",
                returncode=128 + received[0],
            )
        return deleted

    @staticmethod
    def amounts(cleanup: Cleanup, counts: dict[str, int]) -> str:
        """``12 task results (status FAILURE), 3 group results, 1 chord counter``."""
        parts = []
        for kind in cleanup.kinds:
            noun = kind[:-1] if counts[kind] == 1 else kind
            text = f"{counts[kind]} {noun}"
            if kind == TASKS and (cleanup.statuses or cleanup.task_names):
                filters = []
                if cleanup.statuses:
                    filters.append(f"status {' or '.join(cleanup.statuses)}")
                if cleanup.task_names:
                    filters.append(f"task name {' or '.join(cleanup.task_names)}")
                text += f" ({'; '.join(filters)})"
            parts.append(text)
        return ", ".join(parts)
