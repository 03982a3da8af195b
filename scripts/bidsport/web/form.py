"""The form: from its fields to a validated config, and the preview.

Validation reuses the workflow's own checks: the config schema
(workflow/schemas/config.schema.yaml) and bidsport.safety. The preview and the
counts come from bidsport.plan (apply_filters, build_plan) in-process; nothing is
written anywhere.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from .. import naming, overrides, safety, settings
from ..formats import NIFTI as NIFTI_FORMATS
from ..filters import apply_filters
from ..plan import NothingToExport, build_plan
from ..table import TableError, schema_dir
from .cohorts import TABLE_KEYS, WEB_ONLY_KEYS, Cohort

FORMATS = ("dcm", "nii", "nii.gz")
FILTERS = ("include_intents", "exclude_intents", "include_provenance", "exclude_provenance")
# Config keys the form sets; every other key of --config passes through unchanged.
FORM_KEYS = ("output_dir", "output_mode", "layout", *FILTERS, "subject_identifier_source", "overwrite",
             "convert_workers", "copy_workers")  # fmt: skip
# Schema path (first element) -> form field that shows the message.
FIELD_OF_KEY = {"output_mode": "formats"}


def config_schema() -> dict:
    with open(schema_dir() / "config.schema.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def intents() -> list[str]:
    return list(config_schema()["properties"]["include_intents"]["items"]["enum"])


@dataclass
class Checked:
    """A form checked against the workflow's rules: a config, or messages by field."""

    config: dict
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def build_config(form: dict, defaults: dict, cohort_ident: str) -> dict:
    """The export's config: --config's keys, the cohort, then the form's values."""
    cfg = {k: v for k, v in defaults.items() if k not in WEB_ONLY_KEYS}
    if cohort_ident.startswith("table:"):
        cfg["series_table"] = cohort_ident[len("table:"):]
        cfg.pop("nils_cohort", None)
        cfg.pop("nils_database_url", None)
    elif cohort_ident.startswith("db:"):
        for key in TABLE_KEYS:  # the database replaces the tables (never both)
            cfg.pop(key, None)
        cfg["nils_cohort"] = cohort_ident[len("db:"):]
    output = str(form.get("output_dir") or "").strip()
    cfg["output_dir"] = str(Path(output).expanduser().absolute()) if output else ""
    formats = [f for f in FORMATS if f in (form.get("formats") or [])]
    cfg["output_mode"] = formats[0] if len(formats) == 1 else formats
    cfg["layout"] = form.get("layout") or "bids"
    for name in FILTERS:
        values = [str(v) for v in (form.get(name) or [])]
        cfg[name] = values
    if not cfg["include_provenance"]:
        cfg["include_provenance"] = None  # null = every provenance
    source = str(form.get("subject_identifier_source") or "subject_code")
    cfg["subject_identifier_source"] = int(source) if source.isdigit() else source
    cfg["overwrite"] = form.get("overwrite") or "skip"
    for name in ("convert_workers", "copy_workers"):
        cfg[name] = _integer(form.get(name))
    if cfg["output_dir"]:  # the review table's decisions, once the page saved any
        saved = overrides.table_path(cfg["output_dir"])
        if saved.is_file():
            cfg["overrides_table"] = str(saved)
    return cfg


def _integer(value):
    text = str(value if value is not None else "").strip()
    try:
        return int(text)
    except ValueError:
        return text  # the schema says what is wrong with it


def check(form: dict, defaults: dict, cohort: Cohort | None, cohort_ident: str, cohort_problem: str | None = None) -> Checked:
    cfg = build_config(form, defaults, cohort_ident)
    errors: dict[str, str] = {}
    if cohort is None:
        errors["cohort"] = cohort_problem or "Choose a cohort."
    if not cfg["output_dir"]:
        errors["output_dir"] = "Output directory is required: the folder the dataset goes to."
    if not cfg["output_mode"]:
        errors["formats"] = "Choose at least one format."
    for err in jsonschema.Draft202012Validator(config_schema()).iter_errors(cfg):
        name = str(err.path[0]) if err.path else "_form"
        name = FIELD_OF_KEY.get(name, name)
        errors.setdefault(name, _schema_message(name, err))
    if sum(f in NIFTI_FORMATS for f in (cfg["output_mode"] if isinstance(cfg["output_mode"], list) else [cfg["output_mode"]])) > 1:
        errors["formats"] = "Choose at most one NIfTI format: NIfTI (nii) or Compressed NIfTI (nii.gz)."
    if "output_dir" not in errors:
        problem = output_problem(Path(cfg["output_dir"]), Path(str(cfg.get("dicom_root", ""))), cfg["overwrite"])
        if problem:
            errors["output_dir" if not problem.startswith("overwrite: clean") else "overwrite"] = problem
    return Checked(cfg, errors)


