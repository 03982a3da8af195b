"""The real scanner series (helpers.SAMPLES: $BIDSPORT_SAMPLES or ../shared/dicom-samples),
exported end to end.

Siemens (classic, mosaic, enhanced XA10/XA30), GE, Philips (classic, enhanced), UIH;
the series table is tests/data/samples/series_table.tsv, the dcm2niix outputs each
series must yield are in expected_outputs.json (made by make_table.py --outputs).
"""

import hashlib
import json
import shutil

import pytest

from helpers import REPO, SAMPLES, SAMPLES_TABLE as TABLE, dataset_files, needs_samples, read_report, run_workflow, validator_issues, write_config

pytestmark = [pytest.mark.slow, needs_samples]
EXPECTED = json.loads((REPO / "tests" / "data" / "samples" / "expected_outputs.json").read_text())


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    work = tmp_path_factory.mktemp("samples")
    shutil.copy(TABLE, work / "series.tsv")
    before = tree_digest(SAMPLES)
    cfg = write_config(work, series_table="series.tsv", dicom_root=str(SAMPLES), output_dir="bids", dataset_name="samples")
    proc = run_workflow(work, cfg)
    validate = run_workflow(work, cfg, "validate", check=False)
    return {"work": work, "out": work / "bids", "proc": proc, "validate": validate, "sources_before": before}


def test_validator_reports_zero_errors(export):
    issues = validator_issues(export["out"])
    assert issues["errors"] == [], json.dumps(issues["errors"], indent=1)[:3000]
    assert export["validate"].returncode == 0, export["validate"].stderr[-2000:]
    assert (export["out"] / "code" / "bidsport" / "validation.json").exists()


def test_every_admitted_series_is_exported_with_every_output(export):
    report = {r["series_instance_uid"]: r for r in read_report(export["out"])}
    for row in report.values():
        if row["directory_type"] == "localizer":
            assert row["status"] == "excluded"  # not in the default include_intents
            continue
        assert row["status"] == "exported", row
        images = [f for f in row["files"].split(", ") if f.endswith(".nii.gz")]
        expected = EXPECTED[row["series_instance_uid"]]
        assert len(images) == len(expected["outputs"]), (row["series_description"], images)
        assert len(set(images)) == len(images)
        if any(o["bval"] for o in expected["outputs"]):
            assert any(f.endswith(".bval") for f in row["files"].split(", "))
    assert len(report) == len(EXPECTED)


def test_excluded_intents_are_absent(export):
    files = dataset_files(export["out"])
    assert not any("localizer" in f or "/misc/" in f for f in files)


def test_conversions_match_the_upstream_reference_voxels(export):
    nib = pytest.importorskip("nibabel")
    checked = 0
    report = {r["series_instance_uid"]: r for r in read_report(export["out"])}
    for uid, expected in EXPECTED.items():
        for output in expected["outputs"]:
            ref = (output.get("ref_check") or {}).get("ref")
            if not ref or report[uid]["status"] != "exported":
                continue
            ref_img = nib.load(SAMPLES / ref)
            ours = [f for f in report[uid]["files"].split(", ") if f.endswith(".nii.gz")]
            shapes = {f: nib.load(export["out"] / f).shape for f in ours}
            match = [f for f, s in shapes.items() if s == ref_img.shape]
            assert match, (ref, shapes)
            # One of our outputs of that shape (echoes share one) holds the reference voxels.
            reference = ref_img.get_fdata()
            assert any((nib.load(export["out"] / f).get_fdata() == reference).all() for f in match), (ref, match)
            checked += 1
    assert checked >= 10


def test_fieldmaps_are_complete_and_paired(export):
    files = dataset_files(export["out"])
    fmap = sorted(f.rsplit("/", 1)[1] for f in files if "/fmap/" in f and f.endswith(".nii.gz"))
    assert "sub-XA30_ses-20220711_magnitude1.nii.gz" in fmap
    assert "sub-XA30_ses-20220711_magnitude2.nii.gz" in fmap
    assert "sub-XA30_ses-20220711_phasediff.nii.gz" in fmap
    assert {"sub-Ph1301_ses-baseline_phase1.nii.gz", "sub-Ph1301_ses-baseline_phase2.nii.gz"} <= set(fmap)
    assert "sub-ENH_ses-20180526_fieldmap.nii.gz" in fmap
    phasediff = json.loads((export["out"] / "sub-XA30/ses-20220711/fmap/sub-XA30_ses-20220711_phasediff.json").read_text())
    assert phasediff["EchoTime1"] < phasediff["EchoTime2"]


def test_sources_are_untouched(export):
    assert tree_digest(SAMPLES) == export["sources_before"]


def test_noop_rerun_runs_nothing(export):
    proc = run_workflow(export["work"], export["work"] / "config.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
