"""The cluster path for real: exports through profiles/slurm on a local single-node
SLURM (tests/slurm_cluster.py, started once per session), compared with local runs
of the same tables: the 4-subject demo cohort (66 series), the real XA30 sample
session and a synthetic one (see `source` in conftest.py)."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidsport.demo_data import make_demo
from helpers import REPO, SNAKEMAKE, dataset_files, read_report, read_rows, run_workflow, write_config, write_rows

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
REAL_DCM2NIIX = Path(sys.executable).parent / "dcm2niix"
GROUP_SIZE = 50  # group-components in profiles/slurm
PROFILE_CORES = 2  # `cores` in profiles/slurm: the CPUs one series job asks for
BROKEN = "P-002/M00/03_t2_tse"  # the demo series our fake dcm2niix refuses


def nifti_digests(root):
    """File set + checksums of the NIfTI voxels (gzip headers hold a timestamp)."""
    out = {}
    for rel in dataset_files(root):
        if rel.endswith(".nii.gz"):
            out[rel] = hashlib.sha256(gzip.decompress((root / rel).read_bytes())).hexdigest()
    return out


def exported_files(root):
    """The export's files; validation.json is written by a rule the runs order differently."""
    return dataset_files(root) - {"code/bidsport/validation.json"}


def cluster_run(slurm, work, cfg, *extra, cores: int | None = 2, check: bool = True):
    """``snakemake --profile profiles/slurm`` against the test cluster: (process,
    SLURM jobs submitted, wall seconds, job ids). ``cores=None`` runs it as the
    README shows it, without ``--cores``."""
    mark = slurm.mark()
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(cfg),
           "--profile", str(REPO / "profiles/slurm"), *slurm.snakemake_args(), *extra]  # fmt: skip
    if cores is not None:
        cmd += ["--cores", str(cores)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **slurm.env}, timeout=900)
    elapsed = time.monotonic() - t0
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    ids = slurm.submitted_job_ids()[mark:]
    return proc, len(ids), elapsed, ids


def kept_logs(work: Path, ids: list[int]) -> dict[int, str]:
    """The SLURM log of each job (the profile keeps those of successful jobs too)."""
    logs = {}
    for path in (work / ".snakemake" / "slurm_logs").rglob("*.log"):
        if path.stem.isdigit() and int(path.stem) in ids:
            logs[int(path.stem)] = path.read_text(errors="replace")
    return logs


