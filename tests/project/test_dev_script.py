"""dev.py's closing line, the one CI reads, comes from the cells' real JUnit reports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script_summary", ROOT / "dev.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_summary_counts_what_pytest_reported(
    dev: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "test_cell.py").write_text(
        textwrap.dedent("""
        import pytest

        def test_ok(record_testsuite_property):
            record_testsuite_property("server", "sqlite 3")

        @pytest.mark.parametrize("n", [1, 2])
        def test_more(n):
            pass

        def test_broken():
            assert False

        @pytest.mark.skip(reason="not here")
        def test_skipped():
            pass

        @pytest.fixture
        def failing():
            raise RuntimeError("setup")

        def test_error(failing):
            pass
    """)
    )
    report = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:django",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
            "test_cell.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    outcome = dev.read_outcome("py0-cell-sqlite", report)
    assert (outcome.passed, outcome.failed, outcome.skipped) == (3, 2, 1)
    assert outcome.properties == {"server": "sqlite 3"}
    missing = dev.read_outcome("py0-cell-mysql", tmp_path / "absent.xml")
    assert not missing.ran and "no test report" in missing.reason

    dev.print_summary([outcome, missing])
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert lines[-1] == "3 passed, 2 failed, 1 skipped"
    assert any("py0-cell-mysql" in line and "not run" in line for line in lines)
