"""Shared helpers for tests that run the real workflow and the real validator."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# The one place that locates the real scanner samples (read-only): $BIDSPORT_SAMPLES,
# else ../shared/dicom-samples beside the repository. A clone alone has none; tests
# that need them skip with this reason and their behaviour is also covered on DICOMs
# the tests generate (see `source` in conftest.py).
SAMPLES = Path(os.environ.get("BIDSPORT_SAMPLES") or REPO.parent / "shared" / "dicom-samples")
SAMPLES_TABLE = REPO / "tests" / "data" / "samples" / "series_table.tsv"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(),
    reason=f"real scanner samples not found at {SAMPLES}; set BIDSPORT_SAMPLES or put ../shared beside the repo",
)


def write_config(workdir: Path, **values) -> Path:
    """A config file in ``workdir`` (relative paths resolve against it)."""
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def run_workflow(workdir: Path, config: Path, *args: str, cores: int = 2, check: bool = True, env: dict | None = None, timeout: float = 900):
    """``snakemake -s Snakefile -d workdir --configfile config --cores N args``."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(config), "--cores", str(cores), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def validator_issues(dataset: Path) -> dict:
    """Run the official BIDS validator; return {"errors": [...], "warnings": [...]}."""
    binary = Path(sys.executable).parent / "bids-validator-deno"
    proc = subprocess.run([str(binary), str(dataset), "--format", "json"], capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout)
    issues = result["issues"]["issues"]
    return {
        "errors": [i for i in issues if i["severity"] == "error"],
        "warnings": [i for i in issues if i["severity"] == "warning"],
    }


def dataset_files(root: Path) -> set[str]:
    """Every file of the export, relative, without bidsport's internal state.

    Walks with os.walk (which skips folders that vanish meanwhile: tests poll a
    running export) and never enters ``.bidsport`` (scratch comes and goes there)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(folder) == Path(root) and d == ".bidsport")]
        for name in files:
            path = Path(folder) / name
            if path.is_file():
                found.add(str(path.relative_to(root)))
    return found


def snapshot(out: Path) -> dict[str, int]:
    """Every dataset file's mtime (ns): what a re-run touched."""
    return {rel: (out / rel).stat().st_mtime_ns for rel in dataset_files(out)}


def jobs_started(text: str) -> dict[str, int]:
    """Jobs per rule that a Snakemake run (or dry run) printed as started."""
    counts = {}
    for m in re.finditer(r"^(?:local)?(?:rule|checkpoint) (\w+):", text, re.M):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def read_report(output_dir: Path) -> list[dict]:
    with open(output_dir / "code" / "bidsport" / "export_report.tsv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def read_rows(table: Path) -> list[dict]:
    with open(table, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass(frozen=True)
class DataSource:
    """One scanner session for the end-to-end tests: the real Siemens XA30 sample
    session, or a synthetic session made like it (same series numbers, so a test
    selects series the same way on both)."""

    name: str
    dicom_root: Path
    rows: tuple[dict, ...]  # its series-table rows (dicom_path relative to dicom_root)
    subject_code: str
    prefix: str  # BIDS name prefix of the session, e.g. sub-XA30_ses-20220711

    @property
    def session_dir(self) -> str:
        """The session's folder in a BIDS tree (``sub-X/ses-Y``)."""
        subject, session = self.prefix.split("_")
        return f"{subject}/{session}"

    def write_table(self, path: Path, series_numbers: set[str] | None = None) -> Path:
        """The series table for this session (only ``series_numbers`` if given)."""
        rows = [r for r in self.rows if series_numbers is None or r["series_number"] in series_numbers]
        return write_rows(path, rows)

    def folder(self, series_number: str) -> Path:
        """The DICOM folder of one series."""
        row = next(r for r in self.rows if r["series_number"] == series_number)
        return self.dicom_root / row["dicom_path"]


def sample_session() -> DataSource:
    rows = [r for r in read_rows(SAMPLES_TABLE) if r["subject_code"] == "XA30"]
    return DataSource("samples", SAMPLES, tuple(rows), "XA30", "sub-XA30_ses-20220711")


# The synthetic session: XA30's series numbers and datatypes (T1w, BOLD, a
# two-echo magnitude + phase-difference fieldmap, DWI and its ADC), small images.
SYNTHETIC_SERIES = [
    ("5", "t1w", {"directory_type": "anat", "base": "T1w", "technique": "MPRAGE"}),
    ("7", "bold", {"directory_type": "func", "task": "rest", "technique": "EPI"}),
    ("8", "fmap_magnitude", {"directory_type": "fmap", "construct_csv": "Magnitude", "technique": "GRE"}),
    ("9", "fmap_phasediff", {"directory_type": "fmap", "construct_csv": "Phase", "technique": "GRE"}),
    ("17", "dwi", {"directory_type": "dwi", "base": "DWI", "technique": "EPI", "phase_encoding_direction": "AP"}),
    ("19", "adc", {"directory_type": "dwi", "base": "DWI", "construct_csv": "ADC", "provenance": "DTIRecon"}),
]


def synthetic_session(root: Path) -> DataSource:
    """Write the synthetic session's DICOMs (pydicom, deterministic) under ``root``."""
    from bidsport.synthdicom import make_uid, spec_for, write_series

    study_uid = make_uid("tests", "SYN-01")
    rows = []
    for number, kind, columns in SYNTHETIC_SERIES:
        series_time = f"12{int(number):02d}00"
        spec = spec_for(kind, series_number=int(number), series_time=series_time)
        folder = f"{number}_{spec.description}"
        written = write_series(root / folder, spec, patient_id="SYN-01", study_uid=study_uid, study_date="20240115", seed=int(number))
        columns = {"base": "", "modifier_csv": "", "construct_csv": "", "technique": "", "provenance": "", "task": "", "phase_encoding_direction": "", **columns}
        rows.append(
            {
                "subject_code": "SYN-01",
                "session_id": "",
                "study_date": "2024-01-15",
                "series_instance_uid": written.series_instance_uid,
                "series_number": number,
                "series_time": series_time,
                "series_description": spec.description,
                "dicom_path": folder,
                **columns,
            }
        )
    return DataSource("synthetic", root, tuple(rows), "SYN-01", "sub-SYN01_ses-20240115")


@contextmanager
def small_filesystem(folder: Path, size: int):
    """A tmpfs of ``size`` bytes mounted on ``folder`` for the block (skips, with the
    reason, where mounting is not allowed); ``mount -o remount`` grows it."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem (tmpfs) for this test: {proc.stderr.strip() or proc.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
