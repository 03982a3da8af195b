"""Dataset-level files, written once every series job has finished.

``dataset_description.json``, ``participants.tsv``/``.json``, ``README``,
``.bidsignore``, per-session ``scans.tsv`` and the export report. All are derived
from the plan and the per-series manifests (the final names), and each file is
rewritten only when its content changes.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
import shutil
import sys
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd

from . import __version__, bids_schema, fieldmaps, table
from .export_series import STATE_DIR, inside
from .fsutil import write_if_changed
from .plan import _tsv
from .table import parse_date, parse_time

NIFTI_EXTS = (".nii.gz", ".nii")
REPORT_COLUMNS = [
    "key", "line", "subject_code", "subject", "subject_source", "session", "series_instance_uid", "stack_index",
    "series_description", "directory_type", "provenance", "status", "reason", "files", "warnings",
]  # fmt: skip
DATATYPES = {"anat", "dwi", "func", "fmap", "perf"}
# Valid names whose data BIDS accepts only with companions DICOM does not give us
# (ASL needs aslcontext.tsv and labeling metadata such as M0Type): exported, but
# listed in .bidsignore until a person adds them.
NEEDS_COMPANIONS = {"asl"}
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


def read_tsv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def split_name(rel: str) -> tuple[str | None, bool, dict, str, str]:
    """(datatype, in_subfolder, entities, suffix, extension) of a dataset path."""
    parts = rel.split("/")
    name = parts[-1]
    ext = next((e for e in (".nii.gz", ".nii", ".json", ".bval", ".bvec", ".tsv") if name.endswith(e)), "")
    stem = name[: len(name) - len(ext)] if ext else name
    pieces = stem.split("_")
    ents = dict(p.split("-", 1) for p in pieces[:-1] if "-" in p)
    folders = [p for p in parts[:-1] if not p.startswith(("sub-", "ses-"))]
    datatype = folders[0] if folders else None
    return datatype, len(folders) > 1, ents, pieces[-1], ext


def is_raw_file(rel: str, incomplete: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether the validator accepts ``rel`` as raw data (``incomplete``: files whose
    sidecar lacks schema-required keys, which are exported but ignored)."""
    if rel in incomplete:
        return False
    datatype, in_subfolder, ents, suffix, ext = split_name(rel)
    if datatype not in DATATYPES or in_subfolder or not rel.startswith("sub-") or suffix in NEEDS_COMPANIONS:
        return False
    return bids_schema.is_raw_name(datatype, frozenset(ents), suffix, ext)


