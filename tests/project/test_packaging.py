"""Packaging and docs tell the truth: one version, claims that match the classifiers, catalogs that match.

* The version is ``django_celery_results.__version__``, read by pyproject.toml
  and docs/conf.py, and named by the changelog's first heading.
* (The versions claimed, classified and tested: tests/project/test_matrix.py.)
* The translation catalogs: each compiled ``django.mo`` holds exactly the
  translations of its ``django.po`` (no gettext needed to check it), every
  entry is translated with its placeholders, the wheel carries both files, and
  the admin shows the translations.
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import itertools
import re
import runpy
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from packaging.version import Version

import django_celery_results
from django_celery_results.models import TaskResult
from tests.support import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest depends on tomli there)
    import tomli as tomllib

PACKAGE = ROOT / "django_celery_results"
LOCALE = PACKAGE / "locale"
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]
CLASSIFIERS: list[str] = PROJECT["classifiers"]


def as_version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# -- one version ----------------------------------------------------------------


def test_pyproject_reads_the_package_version() -> None:
    assert "version" not in PROJECT, "a static version in pyproject.toml would be a second one"
    assert "version" in PROJECT["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "django_celery_results.__version__"}
    # What setuptools writes into the wheel is the normalized form: keep the source in that form.
    assert str(Version(django_celery_results.__version__)) == django_celery_results.__version__


def test_docs_conf_reads_the_package_version() -> None:
    saved_path = list(sys.path)
    try:
        conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    finally:
        sys.path[:] = saved_path
    version = Version(django_celery_results.__version__)
    assert conf["release"] == django_celery_results.__version__
    assert conf["version"] == f"{version.major}.{version.minor}"
    assert django_celery_results.__version__ in conf["html_title"]


def test_the_changelog_heading_names_the_version() -> None:
    lines = (ROOT / "docs" / "changelog.rst").read_text(encoding="utf-8").splitlines()
    # The first section heading below the title: a line underlined with dashes.
    heading = next(
        line
        for line, under in itertools.pairwise(lines[1:])
        if line.strip() and re.fullmatch(r"-{3,}", under) and len(under) >= len(line)
    )
    version = Version(django_celery_results.__version__)
    if version.is_devrelease or version.is_prerelease:
        assert heading == f"Unreleased ({version.base_version})"
    else:
        assert re.fullmatch(re.escape(str(version)) + r"(?: \(\d{4}-\d{2}-\d{2}\))?", heading), heading


# -- license, metadata, package data ---------------------------------------------------


def test_license_file_and_metadata() -> None:
    assert PROJECT["license"] == "BSD-3-Clause"
    assert PROJECT["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("BSD 3-Clause License\n")
    [author] = PROJECT["authors"]
    holder = re.escape(author["name"])
    assert re.search(r"^Copyright \(c\) \d{4}, " + holder + "$", license_text, re.MULTILINE)
    assert "Neither the name of the copyright holder" in license_text
    # setuptools >= 77 refuses License classifiers beside an SPDX license expression.
    assert not [c for c in CLASSIFIERS if c.startswith("License ::")]
    assert len(set(CLASSIFIERS)) == len(CLASSIFIERS)
    assert "Development Status :: 4 - Beta" in CLASSIFIERS


def test_package_data_puts_the_catalogs_and_templates_in_the_wheel() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["django_celery_results"]
    included = {
        match for pattern in patterns for match in glob.glob(pattern, root_dir=PACKAGE, recursive=True)
    }
    shipped = {
        str(path.relative_to(PACKAGE))
        for folder in ("locale", "templates")
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file()
    }
    assert shipped, "no catalogs or templates found"
    assert shipped <= included, sorted(shipped - included)
    assert "py.typed" in included


def test_readme_quick_start_and_installation() -> None:
    quick_start = README.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.DOTALL)
    assert block and block.group(1).splitlines() == ["python3 dev.py demo", "python3 dev.py test"]
    assert "(CONTRIBUTING.md)" in README and (ROOT / "CONTRIBUTING.md").is_file()
    # The distribution name is the original package's: a bare install would fetch that one.
    commands = [
        line.strip()
        for body in re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
        for line in body.splitlines()
    ]
    assert not [c for c in commands if re.match(r"pip install (-U )?\"?django-celery-results\b", c)]
    assert "pip install /path/to/checkout" in README
    assert "pip install dist/django_celery_results-<version>-py3-none-any.whl" in README


# -- translations ---------------------------------------------------------------


LANGUAGES = sorted(path.name for path in LOCALE.iterdir() if (path / "LC_MESSAGES" / "django.po").is_file())


def test_the_catalogs_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"es", "pt_BR", "ru", "zh_Hans"} <= set(LANGUAGES)
    for language in LANGUAGES:
        assert (LOCALE / language / "LC_MESSAGES" / "django.mo").is_file(), language
    # `python3 dev.py messages` regenerates every one of them.
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec and spec.loader
    dev = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, dev)
    spec.loader.exec_module(dev)
    assert sorted(dev.LANGUAGES) == LANGUAGES


class Entry:
    """One entry of a .po file."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.fields: dict[str, str] = {}

    @property
    def key(self) -> str:
        """The entry's key in a .mo file: ``context\\x04msgid[\\x00msgid_plural]``."""
        key = self.fields["msgid"]
        if "msgid_plural" in self.fields:
            key += "\x00" + self.fields["msgid_plural"]
        if "msgctxt" in self.fields:
            key = self.fields["msgctxt"] + "\x04" + key
        return key

    @property
    def translations(self) -> list[str]:
        if "msgstr" in self.fields:
            return [self.fields["msgstr"]]
        forms = sorted(
            (int(name[7:-1]), text) for name, text in self.fields.items() if name.startswith("msgstr[")
        )
        return [text for _, text in forms]


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file (obsolete ``#~`` entries left out)."""
    entries: list[Entry] = []
    entry: Entry | None = None
    field = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#"):
            if entry is None or entry.fields:
                entry = Entry()
                entries.append(entry)
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        match = re.fullmatch(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")', line)
        if match:
            field = match.group(1)
            if entry is None or (field in ("msgid", "msgctxt") and "msgid" in entry.fields):
                entry = Entry()
                entries.append(entry)
            entry.fields[field] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and entry is not None and field:
            entry.fields[field] += ast.literal_eval(line)
        else:
            raise AssertionError(f"{path}:{number}: cannot read {line!r}")
    return entries


def po_catalog(entries: list[Entry]) -> dict[str, str]:
    """What msgfmt compiles: translated entries that are not fuzzy.

    The header is kept too, less its ``POT-Creation-Date`` line, which msgfmt leaves out.
    """
    catalog = {
        entry.key: "\x00".join(entry.translations)
        for entry in entries
        if "fuzzy" not in entry.flags and any(entry.translations)
    }
    if "" in catalog:
        catalog[""] = "".join(
            line
            for line in catalog[""].splitlines(keepends=True)
            if not line.startswith("POT-Creation-Date:")
        )
    return catalog


def mo_catalog(path: Path) -> dict[str, str]:
    """Every original and translation of a GNU .mo file, as stored."""
    data = path.read_bytes()
    order = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}[data[:4]]
    _revision, count, originals, translations = struct.unpack(order + "4I", data[4:20])

    def text(table: int, index: int) -> str:
        length, offset = struct.unpack(order + "2I", data[table + 8 * index : table + 8 * index + 8])
        return data[offset : offset + length].decode("utf-8")

    return {text(originals, i): text(translations, i) for i in range(count)}


def placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]", text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_its_source(language: str) -> None:
    folder = LOCALE / language / "LC_MESSAGES"
    source = po_catalog(read_po(folder / "django.po"))
    compiled = mo_catalog(folder / "django.mo")
    assert compiled.keys() == source.keys(), "django.mo is out of date: run `python3 dev.py messages`"
    stale = sorted(key for key in source if compiled[key] != source[key])
    assert not stale, f"django.mo is out of date for {stale}: run `python3 dev.py messages`"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_entry_is_translated_with_its_placeholders(language: str) -> None:
    entries = read_po(LOCALE / language / "LC_MESSAGES" / "django.po")
    header, messages = entries[0], entries[1:]
    assert header.fields["msgid"] == ""
    meta = dict(line.split(": ", 1) for line in header.fields["msgstr"].splitlines() if ": " in line)
    assert meta["Language"] == language
    assert meta["Content-Type"].lower() == "text/plain; charset=utf-8"
    plurals = int(re.search(r"nplurals=(\d+)", meta["Plural-Forms"]).group(1))
    assert len(messages) >= 50
    for entry in messages:
        assert "fuzzy" not in entry.flags, entry.fields["msgid"]
        assert all(entry.translations), f"untranslated: {entry.fields['msgid']!r}"
        if "msgid_plural" in entry.fields:
            assert len(entry.translations) == plurals, entry.fields["msgid"]
        expected = placeholders(entry.fields["msgid"])
        for translation in entry.translations:
            assert placeholders(translation) == expected, (entry.fields["msgid"], translation)


