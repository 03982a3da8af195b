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
from concurrent.futures import ThreadPoolExecutor
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd

from . import fieldmaps, formats, mapping, naming, overrides, stacks, tsv, vocabulary
from .fsutil import write_if_changed
from .labels import sanitize_label
from .table import TableError, parse_date, parse_time, resolve_dicom_path

if TYPE_CHECKING:
    from . import probe

NIFTI_FORMATS = formats.NIFTI  # kept for callers of the plan
PLAN_COLUMNS = [
    "key", "line", "subject_code", "subject", "subject_source", "session", "series_instance_uid", "stack_index",
    "series_number", "study_date", "series_time", "series_description", "directory_type", "classification",
    "provenance", "datatype", "stem", "formats", "nifti_dir", "dicom_dir", "source", "raw_bids", "warnings",
]  # fmt: skip


EXCLUDED_COLUMNS = [
    "line", "subject_code", "series_instance_uid", "stack_index", "series_description",
    "directory_type", "provenance", "status", "reason",
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


def with_default_provenance(rows: pd.DataFrame) -> pd.DataFrame:
    """``provenance`` defaults to RawRecon (docs/series-table.md)."""
    if "provenance" not in rows.columns:
        return rows.assign(provenance="RawRecon")
    return rows.assign(provenance=rows["provenance"].where(rows["provenance"] != "", "RawRecon"))


def _removed_record(r: dict, status: str, reason: str) -> dict:
    return {
        **{k: r.get(k, "") for k in EXCLUDED_COLUMNS},
        "line": r["_line"],
        "stack_index": r.get("stack_index") or "0",
        "status": status,
        "reason": reason,
    }


def classifier_exclusions(rows: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """What the classifier itself rules out: ``excluded`` rows and (unless
    ``include_manual_review``) rows it flagged for manual review. A ``localizer = 1``
    row is a localizer whatever its intent says, for the filters too."""
    rows = with_default_provenance(rows)
    if "localizer" in rows.columns:
        rows = rows.assign(directory_type=rows["directory_type"].where(rows["localizer"] != "1", "localizer"))
    if "manual_review_reasons_csv" in rows.columns:
        reasons = rows["manual_review_reasons_csv"]
    else:
        import pandas as pd  # already loaded by table.read_table

        reasons = pd.Series("", index=rows.index)
    removed: list[dict] = []
    counts = {"classifier (excluded)": 0, "not MR": 0, "manual review": 0}
    if "stack_modality" in rows.columns:  # NILS holds CT and PET too: never in an MRI dataset
        modality = rows["stack_modality"].str.strip().str.upper()
        other = (modality != "") & (modality != "MR")
        for r in rows[other].to_dict("records"):
            removed.append(_removed_record(r, "excluded", f"not an MR image (stack_modality {r['stack_modality']})"))
        counts["not MR"] = int(other.sum())
        rows, reasons = rows[~other], reasons[~other]
    excluded = rows["directory_type"] == "excluded"
    for r, why in zip(rows[excluded].to_dict("records"), reasons[excluded]):
        removed.append(_removed_record(r, "excluded", "classifier: directory_type excluded" + (f" ({why})" if why else "")))
    counts["classifier (excluded)"] = int(excluded.sum())
    rows, reasons = rows[~excluded], reasons[~excluded]
    if "manual_review_required" in rows.columns and not cfg.get("include_manual_review"):
        review = rows["manual_review_required"] == "1"
        for r, why in zip(rows[review].to_dict("records"), reasons[review]):
            removed.append(_removed_record(
                r, "excluded", f"manual review required: {why or 'no reason given'} (include_manual_review: true exports it)"
            ))  # fmt: skip
        counts["manual review"] = int(review.sum())
        rows = rows[~review]
    return rows, removed, counts


def apply_filters(rows: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """The classifier's own exclusions, then the intent and provenance filters in
    the export page's order.

    Returns the kept rows, one record per removed row, and how many each step removed.
    """
    rows, removed, counts = classifier_exclusions(rows, cfg)
    steps = [
        ("include_intents", "directory_type", lambda v, allowed: v in allowed),
        ("exclude_intents", "directory_type", lambda v, banned: v not in banned),
        ("include_provenance", "provenance", lambda v, allowed: v in allowed),
        ("exclude_provenance", "provenance", lambda v, banned: v not in banned),
    ]
    for name, column, keep in steps:
        values = cfg.get(name)
        if values is None or (name.startswith("include") and not values):
            counts[name] = 0
            continue
        mask = rows[column].map(lambda v: keep(v, set(values))).astype(bool)
        gone = rows[~mask]
        counts[name] = len(gone)
        removed += [_removed_record(r, "excluded", f"{name}: {column}={r[column]!r}") for r in gone.to_dict("records")]
        rows = rows[mask]
    return rows, removed, counts


def nothing_to_export_message(table: pd.DataFrame, counts: dict[str, int], cfg: dict) -> str:
    prov = with_default_provenance(table)["provenance"]
    lines = [f"No series to export: the series table has {len(table)} usable row(s), and the filters removed all of them."]
    for name, n in counts.items():
        if cfg.get(name):
            lines.append(f"  {name} = {list(cfg[name])} removed {n} row(s)")
        elif name not in cfg and n:
            lines.append(f"  {name} removed {n} row(s)")
    lines.append("  intents in the table: " + _value_counts(table["directory_type"]))
    lines.append("  provenances in the table: " + _value_counts(prov))
    lines.append("Check that sorting/classification completed, and loosen include_/exclude_ filters to match these values.")
    return "\n".join(lines)


def _value_counts(series: pd.Series) -> str:
    counts = Counter(series)
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())) or "(none)"


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


def _time_order(row: dict) -> tuple:
    date = parse_date(row["study_date"]).toordinal() if row.get("study_date") else 0
    time = parse_time(row["series_time"]) if row.get("series_time") else float("inf")
    number = int(row["series_number"]) if row.get("series_number") else 1 << 30
    return (date, time, number, row["series_instance_uid"])


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
    rows, excluded, counts = apply_filters(table, cfg)
    if rows.empty:
        raise NothingToExport(nothing_to_export_message(table, counts, cfg))
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

    n_stacks = Counter(r["series_instance_uid"] for r in records)
    shared_sources = sources_with_several_series(table, dicom_root)
    symri = bool(cfg.get("symri_subfolder", True))
    plan_warnings: list[str] = []
    roles = _stack_roles(records)
    types = _image_types(records, image_type)
    for r in records:
        r["_warnings"] = []
        role = roles.get(id(r))
        if role is not None and role.note:
            r["_warnings"].append(f"stack {r.get('stack_index') or 0}: {role.note}")
        r["_name"] = naming.name_series(r, stack=role, image_type=types.get(id(r)), symri_subfolder=symri)
        r["_kinds"] = _sibling_kinds(r["_name"], r, split=role is not None and role != stacks.StackRole())
    if image_facts is not None:
        _images_have_the_last_word([r for r in records if not stacks.stack_facts(r) or n_stacks[r["series_instance_uid"]] < 2],
                                   image_facts)  # fmt: skip
    _tell_classifications_apart(records)
    plan_warnings += _unknown_value_warnings(records, table_path)
    applied = overrides.apply(records, excluded, cfg)  # the user's decisions (docs/curation.md)
    plan_warnings += applied.warnings

    # Run numbers: within (subject, session, folder, name), by acquisition time;
    # magnitude/phase siblings of one acquisition share one run number. Each stack
    # of a multi-stack series is an acquisition of its own.
    groups: dict[tuple, dict[tuple, tuple]] = defaultdict(dict)
    for r in records:
        groups[_run_group(r)][_member(r)] = _time_order(r)
    run_of: dict[tuple, int | None] = {}
    kinds = {_member(r): r["_kinds"] for r in records}
    for gkey, members in groups.items():
        acquisitions: list[set[str]] = []  # the kinds each acquisition already holds
        index_of: dict[tuple, int] = {}
        for member in sorted(members, key=members.get):
            if not acquisitions or acquisitions[-1] & kinds[member]:
                acquisitions.append(set())
            acquisitions[-1] |= kinds[member]
            index_of[member] = len(acquisitions)
        for member, i in index_of.items():
            run_of[(gkey, member)] = i if len(acquisitions) > 1 else None

    entries: list[PlanEntry] = []
    for r in records:
        n: naming.SeriesName = r["_name"]
        run = run_of[(_run_group(r), _member(r))]
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


def _stack_roles(records: list[dict]) -> dict[int, stacks.StackRole]:
    """id(row) → what tells the row's stack from the other stacks of its series.

    From the stack columns (echo time, ImageType, inversion time …). A series whose
    rows carry none of them is told apart by ``stack_key`` and ``stack_index`` as a
    last resort, with a warning: the index is discovery order, not echo order."""
    by_uid: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_uid[r["series_instance_uid"]].append(r)
    roles: dict[int, stacks.StackRole] = {}
    for members in by_uid.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda r: int(r.get("stack_index") or 0))
        facts = [stacks.stack_facts(r) for r in members]
        if any(facts):
            for r, role in zip(members, stacks.tell_apart(facts)):
                roles[id(r)] = role
            continue
        note = ("no stack columns (stack_echo_time, stack_image_type …): told apart by stack_index, which is the "
                "classifier's discovery order, not necessarily the echo or inversion order")  # fmt: skip
        for r in members:
            index, key = int(r.get("stack_index") or 0), r.get("stack_key") or ""
            if key == "multi_echo":
                role = stacks.StackRole(echo=index + 1, echo_in_part=index + 1, n_in_part=len(members), note=note)
            elif key == "multi_ti":
                role = stacks.StackRole(inv=index + 1, note=note)
            else:
                role = stacks.StackRole(note=note.replace("told apart by stack_index", "not told apart (run numbers)"))
            roles[id(r)] = role
    return roles


