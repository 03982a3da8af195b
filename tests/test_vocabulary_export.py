"""Real conversions of vocabulary classes (issue 11): synthetic DICOMs for MP2RAGE,
Dixon, multi-echo GRE, TOF, spinal cord beside brain and a B1 map; the real XA30
fieldmap with a construct outside the vocabulary. Real dcm2niix, real validator."""

from __future__ import annotations

import csv

import pytest

from bidsport import synthdicom
from helpers import dataset_files, read_report, run_workflow, validator_issues, write_config, write_rows

pytestmark = pytest.mark.slow

COLUMNS = ["subject_code", "session_id", "study_date", "series_instance_uid", "series_number", "series_time", "dicom_path",
           "directory_type", "base", "modifier_csv", "construct_csv", "technique", "spinal_cord"]  # fmt: skip

# (folder, synthetic kind, overrides, classification)
SERIES = [
    ("mp2rage_inv1", "t1w", {"extra": {"InversionTime": 700.0}}, dict(base="T1w", technique="MP2RAGE", construct_csv="INV1")),
    ("mp2rage_inv2", "t1w", {"extra": {"InversionTime": 2500.0}}, dict(base="T1w", technique="MP2RAGE", construct_csv="INV2")),
    ("mp2rage_uni", "t1w", {}, dict(base="T1w", technique="MP2RAGE", construct_csv="Uniform")),
    ("dixon_w", "t1w", {}, dict(base="T1w", modifier_csv="Dixon", construct_csv="Water", technique="VIBE")),
    ("dixon_f", "t1w", {}, dict(base="T1w", modifier_csv="Dixon", construct_csv="Fat", technique="VIBE")),
    ("dixon_in", "t1w", {}, dict(base="T1w", modifier_csv="Dixon", construct_csv="InPhase", technique="VIBE")),
    ("dixon_out", "t1w", {}, dict(base="T1w", modifier_csv="Dixon", construct_csv="OutPhase", technique="VIBE")),
    ("megre", "t2w", {"echo_times": (5.0, 10.0, 15.0), "slices": 8}, dict(base="T2*w", technique="ME-GRE")),
    ("tof", "t1w", {"slices": 12}, dict(base="T1w", technique="TOF-MRA")),
    ("t2_brain", "t2w", {"slices": 8}, dict(base="T2w")),
    ("t2_spine", "t2w", {"slices": 8}, dict(base="T2w", spinal_cord="1")),
    ("b1map", "t1w", {"slices": 8, "description": "tfl_b1map"}, dict(construct_csv="B1map", technique="TurboFLASH", directory_type="fmap")),
]


@pytest.fixture(scope="module")
def vocabulary_export(tmp_path_factory):
    work = tmp_path_factory.mktemp("vocab")
    dicom = work / "dicom"
    study = synthdicom.make_uid("vocab-study")
    rows = []
    for number, (folder, kind, overrides, classification) in enumerate(SERIES, start=1):
        time = f"10{number:02d}00"
        spec = synthdicom.spec_for(kind, series_number=number, series_time=time, **overrides)
        written = synthdicom.write_series(dicom / folder, spec, patient_id="V01", study_uid=study, study_date="20240102", seed=number)
        rows.append({"subject_code": "V01", "session_id": "M00", "study_date": "2024-01-02", "series_instance_uid": written.series_instance_uid,
                     "series_number": str(number), "series_time": time, "dicom_path": folder, "directory_type": "anat",
                     **classification})  # fmt: skip
    with open(work / "series.tsv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)
    config = write_config(work, series_table="series.tsv", dicom_root="dicom", output_dir="out", include_intents=["anat", "fmap"])
    run_workflow(work, config)
    return work / "out"


def test_each_class_gets_its_bids_name(vocabulary_export):
    anat = "sub-V01/ses-M00/anat/sub-V01_ses-M00_"
    files = dataset_files(vocabulary_export)
    expected = [
        "inv-1_MP2RAGE.nii.gz", "inv-2_MP2RAGE.nii.gz", "UNIT1.nii.gz",
        "rec-water_T1w.nii.gz", "rec-fat_T1w.nii.gz", "rec-inphase_T1w.nii.gz", "rec-outphase_T1w.nii.gz",
        "echo-1_MEGRE.nii.gz", "echo-2_MEGRE.nii.gz", "echo-3_MEGRE.nii.gz",
        "angio.nii.gz", "T2w.nii.gz", "acq-spine_T2w.nii.gz",
    ]  # fmt: skip
    missing = [name for name in expected if anat + name not in files]
    assert not missing, sorted(f for f in files if f.startswith("sub-"))
    assert "sub-V01/ses-M00/fmap/sub-V01_ses-M00_TB1map.nii.gz" in files
    assert not any("run-" in f for f in files), "differing classifications told apart by run- only"


def test_validator_reports_zero_errors(vocabulary_export):
    issues = validator_issues(vocabulary_export)
    assert issues["errors"] == [], issues["errors"][:3]


def test_incomplete_mp2rage_sidecars_are_ignored_and_reported(vocabulary_export):
    ignore = (vocabulary_export / ".bidsignore").read_text().splitlines()
    assert any("MP2RAGE" in line for line in ignore)
    report = read_report(vocabulary_export)
    mp2rage = [r for r in report if "inv-1_MP2RAGE" in r["files"]]
    assert mp2rage and "RepetitionTimePreparation" in mp2rage[0]["warnings"] and ".bidsignore" in mp2rage[0]["warnings"]
    # every series is in the report, exported (ignored by the validator, not dropped)
    assert len(report) == len({r["series_instance_uid"] for r in report}) == len(SERIES)
    assert {r["status"] for r in report} == {"exported"}


def test_real_fieldmap_with_a_site_word_for_phase_pairs_by_its_images(tmp_path, source):
    """The XA30 sample fieldmap (and the synthetic one, see `source` in conftest.py)."""
    rows = [dict(r) for r in source.rows if r["series_number"] in ("8", "9")]
    for r in rows:
        r["construct_csv"] = "PhaseMap" if r["series_number"] == "9" else r["construct_csv"]
    write_rows(tmp_path / "series.tsv", rows)
    config = write_config(tmp_path, series_table="series.tsv", dicom_root=str(source.dicom_root), output_dir="out")
    proc = run_workflow(tmp_path, config)
    out = tmp_path / "out"
    fmap = sorted(f.rsplit("/", 1)[-1] for f in dataset_files(out) if "/fmap/" in f and f.endswith(".nii.gz"))
    assert fmap == [f"{source.prefix}_magnitude1.nii.gz", f"{source.prefix}_magnitude2.nii.gz", f"{source.prefix}_phasediff.nii.gz"]
    assert "unknown construct_csv value 'PhaseMap' on line 3" in proc.stderr
    report = {r["series_instance_uid"]: r for r in read_report(out)}
    assert any("PhaseMap" in r["warnings"] for r in report.values())
    issues = validator_issues(out)
    assert issues["errors"] == []
    assert not [w for w in issues["warnings"] if w.get("code") == "MISSING_MAGNITUDE1_FILE"]
