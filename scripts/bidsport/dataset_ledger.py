"""What the dataset step wrote, with each file's (size, mtime).

A file deleted or changed since makes the next run re-run the step
(``workflow_support.force_if_changed``), so every dataset-level file comes back,
the ones no rule can declare (per-session scans.tsv, sessions.tsv) and the
fieldmap links it writes into sidecars included. Declared outputs of the rule
(Snakemake re-runs the step when one is missing and sets their mtimes itself) are
not in the ledger. The rest is written only sometimes."""

from __future__ import annotations

import json
from pathlib import Path

from .bids_files import README_NAMES, is_raw_image, sidecar_of
from .fsutil import write_if_changed

DECLARED_OUTPUTS = ("dataset_description.json", "participants.tsv", "participants.json", ".bidsignore")
UNDECLARED_TOP_LEVEL = ("sessions.json",)


def _sig(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def owned_files(output_dir: Path, series_files: list[str]) -> list[str]:
    """Dataset-level files the step owns now, and the sidecars whose fieldmap keys it writes."""
    found = [n for n in UNDECLARED_TOP_LEVEL if (output_dir / n).is_file()]
    for pattern in ("sub-*/sub-*_sessions.tsv", "sub-*/sub-*_scans.tsv", "sub-*/ses-*/sub-*_scans.tsv"):
        found += sorted(str(p.relative_to(output_dir)) for p in output_dir.glob(pattern))
    found += [sidecar_of(f) for f in series_files if is_raw_image(f)]
    return found


def write_ledger(ledger: Path, output_dir: Path, series_files: list[str]) -> None:
    files = {rel: _sig(output_dir / rel) for rel in owned_files(output_dir, series_files)} if series_files else {}
    files = {rel: sig for rel, sig in files.items() if sig}
    data = {"files": files, "readme": any((output_dir / n).exists() for n in README_NAMES) and bool(series_files)}
    write_if_changed(ledger, json.dumps(data, indent=0) + "\n")


def ledger_is_current(ledger: Path, output_dir: Path) -> bool:
    """Every file the dataset step wrote is still there, as it wrote it."""
    try:
        data = json.loads(ledger.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("readme") and not any((output_dir / n).exists() for n in README_NAMES):
        return False
    return all(_sig(output_dir / rel) == sig for rel, sig in data.get("files", {}).items())
