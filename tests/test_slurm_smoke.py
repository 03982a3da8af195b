"""Smoke test of the cluster path: Snakemake's SLURM executor against a real,
single-node SLURM started by the test (tests/slurm_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEFILE = textwrap.dedent(
    """
    localrules: all

    rule all:
        input: "a.txt", "b.txt", "c.txt", "g2.txt"

    # three independent jobs: three SLURM jobs
    rule a:
        output: "a.txt"
        shell: "echo a > {output}"

    rule b:
        output: "b.txt"
        shell: "echo b > {output}"

    rule c:
        output: "c.txt"
        shell: "echo c > {output}"

    # two jobs in one group: one SLURM job
    rule g1:
        output: "g1.txt"
        group: "pair"
        shell: "echo g1 > {output}"

    rule g2:
        input: "g1.txt"
        output: "g2.txt"
        group: "pair"
        shell: "cat {input} > {output}; echo g2 >> {output}"
    """
)
EXPECTED_SUBMISSIONS = 4  # a, b, c, and the group "pair" (g1 + g2); `all` is local


def test_slurm_executor_runs_rules_and_groups(slurm, tmp_path: Path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    mark = slurm.mark()
    cmd = [
        sys.executable, "-m", "snakemake", "-s", "Snakefile", "-d", str(tmp_path),
        "--executor", "slurm", "--jobs", "10", "--latency-wait", "5",
        *slurm.snakemake_args(),
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **slurm.env}, timeout=600)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"

    for name, text in {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n", "g2.txt": "g1\ng2\n"}.items():
        assert (tmp_path / name).read_text() == text, name
    submitted = slurm.count_submitted(since=mark)
    print(f"SLURM jobs submitted: {submitted} (expected {EXPECTED_SUBMISSIONS}); snakemake took {elapsed:.1f}s")
    assert submitted == EXPECTED_SUBMISSIONS, proc.stderr[-6000:]
