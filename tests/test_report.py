"""The export report and the TSV module: manifests merged per series, one row per
table row and per stale series, cells on one line, written only when they change."""

from __future__ import annotations

import json

from bidsport import report, tsv


def manifest(folder, key, part, status, files=(), message="", **extra):
    path = folder / f"{key}.{part}.json"
    path.write_text(json.dumps({"key": key, "part": part, "status": status, "files": list(files), "message": message, **extra}))
    return path


def test_a_series_parts_merge_and_a_failed_part_fails_the_series(tmp_path):
    paths = [
        manifest(tmp_path, "a", "nifti", "exported", [{"path": "sub-1/anat/sub-1_T1w.nii.gz"}, {"path": "sub-1/anat/sub-1_T1w.json", "incomplete": True}],
                 acquired="10:00:00", warnings=["w1"]),
        manifest(tmp_path, "a", "dicom", "failed", message="disk full"),
        manifest(tmp_path, "b", "nifti", "skipped", [{"path": "sub-1/anat/sub-1_T2w.nii.gz"}]),
        manifest(tmp_path, "b", "dicom", "exported", [{"path": "sourcedata/b/1.dcm"}]),
    ]  # fmt: skip
    by_key, incomplete = report.merge_manifests(paths)
    assert by_key["a"]["status"] == "failed" and by_key["a"]["message"] == "dicom: disk full"
    assert [f["path"] for f in by_key["a"]["files"]] == ["sub-1/anat/sub-1_T1w.nii.gz", "sub-1/anat/sub-1_T1w.json"]
    assert by_key["a"]["acquired"] == "10:00:00" and by_key["a"]["warnings"] == ["w1"]
    assert by_key["b"]["status"] == "exported"  # a skipped part takes the other's status
    assert incomplete == {"sub-1/anat/sub-1_T1w.json"}
    assert report.series_files([{"key": "b"}, {"key": "a"}, {"key": "gone"}], by_key) == [
        "sub-1/anat/sub-1_T2w.nii.gz", "sourcedata/b/1.dcm", "sub-1/anat/sub-1_T1w.nii.gz", "sub-1/anat/sub-1_T1w.json"]  # fmt: skip


def test_rows_and_counts_for_planned_excluded_and_stale_series(tmp_path):
    out, ledgers = tmp_path / "out", tmp_path / "out" / ".bidsport" / "ledger"
    ledgers.mkdir(parents=True)
    (out / "kept.nii.gz").write_text("x")
    (ledgers / "old.nifti.json").write_text(json.dumps({"files": [{"path": "kept.nii.gz"}, {"path": "deleted.nii.gz"}]}))
    (ledgers / "gone.nifti.json").write_text(json.dumps({"files": [{"path": "deleted.nii.gz"}]}))  # nothing left: no row
    (ledgers / "a.nifti.json").write_text(json.dumps({"files": [{"path": "kept.nii.gz"}]}))  # planned: not stale
    plan = [{"key": "a", "subject": "1", "warnings": "planned"}, {"key": "b", "subject": "1", "warnings": ""}]
    by_key = {"a": {"status": "exported", "files": [{"path": "x.nii.gz"}, {"path": "x.json"}], "warnings": ["kept"], "message": ""}}
    excluded = [{"key": "c", "status": "invalid", "reason": "bad date"}, {"key": "d", "reason": "localizer"}]
    rows, counts = report.build(plan, by_key, excluded, out, ledgers)
    assert counts == {"exported": 1, "skipped": 0, "failed": 1, "excluded": 2, "stale": 1}  # invalid rows count as excluded
    assert [(r["key"], r["status"]) for r in rows] == [("a", "exported"), ("b", "failed"), ("c", "invalid"), ("d", "excluded"), ("old", "stale")]
    assert rows[0]["files"] == "x.nii.gz, x.json" and rows[0]["warnings"] == "planned | kept"
    assert rows[1]["reason"] == "no manifest (job did not finish)"
    assert rows[4]["files"] == "kept.nii.gz" and "overwrite: clean" in rows[4]["reason"]


def test_the_report_is_written_once_and_read_back(tmp_path):
    path = tmp_path / "code" / "export_report.tsv"
    rows = [{"key": "a", "status": "failed", "reason": "line one\nline\ttwo", "other": "dropped"}]
    assert report.write_report(path, rows) is True
    assert report.write_report(path, rows) is False  # same content: the file is not touched
    back = report.read_report(path)
    assert list(back[0]) == report.REPORT_COLUMNS
    assert back[0]["reason"] == "line one line two" and back[0]["key"] == "a" and back[0]["files"] == ""
    assert report.read_report(tmp_path / "missing.tsv") == []


def test_tsv_cells_stay_on_one_line_and_quoted_text_keeps_them_whole():
    assert tsv.to_text([{"a": 1, "b": "x\ty\r\nz"}], ["b", "a"]) == "b\ta\nx y  z\t1\n"
    assert tsv.quoted_text(["a", "b"], [["x\ty", "z"]]) == 'a\tb\n"x\ty"\tz\n'
