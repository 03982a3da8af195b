"""Resolve the validated Snakemake config into what the rules and scripts need.

Paths resolve against the working directory (``snakemake -d DIR``). The subset of
keys that change the plan is kept apart (:func:`planning_settings`), so that
editing a key that does not change any name (``copy_workers``) re-runs nothing.
"""

from __future__ import annotations

from pathlib import Path

PATH_KEYS = (
    "series_table", "subjects_table", "subject_identifiers_table", "fieldmap_links_table", "sessions_table",
    "dicom_root", "output_dir",
)  # fmt: skip
# Keys whose value changes the plan (names, filters, formats, overwrite behaviour).
PLANNING_KEYS = (
    "output_mode", "layout", "include_intents", "exclude_intents", "include_provenance",
    "exclude_provenance", "overwrite", "subject_identifier_source", "symri_subfolder", "lenient",
    "include_manual_review",
)  # fmt: skip


def resolve_paths(config: dict, workdir: Path | None = None) -> dict:
    """Config with absolute paths and ``output_mode`` as a list (``_formats``)."""
    base = Path(workdir) if workdir else Path.cwd()
    out = dict(config)
    for key in PATH_KEYS:
        if out.get(key):
            p = Path(str(out[key])).expanduser()
            out[key] = str(p if p.is_absolute() else (base / p).absolute())
    mode = out.get("output_mode", "nii.gz")
    out["_formats"] = [mode] if isinstance(mode, str) else list(mode)
    return out


def planning_settings(config: dict) -> dict:
    return {k: config.get(k) for k in PLANNING_KEYS}


def wants_nifti(config: dict) -> bool:
    return any(f in ("nii", "nii.gz") for f in config["_formats"])


def wants_dicom(config: dict) -> bool:
    return "dcm" in config["_formats"]
