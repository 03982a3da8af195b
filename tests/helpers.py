"""Shared helpers for tests that run the real workflow and the real validator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "dicom-samples"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


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
    """Every file of the export, relative, without bidsport's internal state."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".bidsport" not in p.relative_to(root).parts
    }


def read_report(output_dir: Path) -> list[dict]:
    import csv

    with open(output_dir / "code" / "bidsport" / "export_report.tsv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
