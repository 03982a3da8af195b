"""Keeps benchmarks/run.py from rotting: the smallest run, no timing asserted. It
writes only under its temporary folder (``--cache``) and installs nothing (``--tools
none``: the dcm2bids comparison needs a pip install into its own virtualenv)."""

import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow


def test_benchmark_entry_point_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--subjects", "1", "--cores", "2",
         "--tools", "none", "--cache", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NIfTI export, 1 subjects (3 series) vs `xargs -P 2 dcm2niix`" in proc.stdout
    assert "re-run after adding one subject" in proc.stdout
    assert "| 100 |" in proc.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"work-quick", "cohort-small-3"}  # its cohort and work, here


def test_orchestration_benchmark_quick(tmp_path):
    """benchmarks/orchestration.py (issue 23): emulated wide export and copy vs cp -r."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "orchestration.py"), "--quick", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ms a series" in proc.stdout and "xargs -P 16" in proc.stdout
    assert "`cp -r` of the subject folders" in proc.stdout
