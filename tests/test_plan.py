import json

import pandas as pd
import pytest

from bidsport.plan import NothingToExport, build_plan, series_key, write_plan
from bidsport.table import TableError

CFG = {"include_intents": ["anat", "dwi", "func", "fmap", "perf"], "output_mode": "nii.gz", "layout": "bids"}


def table(*rows):
    frame = pd.DataFrame([{"provenance": "", "session_id": "", "study_date": "", "series_time": "", "series_number": "", **r} for r in rows])
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame.fillna("")


def row(uid, subject="P1", intent="anat", **extra):
    return {"subject_code": subject, "series_instance_uid": uid, "dicom_path": "x", "directory_type": intent, "session_id": "M00", **extra}


def plan(frame, tmp_path, **cfg):
    return build_plan(frame, {**CFG, **cfg}, dicom_root=tmp_path)


def test_runs_are_numbered_by_acquisition_time(tmp_path):
    p = plan(
        table(
            row("1.3", base="T1w", series_time="120000", series_number="7"),
            row("1.1", base="T1w", series_time="090000", series_number="9"),
            row("1.2", base="T2w", series_time="100000"),
        ),
        tmp_path,
    )
    stems = {e.series_instance_uid: e.stem for e in p.entries}
    assert stems == {"1.1": "sub-P1_ses-M00_run-01_T1w", "1.3": "sub-P1_ses-M00_run-02_T1w", "1.2": "sub-P1_ses-M00_T2w"}


def test_series_number_breaks_ties_and_other_subjects_do_not_matter(tmp_path):
    rows = [row("1.1", base="T1w", series_number="5"), row("1.2", base="T1w", series_number="3")]
    before = {e.series_instance_uid: e.stem for e in plan(table(*rows), tmp_path).entries}
    after = {e.series_instance_uid: e.stem for e in plan(table(*rows, row("2.1", subject="P2", base="T1w")), tmp_path).entries}
    assert before["1.2"].endswith("run-01_T1w") and before["1.1"].endswith("run-02_T1w")
    assert {k: after[k] for k in before} == before  # adding a subject renames nobody


def test_fieldmap_magnitude_and_phase_series_share_a_run(tmp_path):
    p = plan(
        table(
            row("1.1", intent="fmap", construct_csv="Magnitude", series_time="100000"),
            row("1.2", intent="fmap", construct_csv="Phase", series_time="100001"),
            row("1.3", intent="fmap", construct_csv="Magnitude", series_time="110000"),
            row("1.4", intent="fmap", construct_csv="Phase", series_time="110001"),
        ),
        tmp_path,
    )
    runs = {e.series_instance_uid: e.run for e in p.entries}
    assert runs == {"1.1": 1, "1.2": 1, "1.3": 2, "1.4": 2}


def test_filters_and_nothing_to_export_message(tmp_path):
    frame = table(row("1.1", base="T1w"), row("1.2", intent="dwi", provenance="DTIRecon", construct_csv="ADC"))
    p = plan(frame, tmp_path, exclude_provenance=["DTIRecon"])
    assert [e.series_instance_uid for e in p.entries] == ["1.1"]
    assert p.excluded[0]["reason"] == "exclude_provenance: provenance='DTIRecon'"
    with pytest.raises(NothingToExport) as err:
        plan(frame, tmp_path, include_intents=["func"])
    msg = str(err.value)
    assert msg.startswith("No series to export")
    assert "include_intents = ['func'] removed 2 row(s)" in msg
    assert "intents in the table: anat (1), dwi (1)" in msg
    assert "provenances in the table: DTIRecon (1), RawRecon (1)" in msg


def test_subject_labels_that_collide_are_an_error_naming_both(tmp_path):
    with pytest.raises(TableError) as err:
        plan(table(row("1.1", subject="P-01"), row("1.2", subject="P_01")), tmp_path)
    assert "'P_01' and 'P-01'" in str(err.value) and "sub-P01" in str(err.value)


def test_alternative_identifiers_with_fallback(tmp_path):
    ids = pd.DataFrame({"subject_code": ["P1", "P1"], "id_type": ["STUDY_ID", "3"], "other_identifier": ["S-100", "77"]})
    frame = table(row("1.1", base="T1w"), row("2.1", subject="P2", base="T1w"))
    p = build_plan(frame, {**CFG, "subject_identifier_source": "STUDY_ID"}, dicom_root=tmp_path, identifiers=ids)
    assert p.subjects == {"P1": "S100", "P2": "P2"} and p.fallbacks == ["P2"]
    p = build_plan(frame, {**CFG, "subject_identifier_source": 3}, dicom_root=tmp_path, identifiers=ids)
    assert p.subjects["P1"] == "77"


def test_session_from_study_date_and_none(tmp_path):
    p = plan(table(row("1.1", base="T1w", session_id="", study_date="2024-03-05"), row("2.1", subject="P2", base="T1w", session_id="")), tmp_path)
    stems = {e.series_instance_uid: e.stem for e in p.entries}
    assert stems == {"1.1": "sub-P1_ses-20240305_T1w", "2.1": "sub-P2_T1w"}


def test_layouts_and_formats_place_files(tmp_path):
    frame = table(row("1.1", base="T1w"))
    e = plan(frame, tmp_path, output_mode=["nii.gz", "dcm"]).entries[0]
    assert (e.nifti_dir, e.dicom_dir) == ("sub-P1/ses-M00/anat", "sourcedata/sub-P1/ses-M00/anat/sub-P1_ses-M00_T1w")
    e = plan(frame, tmp_path, output_mode="dcm").entries[0]
    assert (e.nifti_dir, e.dicom_dir) == (None, "sub-P1/ses-M00/anat/sub-P1_ses-M00_T1w")
    e = plan(frame, tmp_path, layout="flat").entries[0]
    assert e.nifti_dir == "" and e.stem == "sub-P1_ses-M00_T1w"


def test_specs_are_rewritten_only_when_their_series_changes(tmp_path):
    out = tmp_path / "out"
    frame = table(row("1.1", base="T1w"), row("2.1", subject="P2", base="T1w"))
    p = plan(frame, tmp_path)
    assert write_plan(p, out / "plan.tsv", out / "specs", out / "excluded.tsv", "skip") == 2
    spec = out / "specs" / f"{series_key('2.1', 0)}.json"
    mtime = spec.stat().st_mtime_ns
    frame.loc[0, "base"] = "T2w"
    assert write_plan(plan(frame, tmp_path), out / "plan.tsv", out / "specs", out / "excluded.tsv", "skip") == 1
    assert spec.stat().st_mtime_ns == mtime
    assert json.loads((out / "specs" / f"{series_key('1.1', 0)}.json").read_text())["suffix"] == "T2w"


def test_sources_shared_by_several_series_are_known_to_the_plan(tmp_path):
    from bidsport.plan import sources_with_several_series

    table = pd.DataFrame(
        {
            "dicom_path": ["a", "b", "b", "c", "c/inner", "/abs/d"],
            "series_instance_uid": ["1.1", "1.2", "1.2", "1.3", "1.4", "1.5"],
        }
    )
    shared = sources_with_several_series(table, tmp_path)
    assert str(tmp_path / "a") not in shared
    assert str(tmp_path / "b") not in shared  # two stacks of one series
    assert str(tmp_path / "c") in shared  # another series lives under it
    assert str(tmp_path / "c/inner") not in shared
    assert "/abs/d" not in shared
