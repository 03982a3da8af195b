"""Re-runs touch only what changed (real workflow runs, mtimes and checksums)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bidsport.demo_data import make_demo
from helpers import REPO, SNAKEMAKE, dataset_files, jobs_started, run_workflow, snapshot, write_config

pytestmark = pytest.mark.slow
KEEP = {"t1_mprage", "ep2d_bold_rest", "gre_field_mapping"}


def small_cohort(root: Path, n_subjects: int = 2) -> Path:
    """The demo cohort, cut to T1w, BOLD and fieldmap rows (fast to convert)."""
    table = make_demo(root, n_subjects)
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    keep = [r for r in rows if r["series_description"].rsplit("_", 2)[0] in KEEP or r["series_description"].startswith(tuple(KEEP))]
    write_rows(table, keep, list(rows[0]))
    return table


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def digests(out: Path) -> dict[str, str]:
    result = {}
    for rel in dataset_files(out):
        data = (out / rel).read_bytes()
        if rel.endswith(".nii.gz"):
            data = gzip.decompress(data)
        if rel.endswith(".json") or rel.startswith("code/"):
            continue  # sidecars carry the conversion software version; reports carry timings
        result[rel] = hashlib.sha256(data).hexdigest()
    return result


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Made once per module: a two-subject export in ``work``, kept as ``pristine``
    (copied back for each test), and a three-subject cohort (``in3``, only read)."""
    base = tmp_path_factory.mktemp("incremental")
    work = base / "work"
    small_cohort(work / "in")
    cfg = write_config(work, series_table="in/series_table.tsv", dicom_root="in/dicom", output_dir="out", copy_workers=4)
    run_workflow(work, cfg)
    work.rename(base / "pristine")  # same inodes: those the ledger recorded
    small_cohort(base / "in3", n_subjects=3)
    return base, snapshot(base / "pristine" / "out")