def bidsignore_lines(files: list[str], incomplete: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Patterns that hide every non-raw file and no raw one.

    A routing folder becomes one folder pattern (``sub-*/ses-*/anat/SyMRI``, the form
    the validator honours); a file becomes ``*_<last part>`` when that pattern hides
    no valid file, else its exact path.
    """
    raw = [f for f in files if is_raw_file(f, incomplete)]
    raw_names = [f.rsplit("/", 1)[-1] for f in raw]
    lines: list[str] = []
    for rel in sorted(set(files) - set(raw)):
        parts = rel.split("/")
        if not rel.startswith("sub-"):
            continue  # flat layout / sourcedata: nothing the validator reads
        datatype, in_subfolder, *_ = split_name(rel)
        if in_subfolder or datatype not in DATATYPES:  # a routing or non-BIDS folder: hide it whole
            folder = [("sub-*" if p.startswith("sub-") else "ses-*" if p.startswith("ses-") else p) for p in parts[:-1]]
            pattern = "/".join(folder)
        else:
            pattern = "*_" + parts[-1].split("_")[-1]
            if any(fnmatch.fnmatchcase(n, pattern) for n in raw_names):
                pattern = rel
        if pattern not in lines:
            lines.append(pattern)
    return lines


def acq_time(study_date: str, series_time: str) -> str:
    if not study_date or not series_time:
        return "n/a"
    seconds = int(parse_time(series_time))
    return f"{parse_date(study_date).isoformat()}T{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


_CLOCK = re.compile(r"(?:(\d{4}-?\d{2}-?\d{2})T?)?(\d{1,2}):?(\d{1,2}):?(\d{1,2}(?:\.\d+)?)")


def acquisition(row: dict, manifest: dict | None) -> tuple[float, str]:
    """(seconds, for ordering; BIDS ``acq_time``) of a series. The images' own
    acquisition time (dcm2niix's sidecar, kept by the series job) comes first: a
    table's ``series_time`` can lie minutes after the acquisition. The table's
    ``study_date`` gives the day where the images give only a time of day."""
    found = _CLOCK.fullmatch(str((manifest or {}).get("acquired") or "").strip())
    if found:
        date = found.group(1) or row.get("study_date") or ""
        hours, minutes, seconds = int(found.group(2)), int(found.group(3)), float(found.group(4))
        if date and hours < 24 and minutes < 60 and seconds < 61:
            day = parse_date(date)
            whole = int(seconds)
            text = f"{day.isoformat()}T{hours:02d}:{minutes:02d}:{whole:02d}"
            return day.toordinal() * 86400 + hours * 3600 + minutes * 60 + seconds, text
    return _acq_seconds(row), acq_time(row.get("study_date", ""), row.get("series_time", ""))


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
    plan = read_tsv(plan_tsv)
    by_key: dict[str, dict] = {}
    incomplete: set[str] = set()  # files whose sidecar lacks required keys: ignored
    for path in manifests:  # one per (series, part): merge a series' nifti and dicom parts
        m = json.loads(Path(path).read_text(encoding="utf-8"))
        merged = by_key.setdefault(m["key"], {"status": m["status"], "files": [], "warnings": [], "message": ""})
        merged["files"] += m.get("files", [])
        incomplete |= {f["path"] for f in m.get("files", []) if f.get("incomplete")}
        merged["warnings"] += m.get("warnings", [])
        merged["acquired"] = merged.get("acquired") or m.get("acquired")  # the images' time (NIfTI part)
        if m["status"] == "failed" or merged["status"] == "skipped":
            merged["status"] = m["status"]
        if m.get("message"):
            merged["message"] = "; ".join(x for x in (merged["message"], f"{m.get('part', '')}: {m['message']}") if x)
    layout = cfg.get("layout", "bids")
    formats = cfg.get("_formats", [])
    bids_tree = layout == "bids" and any(f in ("nii", "nii.gz") for f in formats)
    if bids_tree:  # a fieldmap the validator would reject is exported, listed in .bidsignore, and said so
        all_files = [f["path"] for m in by_key.values() for f in m["files"]]
        _fill_phasediff_echo_times(output_dir, all_files)
        for m in by_key.values():
            for rel, reason in incomplete_fieldmaps(output_dir, [f["path"] for f in m["files"]], set(all_files)).items():
                incomplete |= {rel, _sidecar_of(rel)}
                m["warnings"].append(f"{rel}: {reason}: exported, listed in .bidsignore")

    report_rows = []
    dataset_files: list[str] = []
    counts = {"exported": 0, "skipped": 0, "failed": 0, "excluded": 0, "stale": 0}
    for row in plan:
        m = by_key.get(row["key"], {"status": "failed", "message": "no manifest (job did not finish)", "files": []})
        files = [f["path"] for f in m.get("files", [])]
        dataset_files += files
        counts[m["status"]] = counts.get(m["status"], 0) + 1
        report_rows.append(
            {
                **{k: row.get(k, "") for k in REPORT_COLUMNS},
                "status": m["status"],
                "reason": m.get("message", ""),
                "files": ", ".join(files),
                "warnings": " | ".join([w for w in row.get("warnings", "").split(" | ") if w] + m.get("warnings", [])),
            }
        )
    for row in read_tsv(excluded_tsv):
        counts["excluded"] += 1
        report_rows.append({**{k: row.get(k, "") for k in REPORT_COLUMNS}, "status": row.get("status", "excluded")})
    planned = {r["key"] for r in plan}
    ledger_dir = output_dir / STATE_DIR / "ledger"
    for ledger in sorted(ledger_dir.glob("*.json")) if ledger_dir.exists() else []:
        if ledger.name.split(".")[0] in planned:
            continue
        data = json.loads(ledger.read_text(encoding="utf-8"))
        present = [f["path"] for f in data.get("files", []) if (output_dir / f["path"]).exists()]
        if present:
            counts["stale"] += 1
            report_rows.append(
                {"key": ledger.name.split(".")[0], "status": "stale", "files": ", ".join(present),
                 "reason": "series no longer in the plan (removed row, or filtered out); files kept; `overwrite: clean` removes them"}
            )  # fmt: skip

    # Every series job of this run has finished: scratch left by killed jobs can go.
    scratch = output_dir / STATE_DIR / "tmp"
    if scratch.exists():
        for leftover in scratch.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
    if bids_tree:
        # The optional tables are read and checked first: a bad one fails the step before any file changes.
        links = _fieldmap_links(cfg, plan, excluded_tsv)
        sessions = _sessions_table(cfg, plan)
        _link_fieldmaps(output_dir, plan, by_key, cfg, links, incomplete)
        # Only subjects and sessions with data in the dataset are listed.
        exported = [r for r in plan if by_key.get(r["key"], {}).get("status") in ("exported", "skipped")]
        _write_sessions(output_dir, exported, sessions, by_key)
        _write_dataset_description(output_dir, cfg, dcm2niix_version)
        _write_participants(output_dir, exported, subjects, first_session_ages(exported, ages))
        _write_scans(output_dir, plan, by_key, incomplete)
        ignore = bidsignore_lines(dataset_files, incomplete)
        write_if_changed(output_dir / ".bidsignore", "".join(line + "\n" for line in ignore))
        readme = output_dir / "README"
        if not readme.exists() and not (output_dir / "README.md").exists():
            write_if_changed(readme, _readme(cfg))
    write_if_changed(report_tsv, _tsv(report_rows, REPORT_COLUMNS))
    if state_ledger is not None:  # what this step wrote (.bidsport/dataset_files.json)
        write_ledger(state_ledger, output_dir, dataset_files if bids_tree else [])
    return counts


# --------------------------------------------------------------------------- ledger
# What the dataset step wrote, with each file's (size, mtime): a file deleted or
# changed since makes the next run re-run the step (workflow_support.force_if_changed),
# so every dataset-level file comes back, the ones no rule can declare (per-session
# scans.tsv, sessions.tsv) and the fieldmap links it writes into sidecars included.
# Declared outputs of the rule (Snakemake re-runs the step when one is missing and
# sets their mtimes itself): not in the ledger. The rest is written only sometimes.
DECLARED_OUTPUTS = ("dataset_description.json", "participants.tsv", "participants.json", ".bidsignore")
UNDECLARED_TOP_LEVEL = ("sessions.json",)
README_NAMES = ("README", "README.md")  # the user may edit or replace ours: only its presence is checked


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
    found += [_sidecar_of(f) for f in series_files if f.endswith(NIFTI_EXTS) and is_raw_file(f)]
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


def _write_dataset_description(output_dir: Path, cfg: dict, dcm2niix_version: str) -> None:
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


def _write_participants(output_dir: Path, plan: list[dict], subjects: pd.DataFrame | None, ages: dict[str, str] | None = None) -> None:
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
    write_if_changed(output_dir / "participants.tsv", _tsv(rows, ["participant_id", *extra_cols]))
    sidecar = {c: {"Description": PARTICIPANT_DESCRIPTIONS.get(c, f"{c}, as given in the subjects table.")} for c in ["participant_id", *extra_cols]}
    if "age" in sidecar:
        sidecar["age"]["Units"] = "year"
    if ages and "age" in sidecar:
        sidecar["age"]["Description"] = f"Age in whole years at the participant's first exported session (from the birth and study dates; {AGE_CAP_TEXT} for 89 and older)."
    if "sex" in sidecar and extra_cols and all(str(r.get("sex", "n/a")) in ("M", "F", "O", "n/a") for r in rows):
        sidecar["sex"]["Levels"] = {"M": "male", "F": "female", "O": "other"}
    write_if_changed(output_dir / "participants.json", json.dumps(sidecar, indent=2) + "\n")


def _write_scans(output_dir: Path, plan: list[dict], by_key: dict, incomplete: set[str] = frozenset()) -> None:
    """One ``scans.tsv`` per subject/session folder: every raw image, with acq_time."""
    per_folder: dict[str, list[dict]] = {}
    for row in plan:
        m = by_key.get(row["key"])
        if not m:
            continue
        for f in m.get("files", []):
            rel = f["path"]
            if not rel.endswith(NIFTI_EXTS) or not is_raw_file(rel, incomplete):
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
        write_if_changed(inside(output_dir, f"{folder}/{name}"), _tsv(rows, ["filename", "acq_time"]))


def _acq_seconds(row: dict) -> float:
    if not row.get("series_time"):
        return float("inf")
    day = parse_date(row["study_date"]).toordinal() if row.get("study_date") else 0
    return day * 86400 + parse_time(row["series_time"])


def _update_sidecar(path: Path, set_keys: dict, drop_keys: tuple[str, ...] = ()) -> None:
    """Edit a JSON sidecar atomically, and only if something changes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    new = {k: v for k, v in data.items() if k not in drop_keys}
    new.update(set_keys)
    if new != data:
        write_if_changed(path, json.dumps(new, indent=2) + "\n")


def _warn(message: str) -> None:
    print(f"bidsport: warning: {message}", file=sys.stderr)


def _fieldmap_links(cfg: dict, plan: list[dict], excluded_tsv: Path) -> list[fieldmaps.LinkOverride]:
    """The links table (``fieldmap_links_table``), checked against the plan; raises TableError."""
    path = fieldmaps.table_path(cfg, "fieldmap_links_table")
    if not path:
        return []
    return fieldmaps.check_links_table(path, plan, read_tsv(excluded_tsv))


def _link_fieldmaps(output_dir: Path, plan: list[dict], by_key: dict, cfg: dict, links: list | tuple = (),
                    incomplete: set[str] = frozenset()) -> None:  # fmt: skip
    """B0FieldIdentifier / B0FieldSource (+ IntendedFor) from the final names."""
    images = []
    files_of: dict[tuple[str, int], list[str]] = {}  # (uid, stack) -> raw NIfTI files
    for row in plan:
        for f in by_key.get(row["key"], {}).get("files", []):
            if f["path"].endswith(NIFTI_EXTS) and is_raw_file(f["path"], incomplete):
                images.append(fieldmaps.Image(f["path"], acquisition(row, by_key.get(row["key"]))[0]))
                files_of.setdefault((row["series_instance_uid"], int(row.get("stack_index") or 0)), []).append(f["path"])
    overrides: dict[str, str | None] = {}
    links_path = fieldmaps.table_path(cfg, "fieldmap_links_table")
    for link in sorted(links, key=lambda x: x.stack_index is not None):  # a given stack wins over "every stack"
        fmap = None
        if link.fieldmap_uid:
            fmap_files = sorted(p for (uid, _), paths in files_of.items() if uid == link.fieldmap_uid for p in paths if fieldmaps.is_fieldmap_file(p))
            if not fmap_files:
                _warn(f"{links_path}:{link.line}: fieldmap series {link.fieldmap_uid} has no exported image (failed?); "
                      f"series {link.series_instance_uid} gets no B0FieldSource until it has")  # fmt: skip
            fmap = fmap_files[0] if fmap_files else None
        for (uid, stack), paths in files_of.items():
            if uid == link.series_instance_uid and (link.stack_index is None or stack == link.stack_index):
                overrides.update(dict.fromkeys(paths, fmap))
    targets = tuple(cfg.get("fieldmap_targets") or ("func", "dwi"))
    gap = cfg.get("fieldmap_max_gap_minutes")
    identifiers, sources = fieldmaps.link_fieldmaps(
        images,
        targets,
        matching=cfg.get("fieldmap_matching") or "closest_before",
        max_gap=None if gap is None else float(gap) * 60,
        overrides=overrides,
    )
    intended: dict[str, list[str]] = {}
    for target, ident in sources.items():
        intended.setdefault(ident, []).append(f"bids::{target}")
    for img in images:
        sidecar = output_dir / _sidecar_of(img.path)
        if img.path in identifiers:
            ident = identifiers[img.path]
            extra = {"IntendedFor": sorted(intended.get(ident, []))} if cfg.get("fieldmap_intended_for", True) else {}
            drop = () if extra else ("IntendedFor",)
            _update_sidecar(sidecar, {"B0FieldIdentifier": ident, **extra}, drop)
        elif img.path in sources:
            _update_sidecar(sidecar, {"B0FieldSource": sources[img.path]})
        else:
            _update_sidecar(sidecar, {}, ("B0FieldSource",))


def _sidecar_of(nifti: str) -> str:
    return nifti[: -len(".nii.gz")] + ".json" if nifti.endswith(".nii.gz") else nifti[: -len(".nii")] + ".json"


def _sessions_table(cfg: dict, plan: list[dict]):
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


def _write_sessions(output_dir: Path, plan: list[dict], sessions: pd.DataFrame | None = None, by_key: dict | None = None) -> None:
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
        write_if_changed(inside(output_dir, f"sub-{subject}/sub-{subject}_sessions.tsv"), _tsv(rows, columns))
    if first:
        sidecar = {c: {"Description": SESSION_DESCRIPTIONS.get(c, f"{c}, as given in the sessions table.")} for c in columns}
        if "age" in sidecar:
            sidecar["age"]["Units"] = "year"
        write_if_changed(output_dir / "sessions.json", json.dumps(sidecar, indent=2) + "\n")


# A fieldmap image → the sibling the validator requires beside it (same name otherwise).
_NEEDS_MAGNITUDE = {"phasediff": "magnitude1", "phase1": "magnitude1", "phase2": "magnitude2", "fieldmap": "magnitude"}


def incomplete_fieldmaps(output_dir: Path, files: list[str], everything: set[str]) -> dict[str, str]:
    """NIfTI fieldmaps among ``files`` that the validator would reject, and why: a
    phase or Hz map whose magnitude image was not exported (``everything``: every
    file of the export), or a ``phasediff`` still without EchoTime1/EchoTime2."""
    found = {}
    for rel in files:
        if not rel.endswith(NIFTI_EXTS) or not fieldmaps.is_fieldmap_file(rel):
            continue
        suffix = rel.rsplit("_", 1)[-1].split(".")[0]
        needed = _NEEDS_MAGNITUDE.get(suffix)
        if needed is None:
            continue
        ext = ".nii.gz" if rel.endswith(".nii.gz") else ".nii"
        sibling = rel[: -len(suffix + ext)] + needed + ext
        if sibling not in everything:
            found[rel] = f"a {suffix} without its {needed} image (not in the export)"
            continue
        if suffix == "phasediff":
            try:
                data = json.loads((output_dir / _sidecar_of(rel)).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            if not ("EchoTime1" in data and "EchoTime2" in data):
                found[rel] = "a phasediff without EchoTime1/EchoTime2 (neither dcm2niix nor its magnitude images give them)"
    return found


def _fill_phasediff_echo_times(output_dir: Path, files: list[str]) -> None:
    """``phasediff`` needs EchoTime1/2: take them from its magnitude1/2 siblings."""
    for rel in files:
        if not rel.endswith("_phasediff.json"):
            continue
        path = output_dir / rel
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "EchoTime1" in data and "EchoTime2" in data:
            continue
        times = []
        for n in (1, 2):
            mag = path.with_name(path.name.replace("_phasediff.json", f"_magnitude{n}.json"))
            try:
                times.append(json.loads(mag.read_text(encoding="utf-8")).get("EchoTime"))
            except (OSError, ValueError):
                times.append(None)
        if all(t is not None for t in times) and times[0] != times[1]:
            data["EchoTime1"], data["EchoTime2"] = sorted(times)
            write_if_changed(path, json.dumps(data, indent=2) + "\n")


def _readme(cfg: dict) -> str:
    name = cfg.get("dataset_name") or "bidsport export"
    return (
        f"# {name}\n\nThis dataset was exported from classified DICOM series by bidsport "
        f"{__version__} (dcm2niix for NIfTI conversion).\nThe export plan and report are in "
        "code/bidsport/.\n"
    )


def summary_text(counts: dict, report_tsv: Path) -> str:
    parts = [f"{k} {v}" for k, v in counts.items() if v]
    return f"bidsport: {', '.join(parts) or 'nothing to do'} (report: {report_tsv})"
