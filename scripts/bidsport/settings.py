"""Resolve the validated Snakemake config into what the rules and scripts need.

Paths resolve against the working directory (``snakemake -d DIR``). The subset of
keys that change the plan is kept apart (:func:`planning_settings`), so that
editing a key that does not change any name (``copy_workers``) re-runs nothing.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from . import formats, nils_db

PATH_KEYS = (
    "series_table", "instances_table", "subjects_table", "subject_identifiers_table", "fieldmap_links_table",
    "sessions_table", "overrides_table", "dicom_root", "output_dir",
)  # fmt: skip
# With nils_database_url these tables are the snapshot of the database (nils_db.py).
DATABASE_TABLE_KEYS = ("series_table", "instances_table", "subjects_table", "subject_identifiers_table")
# Keys whose value changes the plan (names, filters, formats, overwrite behaviour).
PLANNING_KEYS = (
    "output_mode", "layout", "include_intents", "exclude_intents", "include_provenance",
    "exclude_provenance", "overwrite", "subject_identifier_source", "symri_subfolder", "lenient",
    "include_manual_review",
)  # fmt: skip

# The settings each job reads, and nothing else: the rules pass job_settings(cfg,
# job) as a tracked param, so a changed key re-runs exactly the jobs that read it
# (series jobs read their spec; settings that must not re-run them travel by
# environment: workflow_support.export_job_environment). Tables are also inputs.
JOB_KEYS = {
    "plan": PLANNING_KEYS + (
        "output_dir", "dicom_root", "series_table", "instances_table", "subjects_table", "subject_identifiers_table",
        "fieldmap_links_table", "overrides_table", "nils_cohort",
    ),
    "dataset": (
        "output_dir", "layout", "output_mode", "dataset_name", "dataset_description", "fieldmap_targets",
        "fieldmap_intended_for", "fieldmap_matching", "fieldmap_max_gap_minutes", "series_table", "subjects_table",
        "sessions_table", "fieldmap_links_table",
    ),
}  # fmt: skip


class ConfigError(ValueError):
    """A combination of config keys that cannot work (the schema checks single keys)."""


def check_source(config: dict) -> None:
    """Exactly one source: a series table, or the NILS database and a cohort."""
    database = config.get("nils_database_url")
    if database and config.get("series_table"):
        raise ConfigError(
            "give either series_table or nils_database_url, not both: with nils_database_url the "
            "series table is read from the database (and saved as code/bidsport/series_table.tsv)"
        )
    if not database and not config.get("series_table"):
        raise ConfigError("the config needs series_table (a series table file) or nils_database_url and nils_cohort")
    if database:
        nils_db.check_url(database)  # a password in the URL: refused before anything is written
        if not config.get("nils_cohort"):
            raise ConfigError("nils_database_url needs nils_cohort: the name of the cohort to export")
        given = [k for k in DATABASE_TABLE_KEYS if config.get(k)]
        if given:
            raise ConfigError(f"{', '.join(given)}: read from the NILS database with nils_database_url; remove it from the config")


def resolve_paths(config: dict, workdir: Path | None = None) -> dict:
    """Config with absolute paths and ``output_mode`` as a list (``_formats``).

    With ``nils_database_url``, the table keys point at the database snapshot under
    ``<output_dir>/code/bidsport`` (the same in every process, cluster jobs included).
    """
    base = Path(workdir) if workdir else Path.cwd()
    out = dict(config)
    for key in PATH_KEYS:
        if out.get(key):
            p = Path(str(out[key])).expanduser()
            out[key] = str(p if p.is_absolute() else (base / p).absolute())
    if out.get("nils_database_url") and out.get("output_dir"):
        for key, name in nils_db.SNAPSHOT_FILES.items():  # names only (no database access)
            out[key] = str(Path(out["output_dir"]) / nils_db.SNAPSHOT_DIR / name)
    mode = out.get("output_mode", "nii.gz")
    out["_formats"] = formats.listed(mode)
    return out


def planning_settings(config: dict) -> dict:
    return {k: config.get(k) for k in PLANNING_KEYS}


def job_settings(config: dict, job: str) -> dict:
    """The config keys job ``job`` reads (``JOB_KEYS``), for its tracked params."""
    return {k: config.get(k) for k in JOB_KEYS[job]}


def wants_nifti(config: dict) -> bool:
    return formats.wants_nifti(config["_formats"])


def workflow_dir() -> Path:
    """The bidsport folder holding ``Snakefile`` and ``workflow/``.

    ``$BIDSPORT_WORKFLOW`` if set, else the source tree this package runs from (an
    editable install or the workflow itself), else the current folder: a plain
    ``pip install .`` puts the package in site-packages but not the workflow.
    """
    env = os.environ.get("BIDSPORT_WORKFLOW")
    candidates = [Path(env).expanduser()] if env else [Path(__file__).resolve().parents[2], Path.cwd()]
    for folder in candidates:
        if (folder / "Snakefile").is_file() and (folder / "workflow" / "schemas").is_dir():
            return folder.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"cannot find bidsport's workflow (Snakefile and workflow/) in {tried}: run from the bidsport "
        "folder or set BIDSPORT_WORKFLOW=/path/to/bidsport"
    )


@functools.lru_cache(maxsize=None)
def _schema_properties() -> dict:
    import yaml

    from .table import schema_dir

    return yaml.safe_load((schema_dir() / "config.schema.yaml").read_text(encoding="utf-8"))["properties"]


def schema_default(key: str):
    """A config key's default, from the config schema: the one place defaults live."""
    return _schema_properties()[key].get("default")
