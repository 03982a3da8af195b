"""Refusals that stop a run while Snakemake parses the workflow (common.smk), tested
in-process: the functions common.smk calls, with the configs that trip them. One
end-to-end check that such a message reaches the terminal and nothing is written is
``test_export_page.py::test_output_inside_sources_is_refused``; the database
refusals are in ``test_nils_db.py`` (they need a server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bidsport import settings, workflow_support
from bidsport.dcm2niix import Dcm2niixError
from bidsport.nils_db import NilsDatabaseError
from bidsport.safety import SafetyError, check_output_location, lock_output

URL = "postgresql://reader@dbhost:5432/neurotoolkit_metadata"


def test_series_table_and_database_together_is_an_error():
    with pytest.raises(settings.ConfigError, match="give either series_table or nils_database_url, not both"):
        settings.check_source({"series_table": "series.tsv", "nils_database_url": URL, "nils_cohort": "study"})


def test_no_source_is_an_error():
    with pytest.raises(settings.ConfigError, match="needs series_table .* or nils_database_url and nils_cohort"):
        settings.check_source({"output_dir": "out"})


def test_database_without_a_cohort_or_with_table_keys_is_an_error():
    with pytest.raises(settings.ConfigError, match="nils_database_url needs nils_cohort"):
        settings.check_source({"nils_database_url": URL})
    with pytest.raises(settings.ConfigError, match="instances_table: read from the NILS database"):
        settings.check_source({"nils_database_url": URL, "nils_cohort": "study", "instances_table": "i.tsv"})


def test_a_password_in_the_url_is_refused_and_masked():
    url = URL.replace("reader@", "reader:s3cret@")
    with pytest.raises(NilsDatabaseError, match="contains a password: remove it and give it in PGPASSWORD or ~/.pgpass") as info:
        settings.check_source({"nils_database_url": url, "nils_cohort": "study"})
    assert "s3cret" not in str(info.value) and "reader:***@dbhost" in str(info.value)


def test_output_inside_sources_is_refused(tmp_path):
    with pytest.raises(SafetyError, match="is inside dicom_root .*: bidsport never writes under the sources"):
        check_output_location(tmp_path / "dicom" / "out", tmp_path / "dicom")
    check_output_location(tmp_path / "out", tmp_path / "dicom")  # beside it: fine


def test_dcm2niix_path_missing_or_broken_is_one_clear_error(tmp_path):
    cfg = settings.resolve_paths({"output_mode": "nii.gz", "dcm2niix_path": str(tmp_path / "nope")}, tmp_path)
    with pytest.raises(Dcm2niixError, match="is not an executable file"):
        workflow_support.check_dcm2niix(cfg)
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho cannot load libsomething >&2\nexit 127\n")
    broken.chmod(0o755)
    with pytest.raises(Dcm2niixError, match=r"printed no version \(exit 127\): .*cannot load libsomething"):
        workflow_support.check_dcm2niix({**cfg, "dcm2niix_path": str(broken)})
    assert workflow_support.check_dcm2niix({**cfg, "_formats": ["dcm"]}) == (None, "")  # DICOM only: not needed


def test_a_second_run_on_one_output_is_refused_at_once(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from bidsport.safety import lock_output; "
         f"lock_output(Path({str(out)!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(Path(settings.__file__).parents[1])},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SafetyError, match=f"another bidsport run is exporting to {out} \\(pid {holder.pid} on "):
            lock_output(out)
    finally:
        holder.kill()
        holder.wait()
    assert lock_output(out) == out / ".bidsport" / "lock"  # free again once the holder is gone


def test_unwritable_output_dir(tmp_path):
    (tmp_path / "out").write_text("a file where the output folder should be")
    with pytest.raises(SafetyError, match="cannot write to output_dir .*out: Not a directory"):
        lock_output(tmp_path / "out")
