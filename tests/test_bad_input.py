"""Bad input never loses data: each case says clearly what went wrong, leaves the
sources byte-identical, never shows a partial file under a final name, and never
stops the other series."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from bidsport import jobs
from bidsport.demo_data import make_demo
from helpers import dataset_files, jobs_started, read_report, run_workflow, snapshot, write_config

pytestmark = pytest.mark.slow
REAL_DCM2NIIX = Path(sys.executable).parent / "dcm2niix"


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """One subject's T1w, T2w and BOLD (synthetic), copied per test."""
    root = tmp_path_factory.mktemp("cohort")
    table = make_demo(root, 1)
    wanted = ("02_t1_mprage", "03_t2_tse", "09_bold_rest")
    rows = [r for r in csv.DictReader(open(table), delimiter="\t") if r["session_id"] == "M00" and r["dicom_path"].endswith(wanted)]
    write_rows(table, rows)
    return root


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def work(tmp_path, cohort):
    shutil.copytree(cohort, tmp_path / "in")
    return tmp_path


def rows_of(work):
    return list(csv.DictReader(open(work / "in/series_table.tsv"), delimiter="\t"))


def cfg(work, **extra):
    return write_config(work, **{"series_table": "in/series_table.tsv", "dicom_root": "in/dicom", "output_dir": "out", **extra})


def fake_dcm2niix(work: Path, body: str) -> str:
    path = work / "fake-dcm2niix"
    path.write_text(f'#!/bin/sh\nif [ "$1" = "-v" ]; then echo "v1.0.20260724"; exit 3; fi\n{body}\n')
    path.chmod(0o755)
    return str(path)


def t2w_folder(work: Path) -> Path:
    row = next(r for r in rows_of(work) if r["base"] == "T2w")
    return work / "in/dicom" / row["dicom_path"]


def assert_other_series_fine(work: Path, failed_fragment: str):
    report = read_report(work / "out")
    failed = [r for r in report if r["status"] == "failed"]
    assert failed and all(failed_fragment in r["reason"] for r in failed), failed
    assert any(r["status"] == "exported" for r in report)


@pytest.mark.parametrize(
    "case, body, message",
    [
        ("exits non-zero, writes nothing", "echo 'Error: unable to read' ; exit 2", "dcm2niix wrote no image for this series (exit 2)"),
        ("crashes", "kill -SEGV $$", "dcm2niix wrote no image for this series (exit -11)"),
        ("writes nothing", "exit 0", "dcm2niix wrote no image for this series (exit 0)"),
        ("hangs", "sleep 60", "dcm2niix timed out after 2 s"),
    ],
)
def test_a_failing_dcm2niix_fails_only_its_series(work, case, body, message):
    before = tree_digest(work / "in/dicom")
    # The fake binary misbehaves for the T2w only and runs the real dcm2niix otherwise.
    wrapper = fake_dcm2niix(work, f'case "$*" in *{t2w_folder(work).name}*) {body};; esac\nexec {REAL_DCM2NIIX} "$@"')
    proc = run_workflow(work, cfg(work, dcm2niix_path=wrapper, convert_timeout=2), check=False)
    assert proc.returncode != 0, case
    assert "series failed" in proc.stdout + proc.stderr
    assert_other_series_fine(work, message)
    assert not any("T2w" in f for f in dataset_files(work / "out") if f.startswith("sub-"))
    assert tree_digest(work / "in/dicom") == before
    # Fixed dcm2niix: only the failed series runs again, and the run succeeds.
    exported = {f: m for f, m in snapshot(work / "out").items() if f.startswith("sub-") and not f.endswith("scans.tsv")}
    proc = run_workflow(work, cfg(work))
    assert jobs_started(proc.stdout + proc.stderr).get("convert_series") == 1
    assert "T2w" in " ".join(dataset_files(work / "out"))
    after = snapshot(work / "out")
    assert {f for f, m in exported.items() if after.get(f) != m} == set()  # the others were not redone


def test_corrupt_zero_byte_and_non_dicom_files_inside_a_series(work):
    folder = t2w_folder(work)
    files = sorted(folder.iterdir())
    truncated = folder / "zz_truncated.dcm"
    truncated.write_bytes(files[0].read_bytes()[:700])
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("scanner notes\n")
    (folder / "README-Series.txt").write_text("(0020,000E) SeriesInstanceUID ... a text dump, not DICOM\n")
    before = tree_digest(work / "in/dicom")
    run_workflow(work, cfg(work))
    report = read_report(work / "out")
    assert all(r["status"] == "exported" for r in report), report
    assert tree_digest(work / "in/dicom") == before