def _schema_message(name: str, err: jsonschema.ValidationError) -> str:
    if name in ("convert_workers", "copy_workers"):
        return "Enter a whole number of at least 1."
    if err.validator == "enum":
        return f"{err.instance!r} is not one of {', '.join(map(str, err.validator_value))}."
    return err.message


def output_problem(output: Path, dicom_root: Path, overwrite: str) -> str | None:
    """Why the workflow would refuse this output folder (None if it would not)."""
    try:
        safety.check_output_location(output, dicom_root)
    except safety.SafetyError as exc:
        return str(exc)
    if output.exists() and not output.is_dir():
        return f"{output} exists and is not a folder."
    existing = next((p for p in [output, *output.parents] if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot create or write {output}: {existing} is not a writable folder."
    if overwrite == "clean":
        reason = safety.clean_refusal(output, dicom_root)
        if reason:
            return f"overwrite: clean refused, nothing would be deleted: {reason}"
    holder = lock_holder(output)
    if holder:
        return f"another bidsport run is exporting to {output} ({holder}); wait for it to finish"
    return None


def lock_holder(output: Path) -> str | None:
    """Who holds the output folder's lock (bidsport.safety), without creating anything."""
    path = output / safety.STATE_DIR / "lock"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def filter_counts(cohort: Cohort, form: dict, defaults: dict) -> dict:
    """How many series the filters keep, and how many each removed (filters.apply_filters)."""
    cfg = build_config(form, defaults, cohort.ident)
    kept, _, removed = apply_filters(cohort.rows, cfg)
    return {"total": int(len(cohort.rows)), "kept": int(len(kept)), "removed": removed}


def preview(checked: Checked, cohort: Cohort) -> dict:
    """The plan of an export, computed in-process by bidsport.plan; writes nothing.

    Its rows are the review table's: every planned series, and the series the
    overrides table excludes (so that the page can bring them back). A decision the
    plan refuses (an invalid or colliding name) is shown as an error, over the plan
    without the overrides, its series marked."""
    cfg = settings.resolve_paths(checked.config)
    result: dict = {"rows": [], "removed": {}, "excluded": [], "warnings": [], "errors": [], "overrides": cfg.get("overrides_table") or ""}
    rows, _, removed = apply_filters(cohort.rows, cfg)
    result["removed"] = removed
    result["kept"], result["total"] = int(len(rows)), int(len(cohort.rows))
    refused: set = set()
    try:
        identifiers = cohort.identifiers(cfg)
        try:
            plan = build_plan(cohort.rows, cfg, dicom_root=Path(cfg["dicom_root"]), identifiers=identifiers, table_path=cohort.table_path)
        except overrides.OverrideError as exc:
            result["errors"].append(str(exc))
            refused = exc.keys
            cfg = {k: v for k, v in cfg.items() if k != "overrides_table"}
            plan = build_plan(cohort.rows, cfg, dicom_root=Path(cfg["dicom_root"]), identifiers=identifiers, table_path=cohort.table_path)
    except NothingToExport as exc:
        result["errors"].append(str(exc))
        return result
    except (TableError, ValueError) as exc:  # CohortError is a ValueError
        result["errors"].append(str(exc))
        return result
    for e in plan.entries:
        result["rows"].append(review_row(e, refused))
    for x in plan.excluded:
        if overrides.excluded_here(x):
            result["rows"].append(excluded_row(x))
    result["rows"].sort(key=lambda r: r["line"])  # an excluded series stays where it was
    result["excluded"] = [{"line": x.get("line", ""), "series": x.get("series_description") or x.get("series_instance_uid", ""), "reason": x["reason"]} for x in plan.excluded]
    result["warnings"] = warnings(plan, cohort, cfg)
    return result


def review_row(e, refused: set) -> dict:
    """One planned series as the review table shows it."""
    nifti = next((f for f in e.formats if f in NIFTI_FORMATS), None)
    raw = naming.is_raw_bids(e.datatype, e.subfolder, e.entities, e.suffix, e.tail, f".{nifti or 'nii.gz'}", bool(e.session))
    return {
        "key": e.key,
        "line": e.line,
        "uid": e.series_instance_uid,
        "stack_index": e.stack_index,
        "subject": e.subject,
        "session": e.session or "",
        "series": e.series_description or e.series_instance_uid,
        "description": e.series_description,
        "intent": e.directory_type,
        "provenance": e.provenance,
        "classification": e.classification,
        "datatype": e.datatype,
        "task": dict(e.entities).get("task", ""),
        "entities": {k: v for k, v in e.entities},
        "destinations": destinations(e),
        "raw_bids": raw,
        "collides": (e.series_instance_uid, e.stack_index) in refused,
        "override": " | ".join(w for w in e.warnings if w.startswith("override ")),
        "excluded": False,
    }


def excluded_row(x: dict) -> dict:
    """A series the overrides table excludes, for the review table."""
    return {
        "key": "", "line": int(x.get("line") or 0), "uid": x.get("series_instance_uid", ""), "stack_index": int(x.get("stack_index") or 0),
        "subject": x.get("subject_code", ""), "session": "", "series": x.get("series_description") or x.get("series_instance_uid", ""),
        "description": x.get("series_description", ""), "intent": x.get("directory_type", ""), "provenance": x.get("provenance", ""),
        "classification": "", "datatype": "", "task": "", "entities": {}, "destinations": [], "raw_bids": True, "collides": False,
        "override": x.get("reason", ""), "excluded": True,
    }  # fmt: skip


def save_decision(cfg: dict, target: dict, column: str, value: str) -> Path:
    """Record one review-table edit in <output>/code/bidsport/overrides.tsv.

    ``target``: ``uid`` and ``stack_index`` (this series), or ``description`` and
    ``scope: "description"`` (a rule for every series with this description). The
    first edit starts from the config's own overrides_table, if it names one."""
    path = overrides.table_path(cfg["output_dir"])
    source = path if path.is_file() else (Path(cfg["overrides_table"]) if cfg.get("overrides_table") else None)
    rows = overrides.read_rows(source) if source and source.is_file() else []
    if target.get("scope") == "description":
        selectors = overrides.description_rule(str(target.get("description") or ""))
        if column == "task":  # a task rule names BOLD runs, never an anat image with the same description
            selectors["directory_type"] = "func"
    else:
        selectors = {"series_instance_uid": str(target.get("uid") or ""), "stack_index": str(target.get("stack_index") or "0")}
        if not selectors["series_instance_uid"]:
            raise ValueError("no series_instance_uid given")
    rows = overrides.set_decision(rows, selectors, column, value)
    overrides.write_rows(path, rows)
    return path


def destinations(entry) -> list[str]:
    """Where a planned series goes, relative to the output folder."""
    out = []
    nifti = next((f for f in entry.formats if f in NIFTI_FORMATS), None)
    if nifti:
        out.append("/".join(p for p in (entry.nifti_dir, f"{entry.stem}.{nifti}") if p))
    if entry.dicom_dir:
        out.append(entry.dicom_dir + "/")
    return out


def warnings(plan, cohort: Cohort, cfg: dict) -> list[str]:
    found = []
    if plan.fallbacks:
        found.append(
            f"no {cfg['subject_identifier_source']} identifier for {', '.join(plan.fallbacks)}: named by subject_code"
        )
    for skipped in cohort.skipped:
        found.append(f"invalid row skipped (lenient): {skipped['reason']}")
    not_raw = sum(1 for e in plan.entries if e.subfolder or e.tail)
    if not_raw:
        found.append(f"{not_raw} series are not raw BIDS (SyMRI, SWI, derived maps ...): exported and listed in .bidsignore")
    output = Path(cfg["output_dir"])
    if output.is_dir() and any(output.iterdir()):
        mode = cfg["overwrite"]
        if mode == "skip":
            found.append(f"{output} is not empty: existing files are kept (overwrite: skip)")
        elif mode == "overwrite":
            found.append(f"{output} is not empty: existing files with planned names are replaced")
        else:
            found.append(f"{output} will be emptied before the export (overwrite: clean)")
    return found
