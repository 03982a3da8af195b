"""Dataset metadata written from a plan and merged manifests: scans.tsv, README,
.bidsignore, first-session ages, and when a series was acquired."""

from __future__ import annotations

import math

from bidsport import dataset_metadata
from bidsport.acquisition import acquisition


def test_the_images_clock_wins_over_the_tables_series_time():
    row = {"study_date": "20240115", "series_time": "101500"}
    seconds, text = acquisition(row, {"acquired": "10:02:03.5"})
    assert text == "2024-01-15T10:02:03"
    assert seconds < acquisition(row, None)[0]
    assert acquisition(row, None)[1] == "2024-01-15T10:15:00"
    assert acquisition({}, {"acquired": "nonsense"}) == (math.inf, "n/a")


def test_scans_tsv_lists_raw_images_per_session_and_readme_is_never_overwritten(tmp_path):
    plan = [{"key": "a", "study_date": "20240115", "series_time": "090000"}, {"key": "b", "study_date": "20240115", "series_time": "080000"}]
    by_key = {
        "a": {"files": [{"path": "sub-1/ses-A/anat/sub-1_ses-A_T1w.nii.gz"}, {"path": "sub-1/ses-A/anat/sub-1_ses-A_T1w.json"},
                        {"path": "sub-1/ses-A/anat/SyMRI/sub-1_ses-A_T1w.nii.gz"}]},
        "b": {"files": [{"path": "sub-1/ses-A/anat/sub-1_ses-A_T2w.nii.gz"}, {"path": "sub-1/ses-A/dwi/sub-1_ses-A_dwi.nii.gz"}]},
    }  # fmt: skip
    dataset_metadata.write_scans(tmp_path, plan, by_key, incomplete={"sub-1/ses-A/dwi/sub-1_ses-A_dwi.nii.gz"})
    assert (tmp_path / "sub-1/ses-A/sub-1_ses-A_scans.tsv").read_text() == (
        "filename\tacq_time\nanat/sub-1_ses-A_T1w.nii.gz\t2024-01-15T09:00:00\nanat/sub-1_ses-A_T2w.nii.gz\t2024-01-15T08:00:00\n"
    )
    files = [f["path"] for m in by_key.values() for f in m["files"]]
    dataset_metadata.write_bidsignore(tmp_path, files)
    assert (tmp_path / ".bidsignore").read_text() == "sub-*/ses-*/anat/SyMRI\n"
    (tmp_path / "README.md").write_text("mine")
    dataset_metadata.write_readme(tmp_path, {"dataset_name": "x"})
    assert not (tmp_path / "README").exists()


def test_participants_get_the_age_at_their_first_session(tmp_path):
    rows = [{"subject": "1", "subject_code": "P1", "series_instance_uid": u, "study_date": d, "series_time": "1000"}
            for u, d in (("1.1", "20240301"), ("1.2", "20230301"))]  # fmt: skip
    ages = dataset_metadata.first_session_ages(rows, {("1.1", "0"): "41", ("1.2", "0"): "40"})
    assert ages == {"1": "40"}
    dataset_metadata.write_participants(tmp_path, rows, None, ages)
    assert (tmp_path / "participants.tsv").read_text() == "participant_id\tage\nsub-1\t40\n"