def failing_dcm2niix(work: Path) -> str:
    """dcm2niix that fails for BROKEN only and is the real one otherwise."""
    path = work / "fake-dcm2niix"
    path.write_text(f'#!/bin/sh\ncase "$*" in *{BROKEN}*) echo "Error: unable to read"; exit 2;; esac\nexec {REAL_DCM2NIIX} "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="module")
def demo_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm-demo")
    make_demo(root, 4)
    return root


def test_grouped_export_runs_one_snakemake_per_job(slurm, demo_cohort, tmp_path):
    """66 series in 2 SLURM jobs: each job one Snakemake that runs its series itself,
    side by side; as fast as a local run (+30 s); the same files; one failing series
    fails alone; re-runs submit only what changed."""
    common = dict(series_table=str(demo_cohort / "series_table.tsv"), subjects_table=str(demo_cohort / "subjects.tsv"),
                  dicom_root=str(demo_cohort / "dicom"), dcm2niix_path=failing_dcm2niix(tmp_path))  # fmt: skip
    (tmp_path / "local").mkdir()
    local_cfg = write_config(tmp_path / "local", output_dir=str(tmp_path / "local-out"), **common)
    t0 = time.monotonic()
    local_proc = run_workflow(tmp_path / "local", local_cfg, check=False)
    local_s = time.monotonic() - t0
    assert local_proc.returncode != 0 and "1 series failed" in local_proc.stderr, local_proc.stderr[-3000:]

    work = tmp_path / "cluster"
    work.mkdir()
    out = tmp_path / "cluster-out"
    cfg = write_config(work, output_dir=str(out), **common)
    # As the README shows the command: no --cores (the profile's `cores` applies).
    proc, submitted, cluster_s, ids = cluster_run(slurm, work, cfg, cores=None, check=False)
    assert proc.returncode != 0, proc.stderr[-3000:]
    report = read_report(out)
    series = [r for r in report if r["status"] in ("exported", "failed")]
    assert len(series) >= 60
    failed = [r for r in report if r["status"] == "failed"]
    assert len(failed) == 1 and "dcm2niix wrote no image" in failed[0]["reason"], failed
    assert all(r["status"] == "exported" for r in series if r is not failed[0])
    # The failure names the series' own log, which holds dcm2niix's message.
    log = out / ".bidsport" / "logs" / "series" / f"{failed[0]['key']}.nifti.log"
    assert f"(log: {log})" in proc.stderr
    assert "unable to read" in log.read_text()

    # Same files, same voxels as the local run.
    assert exported_files(out) == exported_files(tmp_path / "local-out")
    assert nifti_digests(out) == nifti_digests(tmp_path / "local-out")

    # Group jobs of up to 50 series; each ran ONE Snakemake (no srun, no inner
    # Snakemake per series) whose series ran as its own local jobs, 2 at a time.
    assert submitted == math.ceil(len(series) / GROUP_SIZE)
    logs = kept_logs(work, ids)
    assert sorted(logs) == sorted(ids), "the SLURM logs of successful jobs are kept"
    for text in logs.values():
        assert text.count("Building DAG") == 1, text[-3000:]
        assert "srun" not in text
        assert f"Provided remote nodes: {PROFILE_CORES}" in text
    assert sum(t.count("localrule convert_series") for t in logs.values()) == len(series)
    # Each job asked for the CPUs it used and memory for that many series at once.
    jobs = {int(j["JobId"]): j for j in slurm.jobs()}
    for job_id in ids:
        assert jobs[job_id]["NumCPUs"] == str(PROFILE_CORES)
        assert jobs[job_id]["MinMemoryNode"] == f"{PROFILE_CORES * 2000}M"
    assert cluster_s <= local_s + 30, f"SLURM {cluster_s:.0f} s, local {local_s:.0f} s"
    print(f"\n{len(series)} series: local {local_s:.1f} s; SLURM {cluster_s:.1f} s in {submitted} job(s), "
          f"{(cluster_s - local_s) / len(series) * 1000:.0f} ms a series more")  # fmt: skip

    # The real dcm2niix: only the failed series runs again (one SLURM job).
    fixed = write_config(work, output_dir=str(out), **{**common, "dcm2niix_path": str(REAL_DCM2NIIX)})
    proc, submitted, _, _ = cluster_run(slurm, work, fixed)
    assert submitted == 1
    assert all(r["status"] == "exported" for r in read_report(out) if r["status"] != "excluded")

    # Nothing changed: nothing is submitted.
    _, submitted, _, _ = cluster_run(slurm, work, fixed)
    assert submitted == 0

    # One changed row: one job for its series.
    rows = read_rows(demo_cohort / "series_table.tsv")
    target = next(r for r in rows if r["subject_code"] == "P-003" and r["task"] == "rest")
    target["task"] = "nback"
    table = write_rows(work / "series_table.tsv", rows)
    changed = write_config(work, output_dir=str(out), **{**common, "dcm2niix_path": str(REAL_DCM2NIIX), "series_table": str(table)})
    _, submitted, _, _ = cluster_run(slurm, work, changed)
    assert submitted == 1
    assert any("task-nback" in f for f in dataset_files(out))


def test_slurm_export_equals_local_export(slurm, source, tmp_path, request):
    source.write_table(tmp_path / "series.tsv")
    n_series = len(source.rows)
    dicom_root = str(source.dicom_root)
    local_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="local")
    run_workflow(tmp_path, local_cfg)
    local = nifti_digests(tmp_path / "local")
    assert len(local) >= n_series  # every series gave at least one image

    grouped_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="grouped")
    _, grouped_jobs, grouped_s, _ = cluster_run(slurm, tmp_path, grouped_cfg)
    assert nifti_digests(tmp_path / "grouped") == local
    assert exported_files(tmp_path / "grouped") == exported_files(tmp_path / "local")

    # The checkpoint and dataset-level rules are local; only series jobs go to SLURM.
    assert grouped_jobs == 1
    if request.node.callspec.params["source"] == "samples":
        return  # one SLURM job per series: checked on the synthetic session (grouping does not depend on the data)
    single_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="single")
    _, single_jobs, single_s, ids = cluster_run(slurm, tmp_path, single_cfg, "--group-components", "series=1")
    assert nifti_digests(tmp_path / "single") == local
    print(
        f"\nSLURM jobs for {n_series} series: {grouped_jobs} with group-components series=50 "
        f"({grouped_s:.0f} s), {single_jobs} with one series per job ({single_s:.0f} s)"
    )
    assert single_jobs == n_series
    # A job of one series runs it in its own Snakemake too (no srun + second Snakemake).
    for text in kept_logs(tmp_path, ids).values():
        assert text.count("Building DAG") == 1 and not re.search(r"\bsrun\b", text)
