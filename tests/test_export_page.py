"""The export page, item by item, on three real series (Siemens XA30: T1w and a
two-file fieldmap) with real dcm2niix and the real validator."""

from __future__ import annotations

import csv
import gzip
import subprocess

import pytest

from helpers import REPO, SAMPLES, dataset_files, read_report, run_workflow, validator_issues, write_config

pytestmark = pytest.mark.slow
UIDS = {"5", "8", "9"}  # series numbers of XA30: T1w, fieldmap magnitude, fieldmap phase


@pytest.fixture
def table(tmp_path):
    rows = list(csv.DictReader(open(REPO / "tests/data/samples/series_table.tsv"), delimiter="\t"))
    keep = [r for r in rows if r["subject_code"] == "XA30" and r["series_number"] in UIDS]
    path = tmp_path / "series.tsv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(keep)
    return path


def config(tmp_path, **extra):
    return write_config(tmp_path, **{"series_table": "series.tsv", "dicom_root": str(SAMPLES), "output_dir": "out", **extra})


def test_no_series_to_export_stops_before_writing(tmp_path, table):
    proc = run_workflow(tmp_path, config(tmp_path, include_intents=["func"]), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No series to export" in text and "include_intents = ['func'] removed 3 row(s)" in text
    assert "intents in the table: anat (1), fmap (2)" in text
    written = dataset_files(tmp_path / "out") if (tmp_path / "out").exists() else set()
    assert written == set()  # only bidsport's own log folder, no dataset file


def test_flat_layout(tmp_path, table):
    run_workflow(tmp_path, config(tmp_path, layout="flat"))
    files = {f for f in dataset_files(tmp_path / "out") if not f.startswith("code/")}
    assert "sub-XA30_ses-20220711_T1w.nii.gz" in files
    assert {"sub-XA30_ses-20220711_magnitude1.nii.gz", "sub-XA30_ses-20220711_phasediff.nii.gz"} <= files
    assert all("/" not in f for f in files)


def test_nifti_and_dicom_together_mirror_names_under_sourcedata(tmp_path, table):
    run_workflow(tmp_path, config(tmp_path, output_mode=["nii.gz", "dcm"]))
    out = tmp_path / "out"
    copies = sorted((out / "sourcedata/sub-XA30/ses-20220711/anat/sub-XA30_ses-20220711_T1w").iterdir())
    assert len(copies) == 1 and copies[0].read_bytes() == next((SAMPLES / "dcm_qa_xa30/In/5_anat-T1w_acq-tfl").iterdir()).read_bytes()
    assert (out / "sub-XA30/ses-20220711/anat/sub-XA30_ses-20220711_T1w.nii.gz").exists()
    assert validator_issues(out)["errors"] == []


def test_dicom_only_is_an_organised_tree(tmp_path, table):
    run_workflow(tmp_path, config(tmp_path, output_mode="dcm", dcm_copy_method="hardlink"))
    out = tmp_path / "out"
    files = dataset_files(out)
    assert not any(f.endswith(".nii.gz") for f in files)
    fmap = out / "sub-XA30/ses-20220711/fmap/sub-XA30_ses-20220711_magnitude"
    assert len(list(fmap.iterdir())) == 2
    sources = {p.stat().st_ino for p in (SAMPLES / "dcm_qa_xa30/In/8_gre_field_mapping").iterdir()}
    assert {p.stat().st_ino for p in fmap.iterdir()} == sources  # hardlinked, not copied


def test_alternative_identifier_with_fallback_in_report(tmp_path, table):
    ids = tmp_path / "ids.tsv"
    ids.write_text("subject_code\tid_type\tother_identifier\nOTHER\tSTUDY_ID\tS-9\n")
    run_workflow(tmp_path, config(tmp_path, subject_identifiers_table="ids.tsv", subject_identifier_source="STUDY_ID"))
    report = read_report(tmp_path / "out")
    assert {r["subject_source"] for r in report} == {"subject_code (no STUDY_ID identifier)"}
    ids.write_text("subject_code\tid_type\tother_identifier\nXA30\tSTUDY_ID\tS-9\nXA30\t3\t77\n")
    run_workflow(tmp_path, config(tmp_path, subject_identifiers_table="ids.tsv", subject_identifier_source=3, output_dir="out3"))
    assert (tmp_path / "out3/sub-77/ses-20220711/anat/sub-77_ses-20220711_T1w.nii.gz").exists()


def test_overwrite_modes(tmp_path, table):
    out = tmp_path / "out"
    t1w = out / "sub-XA30/ses-20220711/anat/sub-XA30_ses-20220711_T1w.nii.gz"
    t1w.parent.mkdir(parents=True)
    t1w.write_bytes(b"not ours")  # a file that was there before bidsport
    run_workflow(tmp_path, config(tmp_path))
    assert t1w.read_bytes() == b"not ours"  # skip (default) leaves it alone ...
    row = next(r for r in read_report(out) if "T1w" in r["files"])
    assert "kept 1 existing file(s)" in row["warnings"]  # ... and says so
    run_workflow(tmp_path, config(tmp_path, overwrite="overwrite"))
    assert gzip.decompress(t1w.read_bytes())[:4] != b"not "  # replaced in place

    (out / "notes.docx").write_text("precious")
    proc = run_workflow(tmp_path, config(tmp_path, overwrite="clean"), check=False)
    assert proc.returncode != 0 and "clean refused, nothing was deleted" in proc.stdout + proc.stderr
    assert (out / "notes.docx").exists() and t1w.exists()
    (out / "notes.docx").unlink()
    stray = out / "sub-XA30/ses-20220711/anat/stray.txt"
    stray.write_text("x")
    run_workflow(tmp_path, config(tmp_path, overwrite="clean"))
    assert not stray.exists() and t1w.exists()


@pytest.mark.parametrize("target", ["home", "root", "contains_sources"])
def test_clean_refuses_dangerous_targets(tmp_path, target):
    from bidsport.safety import SafetyError, clean_output
    from pathlib import Path

    paths = {"home": Path.home(), "root": Path("/"), "contains_sources": tmp_path}
    with pytest.raises(SafetyError, match="nothing was deleted"):
        clean_output(paths[target], tmp_path / "dicom")


def test_output_inside_sources_is_refused(tmp_path, table):
    proc = run_workflow(tmp_path, write_config(tmp_path, series_table="series.tsv", dicom_root=str(SAMPLES), output_dir=str(SAMPLES / "out")), check=False)
    assert proc.returncode != 0 and "is inside dicom_root" in proc.stderr
    assert not (SAMPLES / "out").exists()


def test_dcm2niix_path_missing_or_broken_is_one_clear_error(tmp_path, table):
    proc = run_workflow(tmp_path, config(tmp_path, dcm2niix_path=str(tmp_path / "nope")), check=False)
    assert proc.returncode != 0 and "is not an executable file" in proc.stderr
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho cannot load libsomething >&2\nexit 127\n")
    broken.chmod(0o755)
    proc = run_workflow(tmp_path, config(tmp_path, dcm2niix_path=str(broken)), check=False)
    assert proc.returncode != 0 and "printed no version" in proc.stderr
    assert not (tmp_path / "out" / "code").exists()  # before any job ran


def test_two_runs_on_one_output_do_not_overlap(tmp_path, table):
    """A second run on the same output (from another working directory, so no
    shared Snakemake lock) refuses at once while the first holds the output."""
    import time

    (tmp_path / "out/.bidsport").mkdir(parents=True)
    holder = subprocess.Popen(
        ["python3", "-c", f"import sys, time; sys.path.insert(0, {str(REPO / 'scripts')!r}); "
         f"from bidsport.safety import lock_output; from pathlib import Path; "
         f"lock_output(Path({str(tmp_path / 'out')!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        other = tmp_path / "elsewhere"
        other.mkdir()
        (other / "series.tsv").write_text(table.read_text())
        cfg = write_config(other, series_table="series.tsv", dicom_root=str(SAMPLES), output_dir=str(tmp_path / "out"))
        t0 = time.monotonic()
        proc = run_workflow(other, cfg, check=False)
        assert proc.returncode != 0 and "another bidsport run is exporting to" in proc.stderr
        assert time.monotonic() - t0 < 30 and not (tmp_path / "out" / "code").exists()
    finally:
        holder.kill()
        holder.wait()
    run_workflow(tmp_path, config(tmp_path))  # the lock is free again once the holder is gone