#: Translation functions as the package calls them: name -> (singular arg, plural arg or None).
GETTEXT_CALLS = {
    "_": (0, None),
    "gettext": (0, None),
    "gettext_lazy": (0, None),
    "ngettext": (0, 1),
    "ngettext_lazy": (0, 1),
}


def source_messages() -> set[str]:
    """The .mo keys of every message the package's modules mark for translation (literal arguments)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in GETTEXT_CALLS
                and node.args
            ):
                continue
            singular, plural = GETTEXT_CALLS[node.func.id]
            texts = [node.args[i] for i in (singular, plural) if i is not None and i < len(node.args)]
            if all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in texts):
                found.add("\x00".join(arg.value for arg in texts))  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_of_the_sources_is_in_the_catalog(language: str) -> None:
    messages = source_messages()
    assert len(messages) >= 50, "the translatable strings were not found"
    catalog = {entry.key for entry in read_po(LOCALE / language / "LC_MESSAGES" / "django.po")}
    missing = sorted(messages - catalog)
    assert not missing, (
        f"not in the {language} catalog (run `python3 dev.py messages`, then translate): {missing}"
    )


#: Django language code -> the model's plural name, the app's name and the task id column, as shown.
ADMIN_LABELS = {
    "es": ("Resultados de tareas", "Resultados de Celery", "ID de la tarea"),
    "pt-br": ("Resultados de tarefas", "Resultados do Celery", "ID da tarefa"),
    "ru": ("Результаты задач", "Результаты Celery", "ID задачи"),
    "zh-hans": ("任务结果", "Celery 结果", "任务 ID"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("language", sorted(ADMIN_LABELS))
def test_the_admin_changelist_is_translated(admin_client: Client, language: str) -> None:
    TaskResult.objects.create(
        task_id="translated-row",
        status="SUCCESS",
        content_type="application/json",
        content_encoding="utf-8",
        result="1",
    )
    with override_settings(LANGUAGE_CODE=language):
        response = admin_client.get(reverse("admin:django_celery_results_taskresult_changelist"))
    assert response.status_code == 200
    page = response.content.decode("utf-8")
    assert "translated-row" in page
    for label in ADMIN_LABELS[language]:
        assert label in page, label
    for english in ("Task results", "Celery Results", "Task ID"):
        assert english not in page, english
