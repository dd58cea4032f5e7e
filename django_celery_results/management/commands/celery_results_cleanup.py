"""``manage.py celery_results_cleanup``: delete expired task results, group results and chord counters.

The same :class:`~django_celery_results.cleanup.Cleanup` as ``backend.cleanup()``,
narrowed by options, with a dry run, batches, progress and exit statuses; each
option's decisions (defaults, refusals, signals): :doc:`/cleanup`.
"""

from __future__ import annotations

import argparse
import difflib
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

from celery import states
from celery.utils.time import maybe_timedelta
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError, router
from django.db.models import Count
from django.utils import timezone

from django_celery_results.cleanup import CHORDS, GROUPS, KINDS, TABLES, TASKS, Cleanup
from django_celery_results.conf import app_settings

AGE = re.compile(
    r"(?:(?P<weeks>\d+)w)?(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+)s)?"
)
AGE_HELP = "a number and a unit: s, m, h, d or w (e.g. 90s, 30m, 12h, 7d, 2w, or 1d12h)"

#: Rows per batch the command accepts (1 to 1,000,000).
BATCH_SIZES = range(1, 1_000_001)
BATCH_SIZE_SETTING = 'DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"]'

#: Signals that stop the cleanup after the batch in flight.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Below this age a cleanup reaches tasks still queued or running: it needs ``--force``.
MIN_AGE = timedelta(minutes=1)

#: Celery's built-in states, as listed in messages.
KNOWN_STATES = tuple(sorted(states.ALL_STATES))

#: How many task names a dry run lists, the most frequent first.
TOP_TASK_NAMES = 10

