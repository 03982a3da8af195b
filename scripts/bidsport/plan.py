"""Plan the export: filter rows, label subjects and sessions, name every series.

:func:`build_plan` turns the tables into a :class:`Plan` (it also reads the
fieldmap links table and probes fieldmap series' headers, :mod:`bidsport.probe`,
through a cache under ``.bidsport/probe``); :func:`write_plan`
writes the human-readable ``plan.tsv`` and one small JSON *spec* per series, which
is the only input of that series' conversion job. Specs are rewritten only when
their content changes, so that a job re-runs only when its own series changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd

from . import acquisitions, distinct_names, fieldmaps, filters, formats, naming, overrides, probe, stacks, tsv
from .fsutil import write_if_changed
from .labels import sanitize_label
from .table import TableError, parse_date, resolve_dicom_path

NIFTI_FORMATS = formats.NIFTI  # kept for callers of the plan
PLAN_COLUMNS = [
    "key", "line", "subject_code", "subject", "subject_source", "session", "series_instance_uid", "stack_index",
    "series_number", "study_date", "series_time", "series_description", "directory_type", "classification",
    "provenance", "datatype", "stem", "formats", "nifti_dir", "dicom_dir", "source", "raw_bids", "warnings",
]  # fmt: skip


class NothingToExport(RuntimeError):
    """Every row was filtered out; the message says by which filter."""


@dataclass
class PlanEntry:
    key: str
    line: int
    subject_code: str
    subject: str
    subject_source: str  # which identifier named the subject (fallbacks say so)
    session: str | None
    series_instance_uid: str
    stack_index: int
    n_stacks: int
    stack_key: str
    series_number: str
    series_time: str
    study_date: str
    series_description: str
    directory_type: str
    classification: str  # contrast, modifiers, construct, technique (for reports)
    provenance: str
    datatype: str
    subfolder: str | None
    entities: list
    suffix: str
    tail: str
    role: str
    kind: str
    run: int | None
    stem: str
    formats: list[str]
    nifti_dir: str | None  # relative to output_dir
    dicom_dir: str | None  # relative to output_dir: the folder that receives the copies
    source: str  # absolute path of the series' folder or file
    multi_suffix: str = ""
    warnings: list[str] = field(default_factory=list)  # planning-time warnings (unknown values, images vs table)
    files: list[str] | None = None  # exact files (instances table), in order; None: scan source
    # The table puts no other series in or under ``source``: its job may convert the
    # folder without reading every header first (outputs are told apart by UID).
    source_alone: bool = False
    # What this stack holds (stacks.stack_facts), for a series of several stacks: its
    # job picks the stack's own images (and DICOM files) by these, never by order.
    stack: dict = field(default_factory=dict)

    def spec(self, overwrite: str) -> dict:
        """What the series job needs, and nothing else (its only input)."""
        keys = (
            "key", "subject", "session", "series_instance_uid", "stack_index", "n_stacks",
            "stack_key", "datatype", "subfolder", "entities", "suffix", "tail", "role", "kind",
            "run", "stem", "formats", "nifti_dir", "dicom_dir", "source", "multi_suffix",
        )  # fmt: skip
        spec = {k: getattr(self, k) for k in keys}
        spec["overwrite"] = overwrite
        if self.n_stacks > 1 and self.stack:
            spec["stack"] = self.stack
        if self.files is not None:
            spec["files"] = self.files
        elif self.source_alone:
            spec["source_alone"] = True
        return spec


@dataclass
class Plan:
    entries: list[PlanEntry]
    excluded: list[dict] = field(default_factory=list)  # {line, subject_code, uid, status, reason}
    subjects: dict[str, str] = field(default_factory=dict)  # subject_code → label
    fallbacks: list[str] = field(default_factory=list)  # subject_codes with no alternative id
    warnings: list[str] = field(default_factory=list)  # shown at planning time and in the report


def sources_with_several_series(table: pd.DataFrame, dicom_root: Path) -> set[str]:
    """Source paths that hold, in or under them, the files of more than one series of
    the table (every row counts, exported or not: a localizer shares folders too)."""
    uids_under: dict[str, set[str]] = defaultdict(set)
    root = str(Path(dicom_root).absolute())
    for value, uid in zip(table["dicom_path"], table["series_instance_uid"]):
        # Strings, not a Path per row and parent (large tables: benchmarks/, planning);
        # the caller normalises a row's source the same way.
        folder = os.path.normpath(os.path.join(root, value))
        while True:
            uids_under[folder].add(uid)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return {folder for folder, uids in uids_under.items() if len(uids) > 1}


def series_key(uid: str, stack_index: int) -> str:
    """Stable, path-safe job key of one row: independent of names and order."""
    digest = hashlib.sha1(f"{uid}/{stack_index}".encode()).hexdigest()[:16]
    return f"s{digest}"


def subject_labels(
    rows: pd.DataFrame, source: str, identifiers: pd.DataFrame | None, table_path: str
) -> tuple[dict[str, str], list[str]]:
    """subject_code → BIDS label, by ``subject_identifier_source``.

    Two subject codes that end on the same label are an error naming both rows.
    """
    codes = list(dict.fromkeys(rows["subject_code"]))
    first_line = dict(zip(rows["subject_code"][::-1], rows["_line"][::-1]))
    alternative: dict[str, str] = {}
    if source != "subject_code":
        if identifiers is None:
            raise TableError([f"subject_identifier_source is {source!r} but no subject_identifiers_table is configured"])
        match = identifiers[identifiers["id_type"].astype(str) == str(source)]
        for r in match.itertuples():
            if r.other_identifier:
                alternative.setdefault(r.subject_code, r.other_identifier)
    labels: dict[str, str] = {}
    fallbacks: list[str] = []
    owner: dict[str, str] = {}
    problems: list[str] = []
    for code in codes:
        raw = alternative.get(code)
        if raw is None:
            raw = code
            if source != "subject_code":
                fallbacks.append(code)
        label = sanitize_label(raw)
        if label in owner and owner[label] != code:
            other = owner[label]
            problems.append(
                f"{table_path}:{first_line[code]}: column 'subject_code': {code!r} and {other!r} "
                f"(line {first_line[other]}) both become the BIDS label sub-{label}"
            )
        owner.setdefault(label, code)
        labels[code] = label
    if problems:
        raise TableError(problems)
    return labels, fallbacks


def session_label(row: dict) -> str | None:
    if row.get("session_id"):
        return sanitize_label(row["session_id"])
    if row.get("study_date"):
        return parse_date(row["study_date"]).strftime("%Y%m%d")
    return None


def build_plan(
    table: pd.DataFrame,
    cfg: dict,
    *,
    dicom_root: Path,
    identifiers: pd.DataFrame | None = None,
    table_path: str = "series table",
    image_facts: Callable[[dict], "probe.ImageFacts | None"] | None = None,
    image_type: Callable[[dict], str | None] | None = None,
    instances: dict[tuple[str, int], list[str]] | None = None,
) -> Plan:
    """The whole export plan, from validated rows and the resolved config.

    ``image_facts(row)`` (see :mod:`bidsport.probe`) tells what a fieldmap series'
    images are; without it, the classification alone names fieldmaps.
    ``image_type(row)`` reads the images' ImageType for rows whose name depends on
    it (raw or derived) and whose table gives no ``stack_image_type``.
    ``instances`` (table.load_instances_table): the exact files of each stack; each
    spec then lists its files (a stack with none gets ``[]``, which its job reports).
    """
    rows, excluded, counts = filters.apply_filters(table, cfg)
    if rows.empty:
        raise NothingToExport(filters.nothing_to_export_message(table, counts, cfg))
    labels, fallbacks = subject_labels(rows, str(cfg.get("subject_identifier_source", "subject_code")), identifiers, table_path)
    chosen = _formats(cfg)
    layout = cfg.get("layout", "bids")
    records = rows.to_dict("records")

    # Session labels, checked for collisions within a subject.
    problems: list[str] = []
    session_owner: dict[tuple[str, str], str] = {}
    for r in records:
        r["_subject"] = labels[r["subject_code"]]
        r["_session"] = session_label(r)
        raw = r.get("session_id") or r.get("study_date") or ""
        if r["_session"]:
            k = (r["_subject"], r["_session"])
            if session_owner.setdefault(k, raw) != raw:
                problems.append(
                    f"{table_path}:{r['_line']}: column 'session_id': {raw!r} and {session_owner[k]!r} "
                    f"both become ses-{r['_session']} for sub-{r['_subject']}"
                )
    if problems:
        raise TableError(problems)

    # Every stack the table lists counts, filtered or not: a stack left out must not
    # make its sibling take the whole series, nor shift its echo rank.
    n_stacks = Counter(table["series_instance_uid"])
    shared_sources = sources_with_several_series(table, dicom_root)
    symri = bool(cfg.get("symri_subfolder", True))
    plan_warnings: list[str] = []
    roles = stacks.roles_of(table.to_dict("records"))
    types = probe.image_types(records, image_type)
    for r in records:
        r["_warnings"] = []
        role = roles.get(stacks.row_key(r))
        if role is not None and role.note:
            r["_warnings"].append(f"stack {r.get('stack_index') or 0}: {role.note}")
        r["_name"] = naming.name_series(r, stack=role, image_type=types.get(id(r)), symri_subfolder=symri)
        r["_kinds"] = acquisitions.sibling_kinds(r["_name"], r, split=role is not None and role != stacks.StackRole())
    if image_facts is not None:
        acquisitions.images_have_the_last_word([r for r in records if not stacks.stack_facts(r) or n_stacks[r["series_instance_uid"]] < 2],
                                   image_facts)  # fmt: skip
    distinct_names.tell_classifications_apart(records)
    plan_warnings += distinct_names.unknown_value_warnings(records, table_path)
    applied = overrides.apply(records, excluded, cfg)  # the user's decisions (docs/curation.md)
    plan_warnings += applied.warnings

    run_of = acquisitions.run_numbers(records)  # repeats only: docs/naming.md

    entries: list[PlanEntry] = []
    for r in records:
        n: naming.SeriesName = r["_name"]
        run = run_of[(acquisitions.run_group(r), acquisitions.member(r))]
        stem = naming.stem(r["_subject"], r["_session"], n.entities, n.suffix, n.tail, run)
        folder = _folder(layout, r["_subject"], r["_session"], n)
        nifti_formats = [f for f in chosen if f in NIFTI_FORMATS]
        nifti_dir = folder if nifti_formats else None
        dicom_dir = None
        if formats.DICOM in chosen:
            dicom_dir = _join("sourcedata", folder, stem) if nifti_formats else _join(folder, stem)
        stack_index = int(r.get("stack_index") or 0)
        uid = r["series_instance_uid"]
        entries.append(
            PlanEntry(
                key=series_key(uid, stack_index),
                line=int(r["_line"]),
                subject_code=r["subject_code"],
                subject=r["_subject"],
                subject_source=_subject_source(cfg, r["subject_code"], fallbacks),
                session=r["_session"],
                series_instance_uid=uid,
                stack_index=stack_index,
                n_stacks=n_stacks[uid],
                stack_key=r.get("stack_key", ""),
                series_number=r.get("series_number", ""),
                series_time=r.get("series_time", ""),
                study_date=r.get("study_date", ""),
                series_description=r.get("series_description", ""),
                directory_type=r["directory_type"],
                classification=classification(r),
                provenance=r["provenance"],
                datatype=n.datatype,
                subfolder=n.subfolder,
                entities=[list(e) for e in n.entities],
                suffix=n.suffix,
                tail=n.tail,
                role=n.role,
                kind=n.kind,
                run=run,
                stem=stem,
                formats=chosen,
                nifti_dir=nifti_dir,
                dicom_dir=dicom_dir,
                source=str(resolve_dicom_path(r["dicom_path"], dicom_root).absolute()),
                multi_suffix=n.multi_suffix,
                warnings=r["_warnings"],
                files=None if instances is None else instances.get((uid, stack_index), []),
                source_alone=os.path.normpath(os.path.join(dicom_root.absolute(), r["dicom_path"])) not in shared_sources,
                stack=stacks.stack_facts(r),
            )
        )
    applied.check_names(entries)  # an override that makes two series collide stops here
    # A bad fieldmap_links_table stops here, before any export.
    bids_nifti = layout == "bids" and formats.wants_nifti(chosen)
    fieldmaps.check_plan_links(cfg, entries, excluded, bids_nifti=bids_nifti)
    return Plan(entries=entries, excluded=excluded, subjects=labels, fallbacks=fallbacks,
                warnings=plan_warnings)  # fmt: skip


def _subject_source(cfg: dict, code: str, fallbacks: list[str]) -> str:
    source = str(cfg.get("subject_identifier_source", "subject_code"))
    if source == "subject_code":
        return source
    return f"subject_code (no {source} identifier)" if code in fallbacks else source


def _formats(cfg: dict) -> list[str]:
    return formats.checked(cfg.get("output_mode", "nii.gz"))


def _join(*parts: str | None) -> str:
    return "/".join(p for p in parts if p)


def _folder(layout: str, subject: str, session: str | None, name: naming.SeriesName) -> str:
    if layout == "flat":
        return ""
    return _join(f"sub-{subject}", f"ses-{session}" if session else None, name.datatype, name.subfolder)


def classification(row: dict) -> str:
    """The row's classification in one readable string, e.g. 'T1w · FatSat · MPRAGE'."""
    parts = [row.get("base", "")]
    for column in ("modifier_csv", "construct_csv"):
        parts += str(row.get(column, "") or "").split(",")
    parts += [row.get("technique", ""), "post-contrast" if str(row.get("post_contrast", "")) == "1" else ""]
    return " · ".join(p.strip() for p in parts if p and str(p).strip())