# Provenances whose raw and scanner-derived images share a branch: ImageType decides.
_IMAGE_TYPE_DECIDES = {"BOLDRecon", "ASLRecon", "DTIRecon", "PerfusionRecon"}


def _image_types(records: list[dict], image_type: Callable[[dict], str | None] | None) -> dict[int, str]:
    """id(row) → the images' ImageType, for rows whose name depends on it and whose
    table has no ``stack_image_type`` (read from one header each, a few at once)."""
    if image_type is None:
        return {}
    wanted = [
        r for r in records
        if not r.get("stack_image_type")
        and (r.get("provenance") in _IMAGE_TYPE_DECIDES or r.get("directory_type") in ("func", "dwi", "perf"))
        and not mapping.Classification.from_row(r).first({**mapping.DWI_MAPS, **mapping.PERFUSION_MAPS})
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = list(pool.map(image_type, wanted))
    return {id(r): t for r, t in zip(wanted, found) if t}


def _subject_source(cfg: dict, code: str, fallbacks: list[str]) -> str:
    source = str(cfg.get("subject_identifier_source", "subject_code"))
    if source == "subject_code":
        return source
    return f"subject_code (no {source} identifier)" if code in fallbacks else source


def _run_group(r: dict) -> tuple:
    """Series that would share a name but for ``part`` or the fieldmap suffix."""
    n: naming.SeriesName = r["_name"]
    entities = tuple(e for e in n.entities if e[0] != "part")
    suffix = ("fmap-b0" if _is_b0_family(n, r) else "fmap") if n.role == "fmap" else n.suffix
    return (r["_subject"], r["_session"], n.datatype, n.subfolder, entities, suffix, n.tail)


def _member(r: dict) -> tuple[str, int]:
    return (r["series_instance_uid"], int(r.get("stack_index") or 0))


# What each fieldmap suffix may become once dcm2niix has written the images: two
# series (or stacks) pair in one acquisition only while these do not overlap.
_GRE_KINDS = {"magnitude1", "magnitude2", "phasediff", "phase1", "phase2"}
_FMAP_KINDS = {
    "magnitude": {"magnitude1", "magnitude2"},
    "phasediff": {"phasediff", "phase1", "phase2"},
    "fieldmap": {"fieldmap", "magnitude"},
}


def _is_b0_family(n: naming.SeriesName, r: dict) -> bool:
    """A B0 map (``fieldmap`` + ``magnitude``) rather than a gradient-echo fieldmap."""
    return n.suffix == "fieldmap" or "B0map" in vocabulary.split_list(r.get("construct_csv"))


def _sibling_kinds(n: naming.SeriesName, r: dict, *, split: bool = False, mixed: bool = False) -> set[str]:
    """What a series (or stack) contributes to one acquisition; a repeat starts the
    next run. ``split``: one stack of a series told apart by its stack columns;
    ``mixed``: its images are magnitude and phase (by the classification or the images)."""
    if n.role == "fmap":
        if _is_b0_family(n, r):
            return {n.suffix} if split else {"fieldmap", "magnitude"}
        if split:  # a stack named by what it holds (magnitude2, phase1 …)
            return set(_FMAP_KINDS.get(n.suffix, {n.suffix})) if n.suffix == "phasediff" else {n.suffix}
        if mixed or {"Magnitude", "Phase"} <= set(vocabulary.split_list(r.get("construct_csv"))):
            return set(_GRE_KINDS)
        return set(_FMAP_KINDS.get(n.suffix, {n.suffix}))
    part = n.entity("part")
    # A series without ``part`` may hold magnitude and phase images (dcm2niix
    # ``_ph`` outputs become part-phase): it pairs with nothing.
    return {part} if part else {"image", "mag", "phase", "real", "imag"}


def _images_have_the_last_word(records: list[dict], image_facts) -> None:
    """Fieldmaps are paired, numbered and given ``dir-`` by what their images are."""
    fieldmaps_ = [r for r in records if r["_name"].role in ("fmap", "epi")]
    # Probes are dcm2niix runs (I/O and process start-up): a few at once.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        # A pepolar series is converted whole: only then does dcm2niix show both polarities.
        all_facts = list(pool.map(lambda r: image_facts(r, full=True) if r["_name"].role == "epi" else image_facts(r), fieldmaps_))
    for r, facts in zip(fieldmaps_, all_facts):
        n: naming.SeriesName = r["_name"]
        if facts is None:
            if n.role == "epi" and not n.entity("dir"):
                r["_warnings"].append("no phase_encoding_direction in the table and the images could not be read: named without dir-")
            continue
        if n.role == "epi":
            _epi_direction(r, n, facts)
            continue
        seen = set(facts.kinds)
        said = _classified_kinds(n, r)
        shown = {"fieldmap"} if "fieldmap" in seen else seen
        if not shown or shown == said:
            continue
        suffix = "fieldmap" if "fieldmap" in seen else "phasediff" if "phase" in seen else "magnitude"
        r["_warnings"].append(
            f"classified as a fieldmap {'/'.join(sorted(said))} series ({r.get('construct_csv') or 'no construct'}), "
            f"but its images are {'/'.join(sorted(seen))}: paired and named by the images"
        )
        r["_name"] = replace(n, suffix=suffix)
        r["_kinds"] = _sibling_kinds(r["_name"], r, mixed=seen >= {"magnitude", "phase"})


def _classified_kinds(n: naming.SeriesName, r: dict) -> set[str]:
    """What the classification says a fieldmap series' images are."""
    if n.suffix == "fieldmap":
        return {"fieldmap"}
    if {"Magnitude", "Phase"} <= set(vocabulary.split_list(r.get("construct_csv"))):
        return {"magnitude", "phase"}
    return {"phase"} if n.suffix.startswith("phase") else {"magnitude"}


def _epi_direction(r: dict, n: naming.SeriesName, facts) -> None:
    """``dir-`` of a pepolar fieldmap from its images; a series holding both
    polarities gets none here: its job names each output by its own direction."""
    table_dir = n.entity("dir")
    if len(facts.pe_dirs) > 1:
        r["_warnings"].append(
            f"the series holds both phase-encoding polarities ({', '.join(facts.pe_dirs)}): each image is named "
            "by its own direction" + (f" (phase_encoding_direction {table_dir} in the table ignored)" if table_dir else "")
        )
        r["_name"] = n.with_entity("dir", None)
        return
    if facts.pe_dir and table_dir and facts.pe_dir != table_dir:
        r["_warnings"].append(
            f"phase_encoding_direction {table_dir} in the table, but the images encode {facts.pe_dir} "
            f"(PhaseEncodingDirection {facts.pe_direction}): named dir-{facts.pe_dir}, by the images"
        )
    if facts.pe_dir:
        r["_name"] = naming.with_entities(n, dir=facts.pe_dir)
    elif not table_dir:
        r["_warnings"].append(
            "no phase_encoding_direction in the table and " + (facts.note or "the images do not say") + ": named without dir-"
        )


# The classification axes a name may have to show, in the order their labels join ``acq``.
_AXES = ("technique", "modifiers", "constructs", "provenance", "acceleration")
# Told apart already by part-/fieldmap suffixes, or shown by an entity of their own.
_SHOWN_CONSTRUCTS = {"Magnitude", "Phase", "Real", "Imaginary", "B0map"} | set(mapping.CONSTRUCT_ENTITIES)


def _axis_values(r: dict) -> dict[str, tuple[str, ...]]:
    c = mapping.Classification.from_row(r)
    if r["_name"].role == "fmap":  # its images, not its construct words, pair a fieldmap
        c = replace(c, constructs=frozenset())
    return {
        "technique": (c.technique,) if c.technique else (),
        "modifiers": tuple(m for m in vocabulary.MODIFIERS if m in c.modifiers) + tuple(sorted(c.modifiers - set(vocabulary.MODIFIERS))),
        "constructs": tuple(sorted(c.constructs - _SHOWN_CONSTRUCTS)),
        "provenance": (c.provenance,) if c.provenance != "RawRecon" else (),
        "acceleration": tuple(sorted(c.acceleration)),
        "base": (c.base,),
    }


def _tell_classifications_apart(records: list[dict]) -> None:
    """The naming principle: series whose classifications differ never share a name
    (told apart by ``run-`` only). Where they would, the axes on which they differ
    (technique, modifiers, …) are added to ``acq``; repeats keep sharing a name."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[_run_group(r)].append(r)
    for members in groups.values():
        values = [_axis_values(r) for r in members]
        signatures = {tuple(v.items()) for v in values}
        if len(signatures) < 2:
            continue
        differing = [axis for axis in (*_AXES, "base") if len({v[axis] for v in values}) > 1]
        for r, v in zip(members, values):
            tokens = [t for axis in differing for t in v[axis]]
            if tokens:
                n: naming.SeriesName = r["_name"]
                r["_name"] = naming.with_entities(n, acq=naming.join_labels([n.entity("acq") or "", *tokens]))
        # A last resort, should two different classifications still meet on one name.
        by_name: dict[tuple, set] = defaultdict(set)
        for r, v in zip(members, values):
            by_name[_run_group(r)].add(tuple(v.items()))
        for r, v in zip(members, values):
            if len(by_name[_run_group(r)]) > 1:
                digest = hashlib.sha1(repr(sorted(v.items())).encode()).hexdigest()[:4]
                n = r["_name"]
                r["_name"] = naming.with_entities(n, acq=naming.join_labels([n.entity("acq") or "", f"c{digest}"]))


def _unknown_value_warnings(records: list[dict], table_path: str) -> list[str]:
    """One warning per (column, value) outside the vocabulary, naming its lines and names."""
    by_line = {int(r["_line"]): r for r in records}
    warnings = []
    for (column, value), lines in sorted(vocabulary.unknown_values(records).items()):
        names = []
        for line in lines:
            r = by_line[line]
            n: naming.SeriesName = r["_name"]
            names.append(naming.stem("X", None, n.entities, n.suffix, n.tail).removeprefix("sub-X_"))
        shown = ", ".join(dict.fromkeys(names[:3])) + (" …" if len(set(names)) > 3 else "")
        text = (
            f"{Path(table_path).name}: unknown {column} value {value!r} on line{'s' if len(lines) > 1 else ''} "
            f"{', '.join(map(str, lines))} — named as {shown}"
        )
        warnings.append(text)
        for line in lines:
            by_line[line]["_warnings"].append(f"unknown {column} value {value!r} (not in the classifier's vocabulary): named as {names[lines.index(line)]}")
    return warnings


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
    write_if_changed(excluded_tsv, tsv.to_text(plan.excluded, EXCLUDED_COLUMNS))
    return changed
