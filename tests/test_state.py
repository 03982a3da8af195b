"""Every run, re-run and preview leaves the dataset exactly right (real workflow
runs on real files): previews change nothing, every setting re-runs exactly its
consumers, every dataset-level file comes back, a full disk and a vanished source
are one line each and a plain re-run completes."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import dataset_files, read_report, run_workflow, small_filesystem, write_config
from test_incremental import digests, small_cohort

pytestmark = pytest.mark.slow
REAL_DCM2NIIX = Path(sys.executable).parent / "dcm2niix"


def checksums(root: Path) -> dict[str, str]:
    """Every file under ``root`` (bidsport's state included) -> sha256."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def ran(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs a run (or dry run) lists, by rule; grouped jobs (QC) are indented."""
    counts: dict[str, int] = {}
    for m in re.finditer(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):", proc.stdout + proc.stderr, re.MULTILINE):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    counts.pop("all", None)
    return counts


@pytest.fixture
def cohort(tmp_path):
    table = small_cohort(tmp_path / "in")
    values = {"series_table": str(table), "dicom_root": str(tmp_path / "in" / "dicom"), "output_dir": "out"}
    return tmp_path, table, values


def test_previews_change_nothing_and_show_exactly_what_the_next_run_redoes(cohort):
    work, _, values = cohort
    out = work / "out"
    # One series fails (dcm2niix refuses it): a partly failed export.
    wrapper = work / "dcm2niix-failing"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *P-002/M00/09_bold_rest*) echo "Error: cannot read"; exit 2;; esac\nexec {REAL_DCM2NIIX} "$@"\n')
    wrapper.chmod(0o755)
    failing = write_config(work, **values, dcm2niix_path=str(wrapper))
    assert run_workflow(work, failing, check=False).returncode != 0
    assert [r["status"] for r in read_report(out)].count("failed") == 1
    before = checksums(out)
    cfg = write_config(work, **values)  # dcm2niix fixed
    dry = run_workflow(work, cfg, "-n")
    assert ran(dry) == {"convert_series": 1, "dataset_files": 1}, dry.stdout
    assert "reason: Forced execution" in dry.stdout  # the failed series: retried, its manifest kept meanwhile
    run_workflow(work, cfg, "--report", str(work / "report.html"))
    run_workflow(work, cfg, "--unlock")
    run_workflow(work, cfg, "--lint")
    run_workflow(work, cfg, "--list-rules")
    run_workflow(work, cfg, "-n", "--forceall", "--quiet")
    assert checksums(out) == before  # not one byte changed under output_dir
    real = run_workflow(work, cfg)
    assert ran(real) == ran(dry)  # the preview told the truth
    assert all(r["status"] == "exported" for r in read_report(out) if r["status"] != "excluded")
    assert "Nothing to be done" in run_workflow(work, cfg, "-n").stdout


def test_each_setting_reruns_exactly_the_step_that_writes_what_it_changes(cohort):
    work, _, values = cohort
    out = work / "out"
    run_workflow(work, write_config(work, **values))
    series = {f: (out / f).stat().st_mtime_ns for f in dataset_files(out) if f.endswith(".nii.gz")}
    changes = [
        ({"dataset_name": "My study"}, {"dataset_files": 1}),
        ({"dataset_description": {"Authors": ["A. Person"], "License": "CC0"}}, {"dataset_files": 1}),
        ({"fieldmap_matching": "before_only", "fieldmap_targets": ["func"]}, {"dataset_files": 1}),
        ({"qc_snapshots": True}, {"qc_subject": 2}),
    ]
    current = dict(values)
    for change, expected in changes:
        current.update(change)
        cfg = write_config(work, **current)
        assert ran(run_workflow(work, cfg, "-n")) == expected, change
        assert ran(run_workflow(work, cfg)) == expected, change
        assert "Nothing to be done" in run_workflow(work, cfg, "-n").stdout, change
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["Name"] == "My study" and description["Authors"] == ["A. Person"] and description["License"] == "CC0"
    assert (out / ".bidsport/qc/sub-P001/summary.html").exists()
    assert {f: (out / f).stat().st_mtime_ns for f in series} == series  # no series re-converted