def test_empty_and_missing_folders(work):
    rows = rows_of(work)
    (work / "in/dicom/empty").mkdir()
    rows[0]["dicom_path"] = "empty"
    rows[1]["dicom_path"] = "does/not/exist"
    write_rows(work / "in/series_table.tsv", rows)
    proc = run_workflow(work, cfg(work), check=False)
    assert proc.returncode != 0 and "column 'dicom_path': does not exist" in proc.stderr
    assert not (work / "out/code").exists()  # stopped before anything was written
    proc = run_workflow(work, cfg(work, lenient=True), check=False)
    assert proc.returncode != 0
    report = {r["status"]: r for r in read_report(work / "out")}
    assert "no DICOM image of series" in report["failed"]["reason"]
    assert "does not exist" in report["invalid"]["reason"]
    assert report["exported"]


def test_several_series_in_one_folder(work):
    rows = rows_of(work)
    shared = work / "in/dicom/shared"
    shared.mkdir()
    for r in rows:
        for f in (work / "in/dicom" / r["dicom_path"]).iterdir():
            shutil.copy(f, shared / f.name)
        r["dicom_path"] = "shared"
    write_rows(work / "in/series_table.tsv", rows)
    run_workflow(work, cfg(work))
    report = read_report(work / "out")
    assert all(r["status"] == "exported" and r["files"].count(".nii.gz") == 1 for r in report), report


def test_a_series_folder_that_also_holds_an_unlisted_series(work):
    """The table puts the T1w alone in its folder, so its job converts the folder
    without reading headers first; the T2w images dropped in there (a series the
    table does not list) are told apart by series UID and left out, with a warning."""
    import gzip

    rows = rows_of(work)
    t1w = next(r for r in rows if r["base"] == "T1w")
    run_workflow(work, cfg(work, output_dir="reference"))
    name = "sub-P001/ses-M00/anat/sub-P001_ses-M00_T1w.nii.gz"
    reference = gzip.decompress((work / "reference" / name).read_bytes())
    for f in t2w_folder(work).iterdir():
        shutil.copy(f, work / "in/dicom" / t1w["dicom_path"] / f"t2w_{f.name}")
    write_rows(work / "in/series_table.tsv", [r for r in rows if r["base"] != "T2w"])
    run_workflow(work, cfg(work))
    report = {r["series_instance_uid"]: r for r in read_report(work / "out")}
    row = report[t1w["series_instance_uid"]]
    assert row["status"] == "exported" and "of series not in the table: left out" in row["warnings"], row
    assert gzip.decompress((work / "out" / name).read_bytes()) == reference
    assert not any("T2w" in f for f in dataset_files(work / "out"))


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("subject_code", "../..", "has no letters or digits"),
        ("directory_type", "brain", "'brain' is not one of"),
        ("study_date", "2024-13-45", "unparseable date"),
        ("series_instance_uid", "1.2.3/../x", "not in the expected format"),
    ],
)
def test_bad_cells_are_named_with_line_and_column(work, column, value, message):
    """The planning checkpoint's body, in-process (the end-to-end run is the next test)."""
    rows = rows_of(work)
    rows[1][column] = value
    write_rows(work / "in/series_table.tsv", rows)
    config = {"series_table": str(work / "in/series_table.tsv"), "dicom_root": str(work / "in/dicom"), "output_dir": str(work / "out"),
              "overwrite": "skip", "subject_identifier_source": "subject_code"}  # fmt: skip
    with pytest.raises(jobs.PlanningFailed) as failed:
        jobs.plan_job(config, str(work / "plan.tsv"), str(work / "state" / "excluded.tsv"), str(work / "plan.log"))
    assert f"series_table.tsv:3: column '{column}': " in str(failed.value) and message in str(failed.value)
    assert not (work / "plan.tsv").exists() and not (work / "out").exists()


def test_a_bad_cell_stops_the_run_with_its_line_and_column(work):
    rows = rows_of(work)
    rows[1]["directory_type"] = "brain"
    write_rows(work / "in/series_table.tsv", rows)
    proc = run_workflow(work, cfg(work), check=False)
    assert proc.returncode != 0
    assert "series_table.tsv:3: column 'directory_type': 'brain' is not one of" in proc.stderr
    assert not (work / "out" / "code").exists()


def test_labels_never_escape_the_output_folder(work):
    rows = rows_of(work)
    for r, subject in zip(rows, ["../../etc", "/abs/olute", "Zürich\ttab"]):
        r["subject_code"] = subject
        r["session_id"] = "../M00"
        r["task"] = "rest/../../x"
    write_rows(work / "in/series_table.tsv", rows)
    run_workflow(work, cfg(work))
    out = (work / "out").resolve()
    for rel in dataset_files(work / "out"):
        assert (work / "out" / rel).resolve().is_relative_to(out)
    names = {Path(f).parts[0] for f in dataset_files(work / "out") if f.startswith("sub-")}
    assert names == {"sub-etc", "sub-absolute", "sub-Zurichtab"}


def test_symlink_loop_in_dicom_root(work):
    folder = t2w_folder(work)
    os.symlink(folder, folder / "loop")
    before = tree_digest(work / "in/dicom")
    run_workflow(work, cfg(work))
    assert all(r["status"] == "exported" for r in read_report(work / "out"))
    assert tree_digest(work / "in/dicom") == before
