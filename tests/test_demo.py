"""The README's first command in miniature: the workflow makes its demo and exports it."""

import csv
import json

import pytest

from helpers import REPO, SNAKEMAKE, dataset_files, read_report, validator_issues

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import subprocess

    work = tmp_path_factory.mktemp("demo")
    # No --configfile: config/config.yaml (demo: true) is used, paths relative to -d.
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2", "all", "validate"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return work / "demo" / "bids"


def test_demo_is_valid_bids(demo):
    assert validator_issues(demo)["errors"] == []
    saved = json.loads((demo / "code/bidsport/validation.json").read_text())  # the validate target's verdict
    assert [i for i in saved["issues"]["issues"] if i["severity"] == "error"] == []
    assert saved["issues"]["issues"]  # the validator's full result, warnings included


def test_demo_has_every_kind_of_series(demo):
    files = dataset_files(demo)
    p1 = "sub-P001/ses-M00"
    for rel in [
        "anat/sub-P001_ses-M00_T1w.nii.gz",
        "anat/sub-P001_ses-M00_T2w.nii.gz",
        "anat/sub-P001_ses-M00_FLAIR.nii.gz",
        "anat/sub-P001_ses-M00_part-mag_swi.nii.gz",
        "anat/sub-P001_ses-M00_part-phase_swi.nii.gz",
        "anat/SyMRI/sub-P001_ses-M00_T1w_synth.nii.gz",
        "anat/SyMRI/sub-P001_ses-M00_FLAIR_synth.nii.gz",
        "dwi/sub-P001_ses-M00_dir-AP_dwi.bval",
        "dwi/sub-P001_ses-M00_dir-AP_dwi.bvec",
        "dwi/sub-P001_ses-M00_ADC.nii.gz",
        "fmap/sub-P001_ses-M00_magnitude1.nii.gz",
        "fmap/sub-P001_ses-M00_magnitude2.nii.gz",
        "fmap/sub-P001_ses-M00_phasediff.nii.gz",
        "func/sub-P001_ses-M00_task-rest_run-01_bold.nii.gz",
        "func/sub-P001_ses-M00_task-rest_run-02_bold.nii.gz",
    ]:
        assert f"{p1}/{rel}" in files, rel
    assert "sub-P002/ses-M00/func/sub-P002_ses-M00_task-rest_bold.nii.gz" in files  # one run: no run entity
    assert not any("localizer" in f for f in files)


def test_runs_are_in_time_order(demo):
    plan = list(csv.DictReader(open(demo / "code/bidsport/plan.tsv"), delimiter="\t"))
    runs = sorted((r["series_time"], r["stem"]) for r in plan if r["subject"] == "P001" and r["session"] == "M00" and "bold" in r["stem"])
    assert [s for _, s in runs] == ["sub-P001_ses-M00_task-rest_run-01_bold", "sub-P001_ses-M00_task-rest_run-02_bold"]


def test_dataset_level_files(demo):
    desc = json.loads((demo / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw" and desc["Name"] == "bidsport demo"
    names = [g["Name"] for g in desc["GeneratedBy"]]
    assert names == ["bidsport", "dcm2niix"] and desc["GeneratedBy"][1]["Version"].startswith("v1.0.")
    participants = list(csv.DictReader(open(demo / "participants.tsv"), delimiter="\t"))
    assert [p["participant_id"] for p in participants] == ["sub-P001", "sub-P002", "sub-P003"]
    assert participants[0]["sex"] == "F" and participants[0]["age"] == "34"
    described = json.loads((demo / "participants.json").read_text())
    assert set(described) == {"participant_id", "sex", "age", "group"}
    scans = list(csv.DictReader(open(demo / "sub-P001/ses-M00/sub-P001_ses-M00_scans.tsv"), delimiter="\t"))
    assert {"filename", "acq_time"} <= set(scans[0]) and scans[0]["acq_time"].startswith("2024-01-15T")
    sidecar = json.loads((demo / "sub-P001/ses-M00/func/sub-P001_ses-M00_task-rest_run-01_bold.json").read_text())
    assert sidecar["TaskName"] == "rest" and sidecar["RepetitionTime"] == 2
    phasediff = json.loads((demo / "sub-P001/ses-M00/fmap/sub-P001_ses-M00_phasediff.json").read_text())
    assert (phasediff["EchoTime1"], phasediff["EchoTime2"]) == (0.00492, 0.00738)


def test_report_accounts_for_every_row(demo):
    rows = read_report(demo)
    table = list(csv.DictReader(open(demo.parent / "series_table.tsv"), delimiter="\t"))
    assert len(rows) == len(table)
    assert {r["status"] for r in rows} == {"exported", "excluded"}


def test_fieldmap_linkage_for_every_bold_and_dwi(demo):
    idents = {}
    for sidecar in demo.glob("sub-*/ses-*/fmap/*.json"):
        data = json.loads(sidecar.read_text())
        idents.setdefault(data["B0FieldIdentifier"], []).append(sidecar)
        assert all(uri.startswith("bids::sub-") for uri in data["IntendedFor"])
    targets = list(demo.glob("sub-*/ses-*/func/*_bold.json")) + list(demo.glob("sub-*/ses-*/dwi/*_dwi.json"))
    assert targets
    for sidecar in targets:
        source = json.loads(sidecar.read_text())["B0FieldSource"]
        fmaps = idents[source]
        assert all(f.parent.parent == sidecar.parent.parent for f in fmaps)  # same session
        uri = "bids::" + str(sidecar.relative_to(demo)).replace(".json", ".nii.gz")
        assert uri in json.loads(fmaps[0].read_text())["IntendedFor"]


def test_sessions_tsv(demo):
    rows = list(csv.DictReader(open(demo / "sub-P001/sub-P001_sessions.tsv"), delimiter="\t"))
    assert [r["session_id"] for r in rows] == ["ses-M00", "ses-M12"]
    assert rows[1]["acq_time"].startswith("2025-01-20T")


def test_qc_report_has_one_picture_per_exported_image(demo):
    import subprocess

    from PIL import Image

    from helpers import SNAKEMAKE

    niftis = {f for f in dataset_files(demo) if f.endswith((".nii.gz", ".nii"))}
    qc_root = demo / ".bidsport" / "qc"
    pictured = {}
    for index_file in qc_root.glob("sub-*/snapshots/index.json"):
        for stem, labels in json.loads(index_file.read_text()).items():
            pictured[labels["destination"]] = index_file.parent / f"{stem}.png"
            assert labels["classification"] and labels["provenance"] and labels["source"]
    assert set(pictured) == niftis
    for png in pictured.values():
        with Image.open(png) as image:
            assert image.height == 220 and image.width == 3 * 220 + 12
            assert image.getextrema()[1] > 0  # not a black picture
    summary = (qc_root / "sub-P001" / "summary.html").read_text()
    assert summary.count("<img ") == sum(1 for f in niftis if f.startswith("sub-P001/"))
    assert "RawRecon" in summary and "SyMRI" in summary

    work = demo.parent.parent
    report = work / "report.html"
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--report", str(report)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text()
    for png in pictured.values():
        assert png.name in html
    assert "summary of sub-P003" in html
