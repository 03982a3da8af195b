"""Multi-stack series are named by what each stack holds (its stack columns and its
images), never by ``stack_index`` or output sort order; provenance is a branch of the
classifier, not a verdict: raw BOLD/ASL/DTI under BOLDRecon/ASLRecon/DTIRecon are raw
BIDS, and only a construct or ImageType DERIVED makes a map."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bidsport import images, nifti_outputs, outcomes, stacks
from bidsport.plan import build_plan

CFG = {"include_intents": ["anat", "dwi", "func", "fmap", "perf", "localizer"], "output_mode": "nii.gz", "layout": "bids"}


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"subject_code": "P1", "session_id": "M00", "study_date": "2024-01-02", "dicom_path": "x", "provenance": ""}
    frame = pd.DataFrame([{**base, "series_number": str(i), "series_time": f"08{i:02d}00", **r} for i, r in enumerate(rows)]).fillna("")
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def _stems(rows: list[dict], **kw) -> dict[tuple[str, str], str]:
    plan = build_plan(_frame(rows), CFG, dicom_root=Path("/d"), **kw)
    return {(e.series_instance_uid, str(e.stack_index)): e.stem.removeprefix("sub-P1_ses-M00_") for e in plan.entries}


def _stack(uid: str, index: int, te: str, image_type: str, **extra) -> dict:
    return {"series_instance_uid": uid, "stack_index": str(index), "directory_type": "fmap", "technique": "GRE",
            "stack_echo_time": te, "stack_image_type": image_type, "stack_modality": "MR", **extra}  # fmt: skip


def test_magnitude_and_phase_at_two_echoes_are_named_by_echo_time_and_image_type_not_by_index():
    # discovery order: phase echo 2, magnitude echo 1, phase echo 1, magnitude echo 2
    rows = [
        _stack("1.5", 0, "10", "ORIGINAL\\PRIMARY\\PHASE MAP\\P\\FFE", construct_csv="Magnitude,Phase"),
        _stack("1.5", 1, "7.0", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", construct_csv="Magnitude,Phase"),
        _stack("1.5", 2, "7.0", "ORIGINAL\\PRIMARY\\PHASE MAP\\P\\FFE", construct_csv="Magnitude,Phase"),
        _stack("1.5", 3, "10", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", construct_csv="Magnitude,Phase"),
    ]
    assert _stems(rows) == {("1.5", "0"): "phase2", ("1.5", "1"): "magnitude1", ("1.5", "2"): "phase1", ("1.5", "3"): "magnitude2"}


def test_echo_split_magnitude_series_pairs_with_its_phasediff_in_one_acquisition():
    rows = [
        _stack("1.7", 0, "12.46", "ORIGINAL\\PRIMARY\\M\\ND", construct_csv="Magnitude", stack_key="multi_echo"),
        _stack("1.7", 1, "10", "ORIGINAL\\PRIMARY\\M\\ND", construct_csv="Magnitude", stack_key="multi_echo"),
        {"series_instance_uid": "1.8", "directory_type": "fmap", "construct_csv": "Phase", "technique": "GRE"},
    ]
    assert _stems(rows) == {("1.7", "0"): "magnitude2", ("1.7", "1"): "magnitude1", ("1.8", "0"): "phasediff"}


def test_echo_split_bold_gets_echo_entities_ranked_by_echo_time():
    rows = [
        {"series_instance_uid": "2.1", "stack_index": "0", "directory_type": "func", "provenance": "BOLDRecon", "stack_echo_time": "35.5",
         "stack_image_type": "ORIGINAL\\PRIMARY\\M\\ND", "task": "nback"},
        {"series_instance_uid": "2.1", "stack_index": "1", "directory_type": "func", "provenance": "BOLDRecon", "stack_echo_time": "13.2",
         "stack_image_type": "ORIGINAL\\PRIMARY\\M\\ND", "task": "nback"},
    ]  # fmt: skip
    assert _stems(rows) == {("2.1", "0"): "task-nback_echo-2_bold", ("2.1", "1"): "task-nback_echo-1_bold"}


def test_inversion_split_gets_inv_entities_and_orientation_split_localizers_stay_localizers():
    rows = [
        {"series_instance_uid": "3.1", "stack_index": str(i), "directory_type": "anat", "technique": "MP2RAGE", "stack_inversion_time": ti}
        for i, ti in enumerate(["2500", "700"])
    ] + [
        {"series_instance_uid": "3.2", "stack_index": str(i), "directory_type": "localizer", "provenance": "Localizer",
         "stack_image_orientation": o} for i, o in enumerate(["Axial", "Sagittal", "Coronal"])
    ]  # fmt: skip
    stems = _stems(rows)
    assert stems[("3.1", "0")] == "inv-2_MP2RAGE" and stems[("3.1", "1")] == "inv-1_MP2RAGE"
    assert {stems[("3.2", str(i))] for i in range(3)} == {"acq-axial_localizer", "acq-sagittal_localizer", "acq-coronal_localizer"}


def test_stacks_that_cannot_be_told_apart_are_reported_not_guessed():
    rows = [_stack("4.1", i, "5", "ORIGINAL\\PRIMARY\\M\\ND", directory_type="anat", base="T1w") for i in range(2)]
    plan = build_plan(_frame(rows), CFG, dicom_root=Path("/d"))
    assert len({e.stem for e in plan.entries}) == 2  # never two stacks on one name
    assert all("do not tell it apart" in " ".join(e.warnings) for e in plan.entries)


def test_non_mr_stacks_are_excluded_with_the_reason():
    rows = [{"series_instance_uid": "5.1", "directory_type": "anat", "base": "T1w", "stack_modality": "CT"},
            {"series_instance_uid": "5.2", "directory_type": "anat", "base": "T1w", "stack_modality": "MR"}]  # fmt: skip
    plan = build_plan(_frame(rows), CFG, dicom_root=Path("/d"))
    assert [e.series_instance_uid for e in plan.entries] == ["5.2"]
    assert plan.excluded[0]["reason"] == "not an MR image (stack_modality CT)" and plan.excluded[0]["line"] == 2


@pytest.mark.parametrize(
    ("row", "image_type", "expected"),
    [
        ({"directory_type": "func", "provenance": "BOLDRecon"}, "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC", "task-rest_bold"),
        ({"directory_type": "func", "provenance": "BOLDRecon"}, "DERIVED\\PRIMARY\\M\\ND", "task-rest_boldmap"),
        ({"directory_type": "dwi", "base": "DWI", "provenance": "DTIRecon"}, "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE", "dwi"),
        ({"directory_type": "dwi", "base": "DWI", "provenance": "DTIRecon"}, "DERIVED\\PRIMARY\\DIFFUSION", "DTI"),
        ({"directory_type": "dwi", "provenance": "DTIRecon", "construct_csv": "FA"}, "ORIGINAL\\PRIMARY", "FA"),
        ({"directory_type": "perf", "provenance": "ASLRecon"}, "ORIGINAL\\PRIMARY\\ASL", "asl"),
        ({"directory_type": "perf", "provenance": "ASLRecon", "series_description": "tgse_pcasl_M0"}, "ORIGINAL\\PRIMARY", "m0scan"),
        ({"directory_type": "perf", "provenance": "ASLRecon"}, "DERIVED\\PRIMARY\\ASL\\PERFUSION", "PWI"),
        ({"directory_type": "perf", "provenance": "ASLRecon"}, None, "asl"),  # unknown image type: raw, never a guess of "map"
    ],
)
def test_provenance_is_a_branch_and_only_construct_or_derived_makes_a_map(row, image_type, expected):
    rows = [{"series_instance_uid": "6.1", **row}]
    assert _stems(rows, image_type=lambda r: image_type)[("6.1", "0")] == expected


def test_the_images_image_type_is_read_only_when_the_table_does_not_give_it():
    asked = []
    rows = [{"series_instance_uid": "7.1", "directory_type": "func", "provenance": "BOLDRecon", "stack_image_type": "DERIVED\\PRIMARY"},
            {"series_instance_uid": "7.2", "directory_type": "func", "provenance": "BOLDRecon"}]  # fmt: skip
    stems = _stems(rows, image_type=lambda r: asked.append(r["series_instance_uid"]) or "ORIGINAL\\PRIMARY")
    assert asked == ["7.2"] and stems[("7.1", "0")].endswith("boldmap") and stems[("7.2", "0")].endswith("_bold")


def test_tell_apart_ranks_by_value_and_says_what_it_could_not_tell():
    facts = [stacks.stack_facts(r) for r in ({"stack_echo_time": "12.46"}, {"stack_echo_time": "10.0"}, {"stack_echo_time": "10.001"})]
    roles = stacks.tell_apart(facts)
    assert [r.echo for r in roles] == [2, 1, 1]  # equal within NILS's 0.01 ms rounding
    assert not roles[0].note and "do not tell it apart" in roles[1].note
    assert stacks.image_part("ORIGINAL\\PRIMARY\\P\\ND") == "phase" and stacks.image_part(["ORIGINAL", "PRIMARY", "M_FFE", "M"]) == "mag"
    assert stacks.is_derived("DERIVED\\SECONDARY") and not stacks.is_derived("ORIGINAL\\PRIMARY\\M")


def _group(tmp_path: Path, postfix: str, sidecar: dict) -> list[Path]:
    import json

    nii, js = tmp_path / f"series{postfix}.nii", tmp_path / f"series{postfix}.json"
    nii.write_bytes(b"")
    js.write_text(json.dumps(sidecar))
    return [nii, js]


def test_a_stack_job_takes_the_output_its_columns_describe_never_the_sorted_one(tmp_path):
    groups = {
        "_e1": _group(tmp_path, "_e1", {"EchoTime": 0.007001, "ImageType": ["ORIGINAL", "PRIMARY", "M", "MAGNITUDE"]}),
        "_e1_ph": _group(tmp_path, "_e1_ph", {"EchoTime": 0.007001, "ImageType": ["ORIGINAL", "PRIMARY", "P", "PHASE"]}),
        "_e2": _group(tmp_path, "_e2", {"EchoTime": 0.01, "ImageType": ["ORIGINAL", "PRIMARY", "M", "MAGNITUDE"]}),
        "_e2_ph": _group(tmp_path, "_e2_ph", {"EchoTime": 0.01, "ImageType": ["ORIGINAL", "PRIMARY", "P", "PHASE"]}),
    }
    facts = nifti_outputs.sidecar_facts(groups)
    spec = {"n_stacks": 4, "stack_index": 0, "stack": stacks.stack_facts({"stack_echo_time": "7", "stack_image_type": "ORIGINAL\\PRIMARY\\P\\FFE"})}
    assert list(nifti_outputs.select_stack(groups, spec, facts)) == ["_e1_ph"]
    spec["stack"] = stacks.stack_facts({"stack_echo_time": "4.6", "stack_image_type": "ORIGINAL\\PRIMARY\\M"})
    with pytest.raises(outcomes.SeriesFailed, match="none of the 4 image"):
        nifti_outputs.select_stack(groups, spec, facts)


def test_output_facts_prefer_the_sidecar_over_dcm2niix_postfixes():
    f = images.output_facts("_e1", {"EchoNumber": 2, "EchoTime": 0.0123, "ImageType": ["ORIGINAL", "PRIMARY", "P", "PHASE"]})
    assert (f.echo, f.echo_time, f.part) == (2, 12.3, "phase")
    assert images.output_facts("_e2_ph").part == "phase" and images.output_facts("_fieldmaphz").fieldmap_hz


def test_a_fieldmap_the_validator_would_reject_is_named_as_incomplete(tmp_path):
    import json

    from bidsport.fieldmap_sidecars import incomplete_fieldmaps

    fmap = "sub-1/ses-A/fmap/sub-1_ses-A_"
    files = [fmap + "phasediff.nii.gz", fmap + "phasediff.json", fmap + "run-02_phase1.nii.gz", fmap + "run-02_magnitude1.nii.gz"]
    (tmp_path / "sub-1/ses-A/fmap").mkdir(parents=True)
    (tmp_path / (fmap + "phasediff.json")).write_text(json.dumps({"EchoTime1": 0.01, "EchoTime2": 0.0125}))
    found = incomplete_fieldmaps(tmp_path, files, set(files))
    assert found == {fmap + "phasediff.nii.gz": "a phasediff without its magnitude1 image (not in the export)"}


def test_a_filtered_out_stack_still_counts_so_its_sibling_keeps_its_name_and_only_its_own_images():
    rows = [
        _stack("1.9", 0, "12.46", "ORIGINAL\\PRIMARY\\M\\ND", construct_csv="Magnitude", manual_review_required="0"),
        _stack("1.9", 1, "10", "ORIGINAL\\PRIMARY\\M\\ND", construct_csv="Magnitude", manual_review_required="1"),
    ]
    plan = build_plan(_frame(rows), CFG, dicom_root=Path("/d"))
    (entry,) = plan.entries
    assert entry.stem.endswith("_magnitude2") and entry.n_stacks == 2  # not renamed magnitude1
    assert entry.spec("skip")["stack"]["echo_time"] == 12.46  # its job picks its own images, not the whole series


@pytest.mark.parametrize("part", ["nifti", "dicom"])
def test_a_series_whose_images_are_not_mr_is_excluded_by_its_job_with_the_reason(tmp_path, part):
    """A table without stack_modality: the images' own Modality (sidecar for NIfTI,
    the first header for a copy) keeps a CT series out of the MRI dataset."""
    import pydicom

    from bidsport import dcm2niix as d2n
    from bidsport import export_series, synthdicom

    written = synthdicom.write_series(tmp_path / "dicom" / "ct", synthdicom.spec_for("t1w"), patient_id="P1",
                                      study_uid="1.2.826.0.1.3680043.8.498.1", study_date="20240102")  # fmt: skip
    for path in written.files:
        ds = pydicom.dcmread(path)
        ds.Modality = "CT"
        ds.save_as(path)
    spec = {
        "key": "k", "subject": "01", "session": None, "series_instance_uid": written.series_instance_uid, "stack_index": 0,
        "n_stacks": 1, "datatype": "anat", "subfolder": None, "entities": [], "suffix": "T1w", "tail": "", "role": "image",
        "kind": "raw", "run": None, "stem": "sub-01_T1w", "formats": ["nii.gz", "dcm"], "nifti_dir": "sub-01/anat",
        "dicom_dir": "sourcedata/sub-01/anat/sub-01_T1w", "source": str(written.folder), "multi_suffix": "", "overwrite": "skip",
    }  # fmt: skip
    out = tmp_path / "out"
    manifest = export_series.export(spec, part, out, dcm2niix=d2n.find_dcm2niix(), copy_method="copy", copy_workers=1, timeout=120)
    assert manifest["status"] == "excluded" and "not an MR image (Modality CT)" in manifest["message"]
    assert not [p for p in out.rglob("*") if p.is_file() and ".bidsport" not in p.parts]  # nothing in the dataset
