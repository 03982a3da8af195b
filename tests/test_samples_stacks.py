"""The real samples tabled as the NILS classifier tables them (one row per stack, with
the stack columns; raw BOLD/DTI/ASL under BOLDRecon/DTIRecon/ASLRecon; the Siemens
XA30 interoperability export; a GE pepolar series with both polarities), exported as
NIfTI and DICOM copies in one run. Table: tests/data/samples/series_table_stacks.tsv
(make_stack_table.py). Each file must hold its own image (checked by the sidecar's
EchoTime, ImageType and PhaseEncodingDirection), no series may be lost, and the BIDS
validator must report zero errors."""

import csv
import json
import shutil

import pytest

from helpers import REPO, SAMPLES, dataset_files, needs_samples, read_report, run_workflow, validator_issues, write_config

pytestmark = [pytest.mark.slow, needs_samples]
TABLE = REPO / "tests" / "data" / "samples" / "series_table_stacks.tsv"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    work = tmp_path_factory.mktemp("stacks")
    shutil.copy(TABLE, work / "series.tsv")
    cfg = write_config(work, series_table="series.tsv", dicom_root=str(SAMPLES), output_dir="bids",
                       dataset_name="stacks", output_mode=["nii.gz", "dcm"])  # fmt: skip
    proc = run_workflow(work, cfg, check=False)
    out = work / "bids"
    return {"work": work, "out": out, "proc": proc, "report": read_report(out), "files": dataset_files(out)}


def sidecar(out, rel):
    return json.loads((out / rel).read_text())


def fmap_files(export, subject, session):
    folder = f"sub-{subject}/ses-{session}/fmap/"
    return sorted(f.removeprefix(folder) for f in export["files"] if f.startswith(folder) and f.endswith(".nii.gz"))


def test_zero_validator_errors_and_no_series_lost(export):
    issues = validator_issues(export["out"])
    assert issues["errors"] == [], json.dumps(issues["errors"], indent=1)[:3000]
    with open(TABLE, encoding="utf-8") as fh:
        table_lines = {i for i, _ in enumerate(csv.DictReader(fh, delimiter="\t"), start=2)}
    report = export["report"]
    assert {int(r["line"]) for r in report} == table_lines  # a report row for every table row, with its line
    lost = [r for r in report if r["status"] not in ("exported", "excluded")]
    assert lost == [], lost
    assert all(r["directory_type"] == "localizer" for r in report if r["status"] == "excluded")


def test_echo_split_magnitude_stacks_are_magnitude1_and_2_of_one_fieldmap(export):
    out = export["out"]
    assert fmap_files(export, "XA30", "20220711") == [
        "sub-XA30_ses-20220711_magnitude1.nii.gz", "sub-XA30_ses-20220711_magnitude2.nii.gz", "sub-XA30_ses-20220711_phasediff.nii.gz",
    ]  # fmt: skip
    base = "sub-XA30/ses-20220711/fmap/sub-XA30_ses-20220711_"
    assert sidecar(out, base + "magnitude1.json")["EchoTime"] < sidecar(out, base + "magnitude2.json")["EchoTime"]
    ids = {sidecar(out, base + f"{n}.json")["B0FieldIdentifier"] for n in ("magnitude1", "magnitude2", "phasediff")}
    assert len(ids) == 1
    bold = sidecar(out, "sub-XA30/ses-20220711/func/sub-XA30_ses-20220711_task-fa_bold.json")
    assert bold["B0FieldSource"] in ids  # raw BOLD (BOLDRecon) is linked to its fieldmap


def test_magnitude_and_phase_at_two_echoes_each_hold_their_own_image(export):
    out = export["out"]
    names = fmap_files(export, "Ph1301", "baseline")
    assert names == [f"sub-Ph1301_ses-baseline_{n}.nii.gz" for n in ("magnitude1", "magnitude2", "phase1", "phase2")]
    base = "sub-Ph1301/ses-baseline/fmap/sub-Ph1301_ses-baseline_"
    for name, echo, kind in (("magnitude1", 0.007001, "MAGNITUDE"), ("magnitude2", 0.01, "MAGNITUDE"),
                             ("phase1", 0.007001, "PHASE"), ("phase2", 0.01, "PHASE")):  # fmt: skip
        data = sidecar(out, base + f"{name}.json")
        assert (data["EchoTime"], data["ImageType"][-1]) == (echo, kind), name
    assert len({sidecar(out, base + f"{n}.json")["B0FieldIdentifier"] for n in ("magnitude1", "phase2")}) == 1