# --------------------------------------------------------------------------- writing


def write_plan(plan: Plan, plan_tsv: Path, spec_dir: Path, excluded_tsv: Path, overwrite: str) -> int:
    """Write plan.tsv, excluded.tsv and the per-series specs; return specs changed."""
    changed = 0
    keep = set()
    for e in plan.entries:
        text = json.dumps(e.spec(overwrite), indent=1, sort_keys=True) + "\n"
        changed += write_if_changed(spec_dir / f"{e.key}.json", text)
        keep.add(f"{e.key}.json")
    # Specs of series that left the plan are not inputs any more; drop them.
    if spec_dir.exists():
        for old in spec_dir.glob("*.json"):
            if old.name not in keep:
                old.unlink()
    rows = []
    for e in plan.entries:
        d = asdict(e)
        d["formats"] = ",".join(e.formats)
        d["raw_bids"] = "" if e.subfolder or e.tail else "yes"
        d["warnings"] = " | ".join(e.warnings)
        rows.append({k: ("" if d.get(k) is None else d.get(k)) for k in PLAN_COLUMNS})
    write_if_changed(plan_tsv, tsv.to_text(rows, PLAN_COLUMNS))
    write_if_changed(excluded_tsv, tsv.to_text(plan.excluded, filters.EXCLUDED_COLUMNS))
    return changed
