"""The overrides table through the real workflow (command line, real dcm2niix)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from bidsport.demo_data import make_demo
from helpers import dataset_files, read_report, run_workflow, validator_issues, write_config, write_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two subjects of the demo, cut to T1w and BOLD (P-001 M00 has two BOLD runs)."""
    root = tmp_path_factory.mktemp("demo")
    table = make_demo(root, 2)
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    keep = [r for r in rows if r["dicom_path"].endswith(("02_t1_mprage", "09_bold_rest", "10_bold_rest_repeat"))]
    write_rows(table, keep)
    return root, keep


def setup(tmp_path: Path, demo, overrides: str) -> Path:
    root, _ = demo
    (tmp_path / "overrides.tsv").write_text(overrides, encoding="utf-8")
    return write_config(tmp_path, series_table=str(root / "series_table.tsv"), dicom_root=str(root / "dicom"),
                        output_dir="out", overrides_table="overrides.tsv")  # fmt: skip


def uid_of(demo, subject: str, folder: str) -> str:
    return next(r["series_instance_uid"] for r in demo[1] if r["subject_code"] == subject and r["dicom_path"].endswith(folder))


def test_task_rule_and_exclusion(tmp_path, demo):
    t1_p2 = uid_of(demo, "P-002", "02_t1_mprage")
    cfg = setup(tmp_path, demo, f"series_instance_uid\tseries_description\texclude\treason\ttask\n"
                                f"\tep2d_bold_rest_.*\t\t\tnback\n{t1_p2}\t\t1\tmotion artefacts\t\n")  # fmt: skip
    run_workflow(tmp_path, cfg)
    out = tmp_path / "out"
    files = dataset_files(out)
    bold = sorted(f for f in files if f.endswith("_bold.nii.gz"))
    assert bold == [
        "sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_run-01_bold.nii.gz",
        "sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_run-02_bold.nii.gz",
        "sub-P001/ses-M12/func/sub-P001_ses-M12_task-nback_bold.nii.gz",
        "sub-P002/ses-M00/func/sub-P002_ses-M00_task-nback_bold.nii.gz",
    ]
    for nifti in bold:  # no events file: the sidecar alone says the task, as its label
        assert json.loads((out / nifti.replace(".nii.gz", ".json")).read_text())["TaskName"] == "nback"
    assert not any("task-rest" in f for f in files)
    assert not any(f.startswith("sub-P002") and f.endswith("_T1w.nii.gz") for f in files)
    report = {r["series_instance_uid"]: r for r in read_report(out)}
    assert report[t1_p2]["status"] == "excluded"
    assert report[t1_p2]["reason"] == "override overrides.tsv line 3: motion artefacts"
    shaped = report[uid_of(demo, "P-002", "09_bold_rest")]
    assert shaped["status"] == "exported" and "override overrides.tsv (line 2: task-nback)" in shaped["warnings"]
    assert validator_issues(out)["errors"] == []


@pytest.mark.parametrize(
    "values, message",
    [
        (("n-back", ""), "overrides.tsv:3: column 'task': 'n-back' is not a BIDS label"),
        (("", "1"), "overrides.tsv:4: run-01 for ep2d_bold_rest_10_bold_rest_repeat, but other series share its name"),
    ],
)
def test_an_invalid_or_colliding_decision_fails_before_any_job(tmp_path, demo, values, message):
    first, second = uid_of(demo, "P-001", "09_bold_rest"), uid_of(demo, "P-001", "10_bold_rest_repeat")
    task, run = values
    cfg = setup(tmp_path, demo, f"series_instance_uid\tseries_description\texclude\ttask\trun\n\tnothing\t1\t\t\n"
                                f"{first}\t\t\t{task}\t{run}\n{second}\t\t\t\t{run}\n")  # fmt: skip
    proc = run_workflow(tmp_path, cfg, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    out = tmp_path / "out"
    assert not (out / ".bidsport" / "done").exists() and not (out / ".bidsport" / "specs").exists()
    assert not any(f.startswith("sub-") for f in dataset_files(out)) if out.exists() else True


def test_changing_one_decision_reruns_exactly_that_series(tmp_path, demo):
    rule = "series_instance_uid\tseries_description\ttask\n\tep2d_bold_rest_.*\tnback\n"
    cfg = setup(tmp_path, demo, rule)
    run_workflow(tmp_path, cfg)
    out = tmp_path / "out"
    before = {f: (out / f).stat().st_mtime_ns for f in dataset_files(out) if f.startswith("sub-")}
    done = {p.name: p.stat().st_mtime_ns for p in (out / ".bidsport/done").glob("*.json")}

    target = uid_of(demo, "P-002", "09_bold_rest")
    (tmp_path / "overrides.tsv").write_text(rule + f"{target}\t\tmotor\n", encoding="utf-8")
    proc = run_workflow(tmp_path, cfg)
    ran = re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M)
    assert ran.count("convert_series") == 1, ran
    after = {f: (out / f).stat().st_mtime_ns for f in dataset_files(out) if f.startswith("sub-")}
    old = "sub-P002/ses-M00/func/sub-P002_ses-M00_task-nback_bold.nii.gz"
    new = "sub-P002/ses-M00/func/sub-P002_ses-M00_task-motor_bold.nii.gz"
    assert old not in after and new in after
    assert json.loads((out / new.replace(".nii.gz", ".json")).read_text())["TaskName"] == "motor"
    images = [f for f in before if f in after and not f.endswith(("scans.tsv", "sessions.tsv"))]
    assert images and [f for f in images if after[f] != before[f]] == []  # every other series untouched
    changed = [n for n, t in done.items() if (out / ".bidsport/done" / n).stat().st_mtime_ns != t]
    assert len(changed) == 1
