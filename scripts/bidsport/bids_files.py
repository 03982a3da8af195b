"""Which exported files BIDS reads as raw data, and the ``.bidsignore`` that hides
the rest (routing folders, names the schema does not know, incomplete fieldmaps);
a NIfTI image's sidecar; the names a dataset README may have."""

from __future__ import annotations

import fnmatch

from . import bids_schema

NIFTI_EXTS = (".nii.gz", ".nii")
DATATYPES = {"anat", "dwi", "func", "fmap", "perf"}
# Valid names whose data BIDS accepts only with companions DICOM does not give us
# (ASL needs aslcontext.tsv and labeling metadata such as M0Type): exported, but
# listed in .bidsignore until a person adds them.
NEEDS_COMPANIONS = {"asl"}
# The dataset's README: ours, or the user's own, which is never overwritten (the
# ledger checks only that one is there).
README_NAMES = ("README", "README.md")


EXTENSIONS = (*NIFTI_EXTS, ".json", ".bval", ".bvec", ".tsv")


def split_extension(name: str) -> tuple[str, str]:
    """``sub-1_T1w.nii.gz`` → (``sub-1_T1w``, ``.nii.gz``); a path keeps its folders."""
    ext = next((e for e in EXTENSIONS if name.endswith(e)), "")
    return name[: len(name) - len(ext)], ext


def entities_and_suffix(stem: str) -> tuple[dict[str, str], str]:
    """``sub-1_ses-A_echo-2_bold`` → ({sub: 1, ses: A, echo: 2}, ``bold``)."""
    pieces = stem.rsplit("/", 1)[-1].split("_")
    return dict(p.split("-", 1) for p in pieces[:-1] if "-" in p), pieces[-1]


def split_name(rel: str) -> tuple[str | None, bool, dict, str, str]:
    """(datatype, in_subfolder, entities, suffix, extension) of a dataset path: the
    one parser of BIDS file names (sidecars, fieldmaps, QC and the series job use it)."""
    parts = rel.split("/")
    stem, ext = split_extension(parts[-1])
    ents, suffix = entities_and_suffix(stem)
    folders = [p for p in parts[:-1] if not p.startswith(("sub-", "ses-"))]
    datatype = folders[0] if folders else None
    return datatype, len(folders) > 1, ents, suffix, ext


def sidecar_of(nifti: str) -> str:
    """The JSON sidecar beside a NIfTI image."""
    return nifti[: -len(".nii.gz")] + ".json" if nifti.endswith(".nii.gz") else nifti[: -len(".nii")] + ".json"


def is_raw_file(rel: str, incomplete: frozenset[str] | set[str] = frozenset()) -> bool:
    """Whether the validator accepts ``rel`` as raw data (``incomplete``: files whose
    sidecar lacks schema-required keys, which are exported but ignored)."""
    if rel in incomplete:
        return False
    datatype, in_subfolder, ents, suffix, ext = split_name(rel)
    if datatype not in DATATYPES or in_subfolder or not rel.startswith("sub-") or suffix in NEEDS_COMPANIONS:
        return False
    return bids_schema.is_raw_name(datatype, frozenset(ents), suffix, ext)


def is_raw_image(rel: str, incomplete: frozenset[str] | set[str] = frozenset()) -> bool:
    """A NIfTI image the validator accepts as raw data (listed in scans.tsv, linked to fieldmaps)."""
    return rel.endswith(NIFTI_EXTS) and is_raw_file(rel, incomplete)


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
