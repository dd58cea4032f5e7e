"""The report: a table for people, then one JSON line per figure for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .figures import Figure

HEADERS = (
    "figure",
    "unit",
    "ours",
    "floor",
    "ours/floor",
    "upstream (ms, /floor)",
    "ours vs upstream",
    "redis (ms, /floor)",
    "sqlalchemy (ms, /floor)",
    "statements",
    "target",
    "met",
)
#: Figures whose number is a time (lower is better); the rest (cleanup) are rows/s.
LATENCY = ("latency", "latency_p99")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    """The table's rows, as text."""
    return [
        (
            f.name,
            f.unit,
            _cell(f.ours),
            _cell(f.floor),
            _cell(f.ratio),
            _cell(f.upstream),
            _cell(f.vs_upstream),
            _cell(f.redis),
            _cell(f.sqlalchemy),
            f.statements,
            f.target,
            _cell(f.met) if f.met is not None else "-",
        )
        for f in figures
    ]


def table(figures: Sequence[Figure], markdown: bool = False) -> str:
    """The figures as an aligned text table (or a Markdown one), notes below."""
    body = rows(figures)
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    else:
        widths = [max(len(row[i]) for row in [HEADERS, *body]) for i in range(len(HEADERS))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [HEADERS, tuple("-" * w for w in widths), *body]
        ]
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def _find(figures: Sequence[Figure], name: str) -> Figure | None:
    return next((f for f in figures if f.name == name), None)


def _faster(
    figures: Sequence[Figure],
    peer: str,
    names: Sequence[str] | None = None,
) -> tuple[bool | None, str]:
    """Whether ours beats ``peer`` on each figure it ran (floor ratios; latency in ms)."""
    verdicts, losses = [], []
    for f in figures:
        if names is not None and f.name not in names:
            continue
        theirs = f.details.get(f"{peer}_compared")
        ours = f.ours if f.name in LATENCY else f.ratio
        if theirs is None or ours is None:
            continue
        verdicts.append(ours < theirs)
        if ours >= theirs:
            losses.append(f"{f.name} {ours:g} vs {theirs:g}")
    if not verdicts:
        return None, "not measured"
    return all(verdicts), ("slower on " + ", ".join(losses)) if losses else f"{len(verdicts)} figures"


def targets(figures: Sequence[Figure]) -> list[tuple[str, bool | None, str]]:
    """``(target, met, what was measured)`` for each target of the issue, from one run's figures."""
    found: list[tuple[str, bool | None, str]] = []

    def ratio_target(name: str, label: str, limit: float) -> None:
        f = _find(figures, name)
        if f is None or f.ratio is None:
            found.append((label, None, "not measured"))
        else:
            found.append((label, f.ratio <= limit, f"{f.ratio:g}x"))

    ratio_target("get_meta", "get_meta <= 1.3x floor", 1.3)
    ratio_target("group_join_native", "join_native of 200 <= 1.3x floor", 1.3)
    ratio_target("chord_part", "chord non-final part <= 1.5x floor", 1.5)
    part = _find(figures, "chord_part")
    if part is not None and "last_join_ratio" in part.details:
        ratio = part.details["last_join_ratio"]
        found.append(("chord: the last part's join <= 2x the floor's join", ratio <= 2.0, f"{ratio:g}x"))
    scale = _find(figures, "chord_scale")
    if scale is not None:
        found.append(
            (
                "chord: last 1,000 parts <= 1.2x the first 1,000",
                scale.met,
                f"x{scale.details.get('drift')} over {scale.details.get('parts'):,} parts; "
                f"tables {scale.details.get('counter_table')} + {scale.details.get('part_table')} "
                f"(before the parts: {scale.details.get('counter_table_before')} + "
                f"{scale.details.get('part_table_before')})",
            )
        )
    one, four = _find(figures, "chord_1proc"), _find(figures, "chord_4proc")
    # SQLite serialises writers: only PostgreSQL and MySQL/MariaDB are held to it.
    if one and four and one.ours and four.ours and one.details.get("engine") != "sqlite":
        found.append(
            (
                "chord: 4 processes >= 1 process (parts/s)",
                four.ours >= one.ours,
                f"{four.ours:g} vs {one.ours:g} parts/s",
            )
        )
    cleanups = [f for f in figures if f.name.startswith("cleanup_") and f.ratio is not None]
    if cleanups:
        found.append(
            (
                "cleanup >= 50% of the floor's rows/s",
                all((f.ratio or 0) >= 0.5 for f in cleanups),
                ", ".join(f"{f.name[8:]} {f.ratio:.0%}" for f in cleanups),
            )
        )
        longest = [
            (f.name[8:], f.details.get("longest_batch_ms")) for f in cleanups if f.details.get("batches")
        ]
        found.append(
            (
                "cleanup: each batch under ~100 ms (longest)",
                all((ms or 0) <= 100 for _, ms in longest) if longest else None,
                ", ".join(f"{label} {ms:g} ms" for label, ms in longest if ms is not None),
            )
        )
    p50, p99 = _find(figures, "latency"), _find(figures, "latency_p99")
    if p50 is not None and p50.ours is not None:
        p50_target = "p50 <= 2 ms" in p50.target
        if p50_target:
            found.append(("latency p50 <= 2 ms", p50.ours <= 2.0, f"{p50.ours:g} ms"))
        qps = p50.details.get("wait_qps")
        found.append(
            ("waiting get(): <= 10 statements/s after 1 s", qps is not None and qps <= 10, f"{qps}/s"),
        )
    if p99 is not None and p99.ours is not None:
        limit = 10.0 if "10 ms" in p99.target else 60.0
        found.append((f"latency p99 <= {limit:g} ms", p99.ours <= limit, f"{p99.ours:g} ms"))
    met, text = _faster(figures, "sqlalchemy")
    found.append(("faster than sqlalchemy on every figure", met, text))
    # GroupResult.get() joins natively on both backends: that is the join compared.
    met, text = _faster(figures, "redis", ("group_join_native", "chord_part"))
    found.append(("faster than redis on GroupResult.get() (native join) and chord part", met, text))
    verdicts, losses = [], []
    for f in figures:
        if f.vs_upstream is None:
            continue
        slower = f.vs_upstream < 1 if f.name.startswith("cleanup_") else f.vs_upstream > 1
        verdicts.append(not slower)
        if slower:
            losses.append(f"{f.name} {f.vs_upstream:g}")
    found.append(
        (
            "no figure slower than upstream 2.6.0",
            all(verdicts) if verdicts else None,
            ("slower on " + ", ".join(losses))
            if losses
            else (f"{len(verdicts)} figures" if verdicts else "not measured"),
        )
    )
    return found


def targets_table(figures: Sequence[Figure], markdown: bool = False) -> str:
    """The targets, each marked met (yes), not met (NO) or not measured (-)."""
    body = [(label, _cell(met) if met is not None else "-", text) for label, met, text in targets(figures)]
    headers = ("target", "met", "measured")
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|---|---|---|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [headers, *body]) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, tuple("-" * w for w in widths), *body]
    )


def json_lines(figures: Sequence[Figure], context: dict[str, Any]) -> str:
    """One JSON object per figure, each carrying the run's context (engine, versions, sizes)."""
    return "\n".join(json.dumps({**context, **asdict(f)}, default=str) for f in figures)
