"""The dataset step, run once every series job has finished: the order in which
the report (``report``), the fieldmap sidecar edits (``fieldmap_sidecars``), the
dataset's metadata (``dataset_metadata``) and the step's ledger
(``dataset_ledger``) are made."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd

from . import dataset_ledger, dataset_metadata, fieldmap_sidecars, formats, report, tsv
from .install import STATE_DIR


def finalize(
    *,
    output_dir: Path,
    plan_tsv: Path,
    excluded_tsv: Path,
    manifests: list[Path],
    report_tsv: Path,
    cfg: dict,
    dcm2niix_version: str,
    subjects: pd.DataFrame | None,
    ages: dict[tuple[str, str], str] | None = None,
    state_ledger: Path | None = None,
) -> dict:
    """Write every dataset-level file; return summary counts.

    ``ages``: (series_instance_uid, stack_index) -> the subject's age at that study
    (the series table's ``age_at_study``); participants.tsv gets each subject's age
    at its first exported session.
    """
    plan = tsv.read(plan_tsv)
    excluded = tsv.read(excluded_tsv)
    by_key, incomplete = report.merge_manifests(manifests)  # incomplete: files whose sidecar lacks required keys
    bids_tree = cfg.get("layout", "bids") == "bids" and formats.wants_nifti(cfg.get("_formats", []))
    if bids_tree:  # a fieldmap the validator would reject is exported, listed in .bidsignore, and said so
        incomplete |= fieldmap_sidecars.complete_fieldmaps(output_dir, by_key)
    report_rows, counts = report.build(plan, by_key, excluded, output_dir, output_dir / STATE_DIR / "ledger")
    dataset_files = report.series_files(plan, by_key)

    # Every series job of this run has finished: scratch left by killed jobs can go.
    scratch = output_dir / STATE_DIR / "tmp"
    if scratch.exists():
        for leftover in scratch.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
    if bids_tree:
        # The optional tables are read and checked first: a bad one fails the step before any file changes.
        links = fieldmap_sidecars.links_table(cfg, plan, excluded)
        sessions = dataset_metadata.sessions_table(cfg, plan)
        fieldmap_sidecars.link_fieldmaps(output_dir, plan, by_key, cfg, links, incomplete)
        # Only subjects and sessions with data in the dataset are listed.
        exported = [r for r in plan if by_key.get(r["key"], {}).get("status") in ("exported", "skipped")]
        dataset_metadata.write_sessions(output_dir, exported, sessions, by_key)
        dataset_metadata.write_dataset_description(output_dir, cfg, dcm2niix_version)
        dataset_metadata.write_participants(output_dir, exported, subjects, dataset_metadata.first_session_ages(exported, ages))
        dataset_metadata.write_scans(output_dir, plan, by_key, incomplete)
        dataset_metadata.write_bidsignore(output_dir, dataset_files, incomplete)
        dataset_metadata.write_readme(output_dir, cfg)
    report.write_report(report_tsv, report_rows)
    if state_ledger is not None:  # what this step wrote (.bidsport/dataset_files.json)
        dataset_ledger.write_ledger(state_ledger, output_dir, dataset_files if bids_tree else [])
    return counts


def summary_text(counts: dict, report_tsv: Path) -> str:
    parts = [f"{k} {v}" for k, v in counts.items() if v]
    return f"bidsport: {', '.join(parts) or 'nothing to do'} (report: {report_tsv})"
