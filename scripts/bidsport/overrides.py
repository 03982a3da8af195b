"""The user's own decisions: the overrides table (config ``overrides_table``).

One row per decision (docs/curation.md). *Selector* columns choose the series (empty =
any; every given one must match); *action* columns say what to do with them: exclude
the series, set its task, set entity values, or move it to another BIDS datatype and
suffix. A row keyed by ``series_instance_uid`` wins over rule rows; among rules the
later row wins. The plan applies the table after the classifier has named every
series (:func:`apply`), and checks the final names (:meth:`Applied.check_names`);
every problem names the table's line, before any job runs.

The export page edits the same table (:func:`set_decision`, :func:`write_rows`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import bids_schema, layout
from .fsutil import write_if_changed
from .table import TableError

SELECTOR_COLUMNS = ("series_instance_uid", "stack_index", "series_description", "directory_type", "subject_code", "session_id")
ENTITY_COLUMNS = ("task", "acq", "run", "dir", "ce", "rec")
ACTION_COLUMNS = ("exclude", "reason", *ENTITY_COLUMNS, "datatype", "suffix")
COLUMNS = (*SELECTOR_COLUMNS, *ACTION_COLUMNS)
OPTIONAL_COLUMNS = ("comment",)  # free text for the reviewer; never read
DATATYPES = ("anat", "dwi", "func", "fmap", "perf")  # the MRI datatypes bidsport writes
# What cannot become raw data under another name: it is not an acquisition.
NOT_MOVABLE_KINDS = ("derived", "synthetic")
EXCLUDED_REASON = "override {name} line {lines}: {why}"  # the report's reason for an excluded series
FILE_NAME = "overrides.tsv"  # <output>/code/bidsport/overrides.tsv, where the page saves it
_LABEL = re.compile(r"[A-Za-z0-9]+")


class OverrideError(TableError):
    """The overrides table is invalid, or a decision gives an invalid or colliding name.

    ``keys`` holds the (series_instance_uid, stack_index) of the series concerned."""

    def __init__(self, problems: list[str], keys: set[tuple[str, int]] | None = None):
        super().__init__(problems)
        self.keys = set(keys or ())


@dataclass(frozen=True)
class Override:
    """One row of the table."""

    where: str  # "<path>:<line>", for messages
    line: int
    selectors: dict
    actions: dict

    @property
    def by_uid(self) -> bool:
        return bool(self.selectors.get("series_instance_uid"))

    def matches(self, row: dict) -> bool:
        s = self.selectors
        if "series_instance_uid" in s and row.get("series_instance_uid", "") != s["series_instance_uid"]:
            return False
        if "stack_index" in s and int(row.get("stack_index") or 0) != int(s["stack_index"]):
            return False
        if "series_description" in s and not re.fullmatch(s["series_description"], row.get("series_description", "") or ""):
            return False
        for column in ("directory_type", "subject_code"):
            if column in s and (row.get(column, "") or "") != s[column]:
                return False
        if "session_id" in s and s["session_id"] not in (row.get("session_id", "") or "", row.get("_session") or ""):
            return False
        return True

    def shown(self) -> str:
        """What the row does, in a few words (``exclude``, ``task-nback`` …)."""
        parts = ["exclude" if v == "1" else "keep" for k, v in self.actions.items() if k == "exclude"]
        parts += [f"{k}-{v}" for k, v in self.actions.items() if k in ENTITY_COLUMNS]
        parts += [f"{k} {v}" for k, v in self.actions.items() if k in ("datatype", "suffix")]
        return ", ".join(parts)


@dataclass
class Overrides:
    path: Path
    rows: list[Override]


def excluded_here(record: dict) -> bool:
    """Whether a plan's excluded record was excluded by the overrides table."""
    return str(record.get("reason", "")).startswith(EXCLUDED_REASON.split("{", 1)[0])


