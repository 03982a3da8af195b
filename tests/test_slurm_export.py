"""The cluster path for real: one session's export through profiles/slurm on a
local single-node SLURM (started by the test), compared with a local run; on the
real XA30 sample session and on a synthetic one (see `source` in conftest.py)."""

from __future__ import annotations

import gzip
import hashlib
import os
import time

import pytest

from helpers import REPO, dataset_files, run_workflow, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
# One full session: samples T1w, BOLD, fieldmap pair, DWI + ADC/FA, ASL (8 series);
# synthetic T1w, BOLD, fieldmap pair, DWI + ADC (6 series).


def nifti_digests(root):
    """File set + checksums of the NIfTI voxels (gzip headers hold a timestamp)."""
    out = {}
    for rel in dataset_files(root):
        if rel.endswith(".nii.gz"):
            out[rel] = hashlib.sha256(gzip.decompress((root / rel).read_bytes())).hexdigest()
    return out


def cluster_run(slurm, work, cfg, *extra):
    mark = slurm.mark()
    t0 = time.monotonic()
    run_workflow(
        work, cfg, "--profile", str(REPO / "profiles/slurm"), *slurm.snakemake_args(), *extra,
        env={**os.environ, **slurm.env}, timeout=600,
    )  # fmt: skip
    return slurm.count_submitted(since=mark), time.monotonic() - t0


def test_slurm_export_equals_local_export(slurm, source, tmp_path, request):
    source.write_table(tmp_path / "series.tsv")
    n_series = len(source.rows)
    dicom_root = str(source.dicom_root)
    local_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="local")
    run_workflow(tmp_path, local_cfg)
    local = nifti_digests(tmp_path / "local")
    assert len(local) >= n_series  # every series gave at least one image

    grouped_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="grouped")
    grouped_jobs, grouped_s = cluster_run(slurm, tmp_path, grouped_cfg)
    assert nifti_digests(tmp_path / "grouped") == local
    assert dataset_files(tmp_path / "grouped") - {"code/bidsport/validation.json"} == dataset_files(tmp_path / "local")

    # The checkpoint and dataset-level rules are local; only series jobs go to SLURM.
    assert grouped_jobs == 1
    if request.node.callspec.params["source"] == "samples":
        return  # one SLURM job per series: checked on the synthetic session (grouping does not depend on the data)
    single_cfg = write_config(tmp_path, series_table="series.tsv", dicom_root=dicom_root, output_dir="single")
    single_jobs, single_s = cluster_run(slurm, tmp_path, single_cfg, "--group-components", "series=1")
    assert nifti_digests(tmp_path / "single") == local
    print(
        f"\nSLURM jobs for {n_series} series: {grouped_jobs} with group-components series=50 "
        f"({grouped_s:.0f} s), {single_jobs} with one series per job ({single_s:.0f} s)"
    )
    assert single_jobs == n_series