def restore(pristine: Path, work: Path) -> None:
    """Copy ``pristine`` to ``work``; the exported images and sidecars are hard links:
    the ledger knows a file it installed by its inode, and the workflow only ever
    replaces such files (rename), never writes into them."""

    def link_or_copy(src, dst):
        parts = Path(src).relative_to(pristine).parts
        if parts[0] == "out" and parts[1].startswith("sub-"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(pristine, work, symlinks=True, copy_function=link_or_copy)


@pytest.fixture
def cohort(shared):
    """The finished export as it was, at the path it was made at (its specs and
    Snakemake's metadata hold absolute paths), mtimes and inodes kept."""
    base, made = shared
    work = base / "work"
    if work.exists():
        shutil.rmtree(work)
    restore(base / "pristine", work)
    yield work, work / "config.yaml", work / "in" / "series_table.tsv"
    assert snapshot(base / "pristine" / "out") == made  # no test wrote through a link


def test_noop_rerun_runs_no_job(cohort):
    work, cfg, _ = cohort
    before = snapshot(work / "out")
    proc = run_workflow(work, cfg)
    text = proc.stdout + proc.stderr
    assert "Nothing to be done" in text
    assert jobs_started(text) == {}  # not even the planning checkpoint
    assert snapshot(work / "out") == before


def test_unrelated_config_key_reruns_nothing(cohort):
    work, cfg, table = cohort
    before = snapshot(work / "out")
    cfg2 = write_config(work, series_table=str(table), dicom_root=str(work / "in" / "dicom"), output_dir="out", copy_workers=1, convert_workers=3)
    proc = run_workflow(work, cfg2, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert snapshot(work / "out") == before


def test_changing_one_row_reruns_only_that_series(cohort):
    work, cfg, table = cohort
    out = work / "out"
    before = snapshot(out)
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    target = next(r for r in rows if r["subject_code"] == "P-002" and r["directory_type"] == "func")
    target["task"] = "nback"
    write_rows(table, rows, list(rows[0]))
    proc = run_workflow(work, cfg, "--printshellcmds")
    ran = jobs_started(proc.stdout + proc.stderr)
    assert ran.get("convert_series") == 1, ran
    after = snapshot(out)
    old = "sub-P002/ses-M00/func/sub-P002_ses-M00_task-rest_bold.nii.gz"
    new = "sub-P002/ses-M00/func/sub-P002_ses-M00_task-nback_bold.nii.gz"
    assert old not in after and new in after  # the series' old name is gone, not left behind
    untouched = [f for f in before if f in after and "/func/" not in f and f.startswith("sub-")]
    # The session's fieldmap sidecars list the renamed run in IntendedFor: refreshed.
    linked = {f for f in untouched if f.startswith("sub-P002/ses-M00/fmap/") and f.endswith(".json")}
    untouched = [f for f in untouched if not f.endswith(("scans.tsv", "sessions.tsv")) and f not in linked]
    assert untouched and [f for f in untouched if after[f] != before[f]] == []
    for sidecar in linked:
        assert "bids::" + new in json.loads((out / sidecar).read_text())["IntendedFor"]
    scans = (out / "sub-P002/ses-M00/sub-P002_ses-M00_scans.tsv").read_text()
    assert "task-nback" in scans and "task-rest" not in scans  # dataset-level files refreshed


def test_adding_a_subject_only_adds_jobs(cohort, shared):
    work, cfg, table = cohort
    base = shared[0]
    out = work / "out"
    before = snapshot(out)
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    new_rows = [r for r in csv.DictReader(open(base / "in3" / "series_table.tsv"), delimiter="\t") if r["subject_code"] == "P-003"]
    for r in new_rows:
        r["dicom_path"] = str(base / "in3" / "dicom" / r["dicom_path"])
    write_rows(table, rows + new_rows, list(rows[0]))
    proc = run_workflow(work, cfg)
    ran = jobs_started(proc.stdout + proc.stderr)
    assert ran.get("convert_series") == len(new_rows), ran
    after = snapshot(out)
    for rel, mtime in before.items():
        if rel.startswith("sub-P00") and not rel.endswith("scans.tsv"):
            assert after.get(rel) == mtime, rel  # nobody renamed or rewritten
    assert any(f.startswith("sub-P003/") for f in after)


def test_deleted_file_is_restored_exactly(cohort):
    work, cfg, _ = cohort
    out = work / "out"
    victim = "sub-P001/ses-M00/anat/sub-P001_ses-M00_T1w.nii.gz"
    content = (out / victim).read_bytes()
    before = snapshot(out)
    (out / victim).unlink()
    dry = run_workflow(work, cfg, "-n")
    text = dry.stdout + dry.stderr
    assert jobs_started(text).get("convert_series") == 1 and "reason: Forced execution" in text  # its manifest stays; the job is marked forced
    run_workflow(work, cfg)
    after = snapshot(out)
    assert gzip.decompress((out / victim).read_bytes()) == gzip.decompress(content)
    changed = {f for f in before if after.get(f) != before[f]} - {victim} - {f for f in before if f.endswith("scans.tsv")}
    # Its own sidecar was kept (overwrite: skip leaves existing files alone).
    assert not {f for f in changed if f.startswith("sub-")}, changed


def test_sigkill_mid_export_then_rerun_matches_a_clean_run(tmp_path, shared):
    in3 = shared[0] / "in3"  # only read
    table = in3 / "series_table.tsv"
    slow = tmp_path / "slow-dcm2niix"
    real = Path(sys.executable).parent / "dcm2niix"
    slow.write_text(f"#!/bin/sh\nsleep 0.7\nexec {real} \"$@\"\n")
    slow.chmod(0o755)
    common = dict(series_table=str(table), dicom_root=str(in3 / "dicom"), dcm2niix_path=str(slow))
    reference_cfg = write_config(tmp_path, **common, output_dir="reference")
    run_workflow(tmp_path, reference_cfg)
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    cfg = write_config(killed_dir, **common, output_dir=str(tmp_path / "out"))
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(killed_dir), "--configfile", str(cfg), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    out = tmp_path / "out"
    done = out / ".bidsport" / "done"
    partial_seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for rel in dataset_files(out) if out.exists() else []:
            if rel.endswith(".nii.gz"):
                try:
                    gzip.decompress((out / rel).read_bytes())
                except (EOFError, OSError, gzip.BadGzipFile) as exc:
                    if (out / rel).exists():
                        partial_seen.append((rel, str(exc)))
        if done.exists() and len(list(done.glob("*.json"))) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not partial_seen, partial_seen
    assert len(list(done.glob("*.json"))) < 3 * 3 + 1  # it really was cut short
    # Snakemake keeps its directory lock after a SIGKILL: --unlock, as it tells you.
    run_workflow(killed_dir, cfg, "--unlock")
    run_workflow(killed_dir, cfg)
    assert digests(out) == digests(tmp_path / "reference")
    assert not list((out / ".bidsport" / "tmp").glob("*")) if (out / ".bidsport" / "tmp").exists() else True


def test_removed_rows_are_reported_stale_and_kept(cohort):
    work, cfg, table = cohort
    out = work / "out"
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    gone = next(r for r in rows if r["subject_code"] == "P-002" and r["directory_type"] == "anat")
    write_rows(table, [r for r in rows if r is not gone], list(rows[0]))
    proc = run_workflow(work, cfg)
    assert "stale 1" in proc.stdout + proc.stderr  # the end-of-run summary
    from helpers import read_report

    stale = [r for r in read_report(out) if r["status"] == "stale"]
    assert len(stale) == 1 and "sub-P002_ses-M00_T1w.nii.gz" in stale[0]["files"]
    assert (out / "sub-P002/ses-M00/anat/sub-P002_ses-M00_T1w.nii.gz").exists()  # kept: only clean removes


def test_row_that_returns_after_its_files_were_deleted_is_exported_again(cohort):
    """A subject taken out of the table, its folder deleted, then put back: its
    manifests (left from the first run) must not claim files that are gone."""
    work, cfg, table = cohort
    out = work / "out"
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    write_rows(table, [r for r in rows if r["subject_code"] != "P-002"], list(rows[0]))
    run_workflow(work, cfg)
    shutil.rmtree(out / "sub-P002")
    write_rows(table, rows, list(rows[0]))
    proc = run_workflow(work, cfg)
    ran = jobs_started(proc.stdout + proc.stderr)
    assert ran.get("convert_series") == sum(r["subject_code"] == "P-002" for r in rows), ran
    assert (out / "sub-P002/ses-M00/anat/sub-P002_ses-M00_T1w.nii.gz").exists()