def test_every_deleted_or_edited_dataset_level_file_comes_back(cohort):
    work, _, values = cohort
    out = work / "out"
    cfg = write_config(work, **values)
    run_workflow(work, cfg)
    fmap = next(out.glob("sub-P001/ses-M00/fmap/*_phasediff.json"))
    owned = [
        "README", "dataset_description.json", "participants.tsv", "participants.json", "sessions.json", ".bidsignore",
        "sub-P001/sub-P001_sessions.tsv", "sub-P001/ses-M00/sub-P001_ses-M00_scans.tsv", "sub-P002/ses-M00/sub-P002_ses-M00_scans.tsv",
    ]  # fmt: skip
    content = {rel: (out / rel).read_bytes() for rel in owned}
    linked = json.loads(fmap.read_text())
    assert linked["IntendedFor"] and linked["B0FieldIdentifier"]
    for rel in owned:
        (out / rel).unlink()
    fmap.write_text(json.dumps({k: v for k, v in linked.items() if k not in ("IntendedFor", "B0FieldIdentifier")}))
    dry = run_workflow(work, cfg, "-n")
    assert ran(dry) == {"dataset_files": 1}, dry.stdout  # no series re-converted for this
    run_workflow(work, cfg)
    for rel in owned:
        assert (out / rel).read_bytes() == content[rel], rel
    assert json.loads(fmap.read_text()) == linked
    assert "Nothing to be done" in run_workflow(work, cfg, "-n").stdout


def test_a_full_disk_is_one_line_and_a_rerun_after_it_grows_equals_a_clean_export(cohort):
    from bidsport import faults

    work, _, values = cohort
    run_workflow(work, write_config(work, **{**values, "output_dir": "reference"}))
    size = sum(p.stat().st_size for p in (work / "reference").rglob("*") if p.is_file())
    with small_filesystem(work / "small", faults.RECORD_MARGIN + size // 2) as small:
        out = small / "out"
        cfg = write_config(work, **{**values, "output_dir": str(out)})
        proc = run_workflow(work, cfg, check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"bidsport: warning: {out} has " in text and "but this export needs about" in text  # before any series job
        lines = [line for line in text.splitlines() if line.startswith(f"bidsport: disk full: no room left to write to {out} (")]
        assert len(lines) == 1 and lines[0].endswith("series failed; free space on the output's disk and re-run"), text[-3000:]
        assert "Traceback" not in text and "RuleException" not in text and "Errno" not in text
        report = read_report(out)
        failed = [r for r in report if r["status"] == "failed"]
        assert failed and all(r["reason"].startswith("nifti: disk full: no room left to write to ") for r in failed)
        assert any(r["status"] == "exported" for r in report)
        for rel in dataset_files(out):  # whatever carries a final name is whole
            if rel.endswith(".nii.gz"):
                gzip.decompress((out / rel).read_bytes())
        subprocess.run(["mount", "-o", f"remount,size={size * 4 + faults.RECORD_MARGIN}", str(small)], check=True)
        proc = run_workflow(work, cfg)
        assert ran(proc) == {"convert_series": len(failed), "dataset_files": 1}
        assert digests(out) == digests(work / "reference")
        assert all(r["status"] in ("exported", "excluded") for r in read_report(out))


def test_a_source_folder_removed_after_planning_fails_only_its_series(cohort):
    work, _, values = cohort
    out = work / "out"
    cfg = write_config(work, **values)
    run_workflow(work, cfg, str(out / "code/bidsport/plan.tsv"))  # planned; nothing exported yet
    folder = work / "in/dicom/P-002/M00/09_bold_rest"
    shutil.move(folder, work / "aside")
    proc = run_workflow(work, cfg, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    failed = [r for r in read_report(out) if r["status"] == "failed"]
    assert [r["reason"] for r in failed] == [f"nifti: source vanished: {folder} no longer exists (removed after planning?)"]
    assert sum(r["status"] == "exported" for r in read_report(out)) == 12
    shutil.move(work / "aside", folder)
    assert ran(run_workflow(work, cfg)) == {"convert_series": 1, "dataset_files": 1}