def table_path(output_dir: str | os.PathLike) -> Path:
    """Where the export page keeps the overrides of an output folder."""
    return layout.code(output_dir) / FILE_NAME


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The table as written (text cells; ``_line`` = its line in the file)."""
    path = Path(path)
    if path.suffix.lower() not in (".tsv", ".csv"):
        raise OverrideError([f"{path}: unsupported overrides table format {path.suffix!r} (use .tsv or .csv)"])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OverrideError([f"{path}: cannot read the overrides table: {exc.strerror or exc}"]) from None
    reader = csv.DictReader(io.StringIO(text), delimiter="," if path.suffix.lower() == ".csv" else "\t")
    rows = []
    for row in reader:
        clean = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if any(clean.values()):
            rows.append({**clean, "_line": reader.line_num})
    unknown = [c for c in (reader.fieldnames or []) if c.strip() not in (*COLUMNS, *OPTIONAL_COLUMNS)]
    if unknown:
        raise OverrideError([f"{path}:1: unknown column(s) {', '.join(map(repr, unknown))}; columns are {', '.join(COLUMNS)}"])
    return rows


def load(path: str | os.PathLike) -> Overrides:
    """Read and check the table; every problem names its line."""
    path = Path(path)
    problems: list[str] = []
    parsed: list[Override] = []
    for row in read_rows(path):
        where = f"{path}:{row['_line']}"
        selectors = {k: row[k] for k in SELECTOR_COLUMNS if row.get(k)}
        actions = {k: row[k] for k in ACTION_COLUMNS if row.get(k)}
        found = _row_problems(selectors, actions)
        problems += [f"{where}: {p}" for p in found]
        if not found:
            parsed.append(Override(where, int(row["_line"]), selectors, actions))
    if problems:
        raise OverrideError(problems)
    return Overrides(path, parsed)


def _row_problems(selectors: dict, actions: dict) -> list[str]:
    problems = []
    if not any(k for k in actions if k != "reason"):
        problems.append(f"no action: give exclude, {', '.join(ENTITY_COLUMNS)}, datatype or suffix")
    if "stack_index" in selectors and not selectors["stack_index"].isdigit():
        problems.append(f"column 'stack_index': {selectors['stack_index']!r} is not a whole number")
    if "series_description" in selectors:
        try:
            re.compile(selectors["series_description"])
        except re.error as exc:
            problems.append(f"column 'series_description': {selectors['series_description']!r} is not a regular expression ({exc})")
    if actions.get("exclude", "0") not in ("0", "1"):
        problems.append(f"column 'exclude': {actions['exclude']!r} is not 1 (exclude) or 0 (keep)")
    for key in ENTITY_COLUMNS:
        value = actions.get(key)
        if value is None:
            continue
        if key == "run":
            if not value.isdigit() or int(value) < 1:
                problems.append(f"column 'run': {value!r} is not a run number (1, 2, …)")
        elif not _LABEL.fullmatch(value):
            problems.append(f"column {key!r}: {value!r} is not a BIDS label (letters and digits only)")
    if actions.get("datatype") and actions["datatype"] not in DATATYPES:
        problems.append(f"column 'datatype': {actions['datatype']!r} is not one of {', '.join(DATATYPES)}")
    if actions.get("suffix") and not _LABEL.fullmatch(actions["suffix"]):
        problems.append(f"column 'suffix': {actions['suffix']!r} is not a BIDS suffix")
    return problems


# --------------------------------------------------------------------------- applying


@dataclass
class Applied:
    """What the table did to a plan: warnings, and who shaped which series."""

    warnings: list[str] = field(default_factory=list)
    shaped: dict[tuple[str, int], list[Override]] = field(default_factory=dict)
    runs: dict[tuple[str, int], int] = field(default_factory=dict)  # run numbers the table asks for

    def check_names(self, entries) -> None:
        """Final names (run numbers given): a decision that collides is an error."""
        problems: list[str] = []
        keys: set[tuple[str, int]] = set()
        for e in entries:
            key = (e.series_instance_uid, e.stack_index)
            wanted = self.runs.get(key)
            if wanted is not None and e.run is not None and e.run != wanted:
                lines = ", ".join(o.where for o in self.shaped[key])
                problems.append(
                    f"{lines}: run-{wanted:02d} for {e.series_description or e.series_instance_uid}, but other series share "
                    f"its name {e.stem}: give each its own run"
                )
                keys.add(key)
        owners: dict[str, list] = {}
        for e in entries:
            for where in _destinations(e):
                owners.setdefault(where, []).append(e)
        for where, sharing in owners.items():
            shaped = [e for e in sharing if (e.series_instance_uid, e.stack_index) in self.shaped]
            if len(sharing) < 2 or not shaped:
                continue
            lines = ", ".join(dict.fromkeys(o.where for e in shaped for o in self.shaped[(e.series_instance_uid, e.stack_index)]))
            names = ", ".join(e.series_description or e.series_instance_uid for e in sharing)
            problems.append(f"{lines}: {len(sharing)} series would be written to {where} ({names})")
            keys |= {(e.series_instance_uid, e.stack_index) for e in sharing}
        if problems:
            raise OverrideError(problems, keys)


def _destinations(e) -> list[str]:
    found = []
    if e.nifti_dir is not None:
        found.append(f"{e.nifti_dir}/{e.stem}")
    if e.dicom_dir is not None:
        found.append(e.dicom_dir)
    return found


def apply(records: list[dict], excluded: list[dict], cfg: dict) -> Applied:
    """Apply ``cfg['overrides_table']`` (if any) to the named plan records, in place.

    ``records`` are plan rows with their ``_name`` (naming.SeriesName), ``_line``,
    ``_session`` and ``_warnings``; excluded series leave ``records`` for ``excluded``.
    """
    applied = Applied()
    if not cfg.get("overrides_table"):
        return applied
    table = load(cfg["overrides_table"])
    name = table.path.name
    rules = [o for o in table.rows if not o.by_uid]
    by_uid = [o for o in table.rows if o.by_uid]
    used: set[int] = set()
    problems: list[str] = []
    bad_keys: set[tuple[str, int]] = set()
    kept = []
    for r in records:
        matching = [o for o in rules if o.matches(r)] + [o for o in by_uid if o.matches(r)]
        if not matching:
            kept.append(r)
            continue
        used |= {o.line for o in matching}
        key = (r["series_instance_uid"], int(r.get("stack_index") or 0))
        applied.shaped[key] = matching
        merged: dict[str, str] = {}
        for o in matching:  # rules in order, then UID rows: the last word wins
            merged.update(o.actions)
        if merged.get("exclude") == "1":
            lines = ", ".join(str(o.line) for o in matching if "exclude" in o.actions)
            why = merged.get("reason") or "excluded by the user"
            excluded.append({
                "line": r["_line"], "subject_code": r.get("subject_code", ""), "series_instance_uid": r["series_instance_uid"],
                "stack_index": r.get("stack_index") or "0", "series_description": r.get("series_description", ""),
                "directory_type": r.get("directory_type", ""), "provenance": r.get("provenance", ""),
                "status": "excluded", "reason": EXCLUDED_REASON.format(name=name, lines=lines, why=why),
            })  # fmt: skip
            continue
        try:
            r["_name"] = renamed(r["_name"], merged)
        except ValueError as exc:
            problems.append(f"{matching[-1].where}: {r.get('series_description') or r['series_instance_uid']}: {exc}")
            bad_keys.add(key)
        if merged.get("run"):
            applied.runs[key] = int(merged["run"])
        shown = "; ".join(f"line {o.line}: {o.shown()}" for o in matching)
        r["_warnings"].append(f"override {name} ({shown})")
        kept.append(r)
    if problems:
        raise OverrideError(problems, bad_keys)
    for o in table.rows:
        if o.line not in used:
            applied.warnings.append(f"{o.where}: matches no planned series ({', '.join(f'{k}={v!r}' for k, v in o.selectors.items()) or 'any'})")
    if not kept:
        raise OverrideError([f"{table.path}: every planned series is excluded by the overrides table"])
    records[:] = kept
    return applied


def renamed(name, actions: dict):
    """A naming.SeriesName with the table's entity, datatype and suffix values;
    ValueError when the BIDS schema does not allow the result."""
    datatype = actions.get("datatype") or name.datatype
    suffix = actions.get("suffix") or name.suffix
    ents = dict(name.entities)
    changes: dict = {}
    if (datatype, suffix) != (name.datatype, name.suffix):
        if name.kind in NOT_MOVABLE_KINDS:
            raise ValueError(f"{name.datatype}/{name.suffix} is {name.kind} data, not an acquisition: it cannot become {datatype}/{suffix}")
        allowed = bids_schema.allowed_entities(datatype, suffix)
        if not allowed:
            raise ValueError(f"the BIDS schema has no raw {datatype}/…_{suffix} file")
        # Entities the classifier gave that the new destination does not take go.
        ents = {k: v for k, v in ents.items() if k in allowed}
        changes = {"datatype": datatype, "suffix": suffix, "subfolder": None, "tail": "", "kind": "raw",
                   "role": _role(datatype, suffix), "multi_suffix": ""}  # fmt: skip
    for key in ENTITY_COLUMNS:
        if actions.get(key):
            ents[key] = f"{int(actions[key]):02d}" if key == "run" else actions[key]
    raw = not (changes.get("subfolder", name.subfolder) or changes.get("tail", name.tail))
    if raw:
        allowed = bids_schema.allowed_entities(datatype, suffix)
        if allowed:
            wrong = [k for k in ENTITY_COLUMNS if actions.get(k) and k not in allowed]
            if wrong:
                raise ValueError(f"{', '.join(f'{k}-' for k in wrong)} is not allowed on {datatype}/…_{suffix} (BIDS schema)")
            if not bids_schema.is_raw_name(datatype, frozenset({"sub", *ents}), suffix, ".nii.gz"):
                raise ValueError(f"{datatype}/…_{suffix} with {', '.join(sorted(ents)) or 'no entities'} is not a valid BIDS name")
    order = bids_schema.entity_order()
    ordered = tuple((k, ents[k]) for k in order if k in ents) + tuple((k, v) for k, v in ents.items() if k not in order)
    return replace(name, entities=ordered, **changes)


def _role(datatype: str, suffix: str) -> str:
    if datatype == "dwi" and suffix == "dwi":
        return "dwi"
    if datatype == "fmap":
        return "epi" if suffix == "epi" else "fmap"
    return "image"


# --------------------------------------------------------------------------- editing (the page)


def set_decision(rows: list[dict], selectors: dict, column: str, value: str) -> list[dict]:
    """The table with ``column`` of the row keyed by exactly ``selectors`` set to
    ``value`` (a new row at the end if there is none; an empty value clears it, and a
    row left without actions goes)."""
    if column not in ACTION_COLUMNS:
        raise ValueError(f"{column!r} is not an action column ({', '.join(ACTION_COLUMNS)})")
    wanted = {k: str(selectors.get(k) or "") for k in SELECTOR_COLUMNS}
    rows = [dict(r) for r in rows]
    target = next((r for r in rows if all((r.get(k) or "") == v for k, v in wanted.items())), None)
    if target is None:
        target = dict(wanted)
        rows.append(target)
    target[column] = str(value or "").strip()
    if column == "exclude" and target[column] != "1":
        target["reason"] = ""
    return [r for r in rows if any(r.get(k) for k in ACTION_COLUMNS if k != "reason")]


def description_rule(description: str) -> dict:
    """Selectors of a rule for every series with exactly this description."""
    return {"series_description": re.escape(description)}


def write_rows(path: str | os.PathLike, rows: list[dict]) -> bool:
    """Write the table (TSV, fixed columns); only rewritten when its content changes."""
    extra = [c for c in OPTIONAL_COLUMNS if any(r.get(c) for r in rows)]
    columns = [*COLUMNS, *extra]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: str(r.get(k) or "").replace("\t", " ").replace("\n", " ") for k in columns})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_if_changed(Path(path), buf.getvalue())