def test_dicom_copy_of_a_stack_holds_that_stack_under_its_nifti_name(export):
    out = export["out"]
    folder = out / "sourcedata" / "sub-Ph1301" / "ses-baseline" / "fmap"
    copies = sorted(p.name for p in folder.iterdir())
    assert copies == [f"sub-Ph1301_ses-baseline_{n}" for n in ("magnitude1", "magnitude2", "phase1", "phase2")]
    counts = {p.name: len(list(p.iterdir())) for p in folder.iterdir()}
    assert set(counts.values()) == {30}, counts  # 120 files, 30 per stack, never the whole series four times


def test_both_polarities_of_a_pepolar_series_are_a_named_topup_pair(export):
    out = export["out"]
    assert fmap_files(export, "GEUHP", "M00") == ["sub-GEUHP_ses-M00_dir-AP_epi.nii.gz", "sub-GEUHP_ses-M00_dir-PA_epi.nii.gz"]
    base = "sub-GEUHP/ses-M00/fmap/sub-GEUHP_ses-M00_"
    ap, pa = sidecar(out, base + "dir-AP_epi.json"), sidecar(out, base + "dir-PA_epi.json")
    assert {ap["PhaseEncodingDirection"], pa["PhaseEncodingDirection"]} == {"j", "j-"}
    assert ap["B0FieldIdentifier"] == pa["B0FieldIdentifier"]


def test_raw_acquisitions_under_recon_provenances_are_raw_bids(export):
    files, ignore = export["files"], (export["out"] / ".bidsignore").read_text()
    for rel in ("sub-GE1486/ses-baseline/func/sub-GE1486_ses-baseline_task-rest_bold.nii.gz",
                "sub-Magdeburg/ses-20140214/func/sub-Magdeburg_ses-20140214_task-rest_bold.nii.gz",
                "sub-GEPioneer/ses-20200929/dwi/sub-GEPioneer_ses-20200929_dwi.bval",
                "sub-PASL/ses-M00/perf/sub-PASL_ses-M00_asl.nii.gz",
                "sub-XA30/ses-20220711/dwi/sub-XA30_ses-20220711_ADC.nii.gz"):  # fmt: skip
        assert rel in files, rel
    assert not any(s in " ".join(files) for s in ("_boldmap", "_DTI", "_PWI"))
    assert "bold" not in ignore and "dwi" not in ignore
    assert len([f for f in files if "/sub-XA30i/" in "/" + f and f.endswith("_asl.nii.gz")]) == 7  # one run per series


def test_scans_acq_time_is_the_images_acquisition_time(export):
    out = export["out"]
    checked = 0
    for scans in out.glob("sub-*/**/*_scans.tsv"):
        for row in csv.DictReader(open(scans, encoding="utf-8"), delimiter="\t"):
            data = json.loads((scans.parent / row["filename"].replace(".nii.gz", ".json")).read_text())
            if data.get("AcquisitionTime") and row["acq_time"] != "n/a":  # n/a: no study date (UIH)
                hh, mm, ss = data["AcquisitionTime"].split(":")
                assert row["acq_time"].endswith(f"T{int(hh):02d}:{int(mm):02d}:{int(float(ss)):02d}"), (scans, row)
                checked += 1
    assert checked >= 10


def test_only_subjects_with_exported_data_are_listed(export):
    listed = [r["participant_id"] for r in csv.DictReader(open(export["out"] / "participants.tsv"), delimiter="\t")]
    with_data = sorted({f.split("/")[0] for f in export["files"] if f.startswith("sub-") and f.endswith(".nii.gz")})
    assert listed == with_data
