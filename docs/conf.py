"""Sphinx configuration.

Build from the project root:

    .venv/bin/sphinx-build -W -b html docs docs/_build/html

autodoc imports the package, whose models need a configured Django: the
test settings are used (SQLite, nothing is connected to).
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.db import models  # noqa: E402

import django_celery_results  # noqa: E402

project = "django-celery-results"
author = "the django-celery-results drop-in replacement authors"
copyright = f"2026, {author}"
# The one version string: django_celery_results.__version__ (pyproject.toml reads it too).
release = django_celery_results.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]

# -- intersphinx ----------------------------------------------------------------
# References such as :class:`celery.result.AsyncResult` link to these projects'
# documentation. Their inventories are fetched over the network, which builds
# without access cannot do, and Sphinx reports that failure ("failed to reach any
# of the inventories") as a warning without a type, which ``suppress_warnings``
# cannot silence (sphinx/ext/intersphinx/_load.py), so it would fail -W builds.
# Each project therefore lists a second location, an empty inventory written
# below: when the first cannot be fetched Sphinx uses it and only logs at INFO
# level, and those references render as plain text instead of links.
OFFLINE_INVENTORY = Path(__file__).resolve().parent / "_build" / "empty-objects.inv"


def write_empty_inventory(path: Path) -> str:
    """An inventory (format version 2) naming no object; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"# Sphinx inventory version 2\n# Project: none\n# Version: \n"
    header += b"# The remainder of this file is compressed using zlib.\n"
    path.write_bytes(header + zlib.compress(b""))
    return str(path)


_fallback = write_empty_inventory(OFFLINE_INVENTORY)
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", (None, _fallback)),
    # Django serves its inventory under _objects/, not beside the pages.
    "django": (
        "https://docs.djangoproject.com/en/stable/",
        ("https://docs.djangoproject.com/en/stable/_objects/", _fallback),
    ),
    "celery": ("https://docs.celeryq.dev/en/stable/", (None, _fallback)),
}
intersphinx_timeout = 10
# Try the network on every build: a fallback read offline is not kept for days.
intersphinx_cache_limit = 0

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_title = f"django-celery-results {release}"
html_theme_options = {
    "description": "Celery result backends storing results through Django",
    "fixed_sidebar": True,
}

default_role = "literal"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# No default "members": a boolean default replaces a directive's own list of
# members (sphinx/ext/autodoc/_directive_options.py); api.rst names them.
autodoc_default_options = {
    "exclude-members": "DoesNotExist, MultipleObjectsReturned",
}
# Overridden Celery/Django methods without a docstring of their own would
# otherwise pull in the parent's, written for Celery's or Django's docs.
autodoc_inherit_docstrings = False


def describe_columns(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Append a table of the model's columns (from the fields' help texts) to each model."""
    if what != "class" or not isinstance(obj, type) or not issubclass(obj, models.Model):
        return
    if obj._meta.abstract or obj.__module__ != "django_celery_results.models":
        return
    indexed = {name.lstrip("-") for index in obj._meta.indexes for name in index.fields}
    rows = []
    for field in obj._meta.concrete_fields:
        kind = field.get_internal_type()
        max_length = getattr(field, "max_length", None)
        if max_length:
            kind += f" ({max_length})"
        flags = [
            flag
            for flag, on in (
                ("unique", field.unique and not field.primary_key),
                ("null", field.null),
                ("indexed", field.db_index or field.name in indexed),
            )
            if on
        ]
        if flags:
            kind += ", " + ", ".join(flags)
        meaning = str(field.help_text or "") or ("Row id" if field.primary_key else str(field.verbose_name))
        rows.append((f"``{field.column}``", kind, meaning))
    lines.extend(
        [
            "",
            f"Table ``{obj._meta.db_table}``:",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - Column",
            "     - Type",
            "     - Meaning",
        ]
    )
    for column, kind, meaning in rows:
        lines.extend([f"   * - {column}", f"     - {kind}", f"     - {meaning}"])
    lines.append("")


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", describe_columns)
