"""The export page, item by item, on three series of one session (T1w and a
two-echo magnitude + phase-difference fieldmap) with real dcm2niix and the real
validator. Items that read the DICOM files themselves (copies, hardlinks) run on the
real Siemens XA30 samples and on a synthetic session (``source`` in conftest.py);
the others, where the vendor's data does not matter, on the synthetic one only."""

from __future__ import annotations

import gzip

import pytest

from helpers import dataset_files, read_report, run_workflow, validator_issues, write_config

pytestmark = pytest.mark.slow
SERIES = {"5", "8", "9"}  # series numbers: T1w, fieldmap magnitude, fieldmap phase


def write_table(tmp_path, source):
    return source.write_table(tmp_path / "series.tsv", SERIES)


@pytest.fixture
def table(tmp_path, source):
    return write_table(tmp_path, source)


def config(tmp_path, source, **extra):
    return write_config(tmp_path, **{"series_table": "series.tsv", "dicom_root": str(source.dicom_root), "output_dir": "out", **extra})


def test_no_series_to_export_stops_before_writing(tmp_path, synthetic):
    source = synthetic
    write_table(tmp_path, source)
    proc = run_workflow(tmp_path, config(tmp_path, source, include_intents=["func"]), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No series to export" in text and "include_intents = ['func'] removed 3 row(s)" in text
    assert "intents in the table: anat (1), fmap (2)" in text
    written = dataset_files(tmp_path / "out") if (tmp_path / "out").exists() else set()
    assert written == set()  # only bidsport's own log folder, no dataset file


def test_flat_layout(tmp_path, synthetic):
    source = synthetic
    write_table(tmp_path, source)
    run_workflow(tmp_path, config(tmp_path, source, layout="flat"))
    files = {f for f in dataset_files(tmp_path / "out") if not f.startswith("code/")}
    assert f"{source.prefix}_T1w.nii.gz" in files
    assert {f"{source.prefix}_magnitude1.nii.gz", f"{source.prefix}_magnitude2.nii.gz", f"{source.prefix}_phasediff.nii.gz"} <= files
    assert all("/" not in f for f in files)


def test_nifti_and_dicom_together_mirror_names_under_sourcedata(tmp_path, source, table):
    run_workflow(tmp_path, config(tmp_path, source, output_mode=["nii.gz", "dcm"]))
    out = tmp_path / "out"
    copies = (out / f"sourcedata/{source.session_dir}/anat/{source.prefix}_T1w").iterdir()
    originals = source.folder("5").iterdir()
    assert sorted(p.read_bytes() for p in copies) == sorted(p.read_bytes() for p in originals)  # every file, unchanged
    assert (out / f"{source.session_dir}/anat/{source.prefix}_T1w.nii.gz").exists()
    assert validator_issues(out)["errors"] == []


def test_dicom_only_is_an_organised_tree(tmp_path, source, table):
    run_workflow(tmp_path, config(tmp_path, source, output_mode="dcm", dcm_copy_method="hardlink"))
    out = tmp_path / "out"
    files = dataset_files(out)
    assert not any(f.endswith(".nii.gz") for f in files)
    fmap = out / f"{source.session_dir}/fmap/{source.prefix}_magnitude"
    sources = {p.stat().st_ino for p in source.folder("8").iterdir()}
    assert {p.stat().st_ino for p in fmap.iterdir()} == sources  # every file, hardlinked, not copied
    assert len(list(fmap.iterdir())) == len(sources) >= 2


def test_alternative_identifier_with_fallback_in_report(tmp_path, synthetic):
    source = synthetic
    write_table(tmp_path, source)
    ids = tmp_path / "ids.tsv"
    ids.write_text("subject_code\tid_type\tother_identifier\nOTHER\tSTUDY_ID\tS-9\n")
    run_workflow(tmp_path, config(tmp_path, source, subject_identifiers_table="ids.tsv", subject_identifier_source="STUDY_ID"))
    report = read_report(tmp_path / "out")
    assert {r["subject_source"] for r in report} == {"subject_code (no STUDY_ID identifier)"}
    code = source.subject_code
    ids.write_text(f"subject_code\tid_type\tother_identifier\n{code}\tSTUDY_ID\tS-9\n{code}\t3\t77\n")
    run_workflow(tmp_path, config(tmp_path, source, subject_identifiers_table="ids.tsv", subject_identifier_source=3, output_dir="out3"))
    session = source.prefix.split("_")[1]
    assert (tmp_path / f"out3/sub-77/{session}/anat/sub-77_{session}_T1w.nii.gz").exists()


def test_overwrite_modes(tmp_path, synthetic):
    source = synthetic
    write_table(tmp_path, source)
    out = tmp_path / "out"
    anat = out / f"{source.session_dir}/anat"
    t1w = anat / f"{source.prefix}_T1w.nii.gz"
    t1w.parent.mkdir(parents=True)
    t1w.write_bytes(b"not ours")  # a file that was there before bidsport
    run_workflow(tmp_path, config(tmp_path, source))
    assert t1w.read_bytes() == b"not ours"  # skip (default) leaves it alone ...
    row = next(r for r in read_report(out) if "T1w" in r["files"])
    assert "kept 1 existing file(s)" in row["warnings"]  # ... and says so
    run_workflow(tmp_path, config(tmp_path, source, overwrite="overwrite"))
    assert gzip.decompress(t1w.read_bytes())[:4] != b"not "  # replaced in place

    (out / "notes.docx").write_text("precious")
    proc = run_workflow(tmp_path, config(tmp_path, source, overwrite="clean"), check=False)
    assert proc.returncode != 0 and "clean refused, nothing was deleted" in proc.stdout + proc.stderr
    assert (out / "notes.docx").exists() and t1w.exists()
    (out / "notes.docx").unlink()
    stray = anat / "stray.txt"
    stray.write_text("x")
    run_workflow(tmp_path, config(tmp_path, source, overwrite="clean"))
    assert not stray.exists() and t1w.exists()


@pytest.mark.parametrize("target", ["home", "root", "contains_sources"])
def test_clean_refuses_dangerous_targets(tmp_path, target):
    from bidsport.safety import SafetyError, clean_output
    from pathlib import Path

    paths = {"home": Path.home(), "root": Path("/"), "contains_sources": tmp_path}
    with pytest.raises(SafetyError, match="nothing was deleted"):
        clean_output(paths[target], tmp_path / "dicom")


def test_output_inside_sources_is_refused(tmp_path, synthetic):
    """The end-to-end check of a parse-time refusal (the others are tested in-process in
    test_refusals.py): Snakemake stops with bidsport's message, having written nothing."""
    source = synthetic
    write_table(tmp_path, source)
    inside = source.dicom_root / "out"
    proc = run_workflow(tmp_path, write_config(tmp_path, series_table="series.tsv", dicom_root=str(source.dicom_root), output_dir=str(inside)), check=False)
    assert proc.returncode != 0
    assert f"output_dir {inside} is inside dicom_root {source.dicom_root}: bidsport never writes under the sources" in proc.stderr
    assert not inside.exists()