#: Options whose value may start with a minus sign: the command refuses it with its own message.
SIGNED_VALUE_OPTIONS = frozenset({"--older-than", "--batch-size"})
#: A token argparse would take for an option but that is a (negative) value: a minus then a digit.
SIGNED_VALUE = re.compile(r"-\.?\d")


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w``, or units combined largest first (``1d12h``).

    Raises ``ValueError`` with a message for the operator.
    """
    if text.strip().startswith("-"):
        raise ValueError(f"Invalid --older-than {text!r}: an age cannot be negative; use {AGE_HELP}.")
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


def describe_batches(size: int | None) -> str:
    """How the cleanup batches its deletes, for the verbose header."""
    return "batches sized to about 50 ms each" if size is None else f"{size} rows per batch"


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


def check_state(status: str) -> str | None:
    """``None`` for a Celery state, a note for a custom (upper-case) one; ``CommandError`` otherwise.

    States are compared exactly, so a lower-case or misspelt one would silently match nothing.
    """
    if status in states.ALL_STATES:
        return None
    close = difflib.get_close_matches(status.upper(), KNOWN_STATES, n=1)
    if status.isupper():
        hint = f" (did you mean {close[0]}?)" if close else ""
        return (
            f"Note: {status} is not a built-in Celery state{hint}; only task results stored with "
            "exactly this state match."
        )
    if status.upper() in states.ALL_STATES:
        raise CommandError(
            f"Unknown --status {status!r}: states are case-sensitive. Did you mean --status {status.upper()}?"
        )
    if close:
        raise CommandError(
            f"Unknown --status {status!r}: did you mean {close[0]}? "
            "(A custom state is accepted when written in upper case.)"
        )
    raise CommandError(
        f"Unknown --status {status!r}: Celery's states are {', '.join(KNOWN_STATES)}; "
        "a custom state is accepted when written in upper case."
    )


class SignedValueParser(CommandParser):
    """Reads ``--older-than -5d`` as the option and its value, not as two options.

    argparse takes a token starting with ``-`` for an option unless it is a
    plain negative number, and would fail with "expected one argument"; the
    command's own check then explains why the value is refused.
    """

    def parse_known_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        tokens = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self.attach_signed_values(tokens), namespace)

    def attach_signed_values(self, tokens: list[str]) -> list[str]:
        """``["--older-than", "-5d"]`` becomes ``["--older-than=-5d"]``; other tokens are kept."""
        attached: list[str] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token == "--":  # what follows is positional
                return attached + tokens[index:]
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is not None and SIGNED_VALUE.match(following) and self.takes_signed_value(token):
                attached.append(f"{token}={following}")
                index += 2
            else:
                attached.append(token)
                index += 1
        return attached

    def takes_signed_value(self, token: str) -> bool:
        """Whether ``token`` names one of :data:`SIGNED_VALUE_OPTIONS`, in full or abbreviated."""
        if token in SIGNED_VALUE_OPTIONS:
            return True
        if not (self.allow_abbrev and token.startswith("--") and len(token) > 2):
            return False
        names = {name for action in self._actions for name in action.option_strings if name.startswith(token)}
        return len(names) == 1 and names <= SIGNED_VALUE_OPTIONS


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

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Django's parser, reading values that start with a minus sign (:class:`SignedValueParser`)."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds the parser itself; the subclass only adds how arguments are read.
        parser.__class__ = SignedValueParser
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help=f"Delete rows older than this: {AGE_HELP}. Default: result_expires of the "
            "current Celery app (Celery's default: 1 day); refused when it is None. "
            "Under a minute needs --force.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Delete even when the age is under a minute, which also reaches tasks still queued "
            "or running (a result is dated by its latest state).",
        )
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATE",
            help="Only task results in this state (exact, e.g. SUCCESS; a custom state in upper "
            "case); repeat for several. "
            "Keeps group results and chord counters unless --include-groups/--include-chords.",
        )
        parser.add_argument(
            "--task-name",
            action="append",
            metavar="NAME",
            help="Only task results of this task (exact name); repeat for several. "
            "Keeps group results and chord counters unless --include-groups/--include-chords.",
        )
        parser.add_argument(
            "--include-groups",
            action=argparse.BooleanOptionalAction,
            help="Also delete expired group results. Default: yes, unless --status or --task-name is given.",
        )
        parser.add_argument(
            "--include-chords",
            action=argparse.BooleanOptionalAction,
            help="Also delete chord counters older than the cutoff (their chord completed or was "
            "abandoned). Default: yes, unless --status or --task-name is given.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            metavar="N",
            help="Rows deleted per transaction, from 1 to 1,000,000. Default: "
            "DJANGO_CELERY_RESULTS['CLEANUP_BATCH_SIZE']; when unset, each batch is sized to "
            "take about 50 ms.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted, also per state and for the 10 most frequent task "
            "names; delete nothing.",
        )
        parser.add_argument(
            "--database",
            metavar="ALIAS",
            help="Delete from this database alias. Default: each model's write alias from the routers; "
            "a read replica is refused.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        age, origin = self.age(options["older_than"])
        too_young = age < MIN_AGE and not options["force"]
        if too_young and not options["dry_run"]:
            raise CommandError(
                f"Refusing an age under a minute without --force: older than {describe_age(age)} "
                f"({origin}) also reaches tasks still queued or running, whose results are dated by "
                "their latest state. Pass --force to delete them anyway."
            )
        statuses = tuple(dict.fromkeys(options["status"] or ()))
        notes = [note for note in map(check_state, statuses) if note]
        task_names = tuple(dict.fromkeys(options["task_name"] or ()))
        filtered = bool(statuses or task_names)
        included = {
            GROUPS: not filtered if options["include_groups"] is None else bool(options["include_groups"]),
            CHORDS: not filtered if options["include_chords"] is None else bool(options["include_chords"]),
        }
        try:
            before = timezone.now() - age
        except OverflowError:
            raise CommandError(f"Invalid --older-than: {describe_age(age)} ago is before year 1.") from None
        cleanup = Cleanup(
            before=before,
            statuses=statuses,
            task_names=task_names,
            groups=included[GROUPS],
            chords=included[CHORDS],
            batch_size=self.batch_size(options["batch_size"]),
            database=options["database"],
        )
        self.check_database(cleanup)
        if verbosity >= 1:
            for note in notes:
                self.stderr.write(note)
            if too_young:
                self.stderr.write(
                    f"Note: older than {describe_age(age)} is under a minute: the cleanup itself "
                    "needs --force."
                )
            self.explain_filters(statuses, options)
        if verbosity >= 2:
            where = ", ".join(f"{kind} on '{cleanup.alias(kind)}'" for kind in cleanup.kinds)
            self.stdout.write(
                f"Cleaning {where}: older than {describe_age(age)} ({origin}), before "
                f"{before.isoformat()}, {describe_batches(cleanup.batch_size)}."
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
            if options["dry_run"] and counts[TASKS]:
                self.show_breakdown(cleanup, counts[TASKS])

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

    def batch_size(self, value: int | str | None) -> int | None:
        """``--batch-size``, else the setting, within :data:`BATCH_SIZES`; checked before any query.

        Past the bound the driver fails mid-run (a ``LIMIT`` beyond 64 bits), and a
        million rows is already one long transaction.
        """
        source = "--batch-size"
        try:
            if value is None:
                source = BATCH_SIZE_SETTING
                value = app_settings.cleanup_batch_size
                if value is None:
                    return None  # unset: each batch sized to take about 50 ms
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
        """Say that a filter keeps group results and chord counters unless they are asked for."""
        if not (statuses or options["task_name"]):
            return
        kept = [
            kind
            for kind, flag in ((GROUPS, "include_groups"), (CHORDS, "include_chords"))
            if options[flag] is None
        ]
        if kept:
            self.stdout.write(
                f"Keeping {' and '.join(kept)}: --status and --task-name select task results only "
                "(add --include-groups or --include-chords to clean them too)."
            )

    # -- running ------------------------------------------------------------------------------

    def show_breakdown(self, cleanup: Cleanup, total: int) -> None:
        """The task results a dry run counted, per state and for the most frequent task names.

        Two ``GROUP BY`` queries over the rows the cleanup selects (through the
        date index), each returning a bounded number of rows. On MySQL the
        groups follow the column's collation: names differing only in case
        are counted together (the filters themselves stay exact).
        """
        rows = cleanup.rows(TASKS).order_by()
        by_state = rows.values("status").annotate(rows=Count("*")).order_by("-rows", "status")
        by_name = (
            rows.values("task_name").annotate(rows=Count("*")).order_by("-rows", "task_name")[:TOP_TASK_NAMES]
        )
        width = len(str(total))
        lines = ["Task results by state:"]
        lines += [f"  {group['rows']:>{width}}  {group['status']}" for group in by_state]
        names = list(by_name)
        others = total - sum(group["rows"] for group in names)
        lines.append(
            f"Task results by task name (the {TOP_TASK_NAMES} most frequent):"
            if others > 0
            else "Task results by task name:"
        )
        for group in names:
            name = group["task_name"]
            label = "(no task name)" if name is None else name or "(empty task name)"
            lines.append(f"  {group['rows']:>{width}}  {label}")
        if others > 0:
            lines.append(f"  {others:>{width}}  (other task names)")
        self.stdout.write("\n".join(lines))

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
                    f"{describe_age(age)}: {exc}",
                    returncode=1,
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
