"""The rule bodies called in-process, in the order Snakemake calls them, on the
synthetic session: plan → one job per series (NIfTI and DICOM) → dataset files →
QC → validator. Real dcm2niix, real validator, tiny images: seconds, so the quick
loop (`-m "not slow"`) covers the modules the workflow runs. The same steps under
Snakemake are tested end to end by the slow tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from snakemake.utils import validate as snakemake_validate

from bidsport import export_series, jobs, settings, validate, workflow_support
from helpers import REPO, dataset_files, read_report


@pytest.fixture
def job_env(monkeypatch):
    """The environment common.smk gives the jobs, undone after the test."""
    for name in ("BIDSPORT_DCM2NIIX", "BIDSPORT_COPY_WORKERS", "BIDSPORT_COPY_METHOD", "BIDSPORT_TIMEOUT"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores the variable
        monkeypatch.delenv(name)


def test_plan_series_dataset_qc_and_validate_in_process(tmp_path, synthetic, job_env):
    table = synthetic.write_table(tmp_path / "series.tsv")
    config = {"series_table": str(table), "dicom_root": str(synthetic.dicom_root), "output_dir": str(tmp_path / "out"),
              "output_mode": ["nii.gz", "dcm"], "qc_snapshots": True}  # fmt: skip
    snakemake_validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # fills the defaults
    settings.check_source(config)
    cfg = settings.resolve_paths(config)
    binary, version = workflow_support.check_dcm2niix(cfg)
    workflow_support.export_job_environment(cfg, binary)
    out = Path(cfg["output_dir"])
    state, code = out / ".bidsport", out / "code" / "bidsport"
    (state / "logs" / "series").mkdir(parents=True)
    code.mkdir(parents=True)

    jobs.plan_job(settings.job_settings(cfg, "plan"), str(code / "plan.tsv"), str(state / "excluded.tsv"), str(state / "logs" / "plan.log"))
    parts = workflow_support.read_plan_parts(code / "plan.tsv")
    assert sorted(part for _, part in parts) == ["dicom"] * len(synthetic.rows) + ["nifti"] * len(synthetic.rows)

    for key, part in parts:
        manifest = export_series.run_job(state / "specs" / f"{key}.json", part, state / "done" / f"{key}.{part}.json",
                                         out, state / "logs" / "series" / f"{key}.{part}.log")  # fmt: skip
        assert manifest["status"] == "exported", manifest
    manifests = workflow_support.manifest_paths(code / "plan.tsv", state)
    assert len(manifests) == len(parts) and all(Path(m).exists() for m in manifests)

    jobs.dataset_job(settings.job_settings(cfg, "dataset"), str(code / "plan.tsv"), str(state / "excluded.tsv"), manifests,
                     str(code / "export_report.tsv"), str(state / "dataset_files.json"), version,
                     str(state / "logs" / "dataset_files.log"))  # fmt: skip
    report = read_report(out)
    assert len(report) == len(synthetic.rows) and {r["status"] for r in report} == {"exported"}
    files = dataset_files(out)
    prefix, session = synthetic.prefix, synthetic.session_dir
    assert f"{session}/anat/{prefix}_T1w.nii.gz" in files
    assert any(f.startswith(f"sourcedata/{session}/anat/{prefix}_T1w/") for f in files)  # the DICOM copies
    assert {"dataset_description.json", "participants.tsv", ".bidsignore"} <= files
    sidecar = json.loads((out / f"{session}/fmap/{prefix}_phasediff.json").read_text())
    assert "IntendedFor" in sidecar and sidecar["EchoTime1"] < sidecar["EchoTime2"]  # the dataset step's edits

    subject, rows = next(iter(workflow_support.nifti_rows_by_subject(code / "plan.tsv").items()))
    qc = state / "qc" / f"sub-{subject}"
    jobs.qc_job(rows, str(out), cfg["dicom_root"], str(qc / "snapshots"), str(qc / "summary.html"), subject, str(state / "logs" / "qc.log"))
    images = {Path(f).name.removesuffix(".nii.gz") for f in files if f.endswith(".nii.gz")}
    assert {p.stem for p in (qc / "snapshots").glob("*.png")} == images and (qc / "summary.html").exists()

    assert validate.main([str(out), str(code / "validation.json"), str(state / "validation.ok")]) == 0
    assert (state / "validation.ok").exists()
    summary, failed = workflow_support.summary(code / "export_report.tsv")
    assert failed == 0 and f"exported {len(synthetic.rows)}" in summary
