"""The dataset's own metadata, from the plan and the merged manifests (the final
names): ``dataset_description.json``, ``participants.tsv``/``.json``, per-subject
``sessions.tsv`` and ``sessions.json``, per-session ``scans.tsv``, ``README`` and
``.bidsignore``. Each file is rewritten only when its content changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd

from . import __version__, bids_schema, fieldmaps, table, tsv
from .acquisition import acquisition
from .bids_files import README_NAMES, bidsignore_lines, is_raw_image
from .install import inside
from .fsutil import write_if_changed

AGE_CAP_TEXT = "89+"
PARTICIPANT_DESCRIPTIONS = {
    "participant_id": "Unique participant label (sub-<label>), derived from the configured subject identifier.",
    "age": "Age of the participant.",
    "sex": "Sex of the participant as reported by the site.",
    "group": "Study group of the participant.",
    "handedness": "Handedness of the participant.",
}
SESSION_DESCRIPTIONS = {
    "session_id": "Session label (ses-<label>), from the series table's session_id (else its study_date).",
    "acq_time": "Acquisition time of the session's first exported series.",
    "age": "Age of the participant at this session.",
    "scanner": "Scanner the session was acquired on.",
    "visit": "Study visit of this session.",
}


def write_dataset_description(output_dir: Path, cfg: dict, dcm2niix_version: str) -> None:
    path = output_dir / "dataset_description.json"
    desc = dict(cfg.get("dataset_description") or {})  # Authors, License … from the config
    desc.update(
        {
            "Name": cfg.get("dataset_name") or "bidsport export",
            "BIDSVersion": bids_schema.bids_version(),
            "DatasetType": "raw",
            "GeneratedBy": [
                {"Name": "bidsport", "Version": __version__, "Description": "Export of classified DICOM series"},
                {"Name": "dcm2niix", "Version": dcm2niix_version},
            ],
        }
    )
    write_if_changed(path, json.dumps(desc, indent=2) + "\n")


def first_session_ages(rows: list[dict], ages: dict[tuple[str, str], str] | None) -> dict[str, str]:
    """Subject label -> age at its first exported session (earliest study date, then time)."""
    if not ages:
        return {}
    first: dict[str, tuple] = {}
    for row in rows:
        age = ages.get((row["series_instance_uid"], row.get("stack_index") or "0"), "")
        if not age:
            continue
        order = (row.get("study_date") or "9999", row.get("series_time") or "", age)
        if row["subject"] not in first or order < first[row["subject"]]:
            first[row["subject"]] = order
    return {subject: order[2] for subject, order in first.items()}


def write_participants(output_dir: Path, plan: list[dict], subjects: pd.DataFrame | None, ages: dict[str, str] | None = None) -> None:
    labels: dict[str, str] = {}
    for row in plan:
        labels.setdefault(row["subject"], row["subject_code"])
    extra_cols: list[str] = []
    extra: dict[str, dict] = {}
    if subjects is not None:
        extra_cols = [c for c in subjects.columns if c not in ("subject_code", "_line")]
        extra = {r["subject_code"]: r for r in subjects.to_dict("records")}
    if ages and "age" not in extra_cols:  # from the series table's age_at_study
        extra_cols.append("age")
        for label, age in ages.items():
            extra.setdefault(labels[label], {})["age"] = age
    rows = []
    for label in sorted(labels):
        info = extra.get(labels[label], {})
        rows.append({"participant_id": f"sub-{label}", **{c: (info.get(c) or "n/a") for c in extra_cols}})
    tsv.write(output_dir / "participants.tsv", rows, ["participant_id", *extra_cols])
    sidecar = {c: {"Description": PARTICIPANT_DESCRIPTIONS.get(c, f"{c}, as given in the subjects table.")} for c in ["participant_id", *extra_cols]}
    if "age" in sidecar:
        sidecar["age"]["Units"] = "year"
    if ages and "age" in sidecar:
        sidecar["age"]["Description"] = f"Age in whole years at the participant's first exported session (from the birth and study dates; {AGE_CAP_TEXT} for 89 and older)."
    if "sex" in sidecar and extra_cols and all(str(r.get("sex", "n/a")) in ("M", "F", "O", "n/a") for r in rows):
        sidecar["sex"]["Levels"] = {"M": "male", "F": "female", "O": "other"}
    write_if_changed(output_dir / "participants.json", json.dumps(sidecar, indent=2) + "\n")


def write_scans(output_dir: Path, plan: list[dict], by_key: dict, incomplete: set[str] = frozenset()) -> None:
    """One ``scans.tsv`` per subject/session folder: every raw image, with acq_time."""
    per_folder: dict[str, list[dict]] = {}
    for row in plan:
        m = by_key.get(row["key"])
        if not m:
            continue
        for f in m.get("files", []):
            rel = f["path"]
            if not is_raw_image(rel, incomplete):
                continue
            parts = rel.split("/")
            depth = 2 if len(parts) > 1 and parts[1].startswith("ses-") else 1
            folder = "/".join(parts[:depth])
            per_folder.setdefault(folder, []).append(
                {"filename": "/".join(parts[depth:]), "acq_time": acquisition(row, m)[1]}
            )
    for folder, rows in per_folder.items():
        name = folder.replace("/", "_") + "_scans.tsv"
        rows.sort(key=lambda r: r["filename"])
        tsv.write(inside(output_dir, f"{folder}/{name}"), rows, ["filename", "acq_time"])


def sessions_table(cfg: dict, plan: list[dict]):
    """The sessions table (``sessions_table``); rows naming no exported session are a warning."""
    frame = table.load_sessions_table(fieldmaps.table_path(cfg, "sessions_table"))
    if frame is None:
        return None
    exported = {(row["subject_code"], row["session"]) for row in plan if row.get("session")}
    unknown = [r for r in frame.to_dict("records") if (r["subject_code"], r["_session"]) not in exported]
    if unknown:
        shown = ", ".join(f"line {r['_line']} ({r['subject_code']}, {r['session_id']})" for r in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        _warn(f"sessions_table {fieldmaps.table_path(cfg, 'sessions_table')}: {len(unknown)} row(s) match no exported "
              f"session and are ignored: {shown}{more}")  # fmt: skip
    return frame


def write_sessions(output_dir: Path, plan: list[dict], sessions: pd.DataFrame | None = None, by_key: dict | None = None) -> None:
    """``sub-X/sub-X_sessions.tsv``: session_id, the session's first acquisition and
    the sessions table's columns (n/a where it has none); ``sessions.json`` describes them."""
    extra_cols: list[str] = []
    extra: dict[tuple[str, str], dict] = {}
    if sessions is not None:
        extra_cols = [c for c in sessions.columns if not c.startswith("_") and c not in ("subject_code", "session_id")]
        extra = {(r["subject_code"], r["_session"]): r for r in sessions.to_dict("records")}
    code_of = {row["subject"]: row["subject_code"] for row in plan}
    first: dict[str, dict[str, tuple]] = {}
    for row in plan:
        if not row.get("session"):
            continue
        seconds, text = acquisition(row, (by_key or {}).get(row.get("key")))
        current = first.setdefault(row["subject"], {}).get(row["session"])
        if current is None or seconds < current[0]:
            first[row["subject"]][row["session"]] = (seconds, text)
    columns = ["session_id", "acq_time", *extra_cols]
    for subject, by_session in first.items():
        rows = []
        for s, v in sorted(by_session.items()):
            info = extra.get((code_of[subject], s), {})
            rows.append({"session_id": f"ses-{s}", "acq_time": v[1], **{c: (info.get(c) or "n/a") for c in extra_cols}})
        tsv.write(inside(output_dir, f"sub-{subject}/sub-{subject}_sessions.tsv"), rows, columns)
    if first:
        sidecar = {c: {"Description": SESSION_DESCRIPTIONS.get(c, f"{c}, as given in the sessions table.")} for c in columns}
        if "age" in sidecar:
            sidecar["age"]["Units"] = "year"
        write_if_changed(output_dir / "sessions.json", json.dumps(sidecar, indent=2) + "\n")


def write_bidsignore(output_dir: Path, files: list[str], incomplete: set[str] = frozenset()) -> None:
    """``.bidsignore``: every exported file the validator would not accept as raw data."""
    write_if_changed(output_dir / ".bidsignore", "".join(line + "\n" for line in bidsignore_lines(files, incomplete)))


def write_readme(output_dir: Path, cfg: dict) -> None:
    """A short ``README`` unless the dataset has one (the user may edit or replace ours)."""
    if not any((output_dir / name).exists() for name in README_NAMES):
        write_if_changed(output_dir / README_NAMES[0], _readme(cfg))


def _readme(cfg: dict) -> str:
    name = cfg.get("dataset_name") or "bidsport export"
    return (
        f"# {name}\n\nThis dataset was exported from classified DICOM series by bidsport "
        f"{__version__} (dcm2niix for NIfTI conversion).\nThe export plan and report are in "
        "code/bidsport/.\n"
    )


def _warn(message: str) -> None:
    print(f"bidsport: warning: {message}", file=sys.stderr)
