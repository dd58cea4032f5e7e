"""The report: a table for people, then one JSON line per figure for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .figures import Figure

HEADERS = ("figure", "unit", "ours", "floor", "ours/floor", "upstream/floor", "statements", "target", "met")


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
        (f.name, f.unit, _cell(f.ours), _cell(f.floor), _cell(f.ratio), _cell(f.upstream_ratio),
         f.statements, f.target,
         _cell(f.met) if f.met is not None else "-")
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
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                 for row in [HEADERS, tuple("-" * w for w in widths), *body]]
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def json_lines(figures: Sequence[Figure], context: dict[str, Any]) -> str:
    """One JSON object per figure, each carrying the run's context (engine, versions, sizes)."""
    return "\n".join(json.dumps({**context, **asdict(f)}, default=str) for f in figures)
