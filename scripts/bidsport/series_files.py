"""Which files a series job reads, and how dcm2niix is pointed at exactly those.

The instances table lists a stack's files; otherwise the header scan finds them, and
for one stack of several the stack columns pick its own files (also for its DICOM copy).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import faults
from .dicom_scan import Scan, stack_files
from .outcomes import SeriesFailed


def symlink_folder(files: list[str], folder: Path) -> Path:
    """A folder of links to just this series' files, for dcm2niix to convert."""
    folder.mkdir(parents=True)
    for i, path in enumerate(files):
        os.symlink(os.path.abspath(path), folder / f"{i:06d}_{os.path.basename(path)}")
    return folder

def listed_files(spec: dict) -> Scan:
    """The stack's exact files (spec ``files``); every one must exist: a listed file
    that is missing fails the series (naming it) rather than exporting part of it."""
    files = [str(f) for f in spec["files"]]
    if not files:
        raise SeriesFailed(f"no file is listed for series {spec['series_instance_uid']} stack {spec.get('stack_index', 0)} (instances table)")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise faults.MachineFault(f"source vanished: {len(missing)} of the {len(files)} listed DICOM file(s) of this stack are missing: {missing[0]}{more}")
    return Scan(files=files, pure=False)

def stack_copy(spec: dict, files: list[str], warnings: list[str]) -> list[str]:
    """The files of this row's stack, where the series has several and the table
    says what this one holds (``spec["stack"]``): a DICOM copy holds only its own
    stack. Multi-frame files that hold several stacks are copied with a warning."""
    stack = spec.get("stack")
    if int(spec.get("n_stacks") or 1) <= 1 or not stack:
        return files
    try:
        picked = stack_files(files, stack)
    except ValueError as exc:
        raise SeriesFailed(f"stack {spec.get('stack_index', 0)}: {exc}") from None
    if not picked.files and not picked.undecidable:
        raise SeriesFailed(f"stack {spec.get('stack_index', 0)} of series {spec['series_instance_uid']}: {picked.note}")
    if picked.note:
        warnings.append(f"DICOM copy of stack {spec.get('stack_index', 0)}: {picked.note}" + (" (copied whole)" if picked.undecidable else ""))
    keep = set(picked.files + picked.undecidable)
    return [f for f in files if f in keep]

def is_split(spec: dict) -> bool:
    """One stack of several, which the table describes (its columns pick its images)."""
    return int(spec.get("n_stacks") or 1) > 1 and bool(spec.get("stack"))

def own_stack_files(spec: dict, files: list[str]) -> list[str] | None:
    """This stack's files, where the headers tell them apart cleanly, so that dcm2niix
    converts only them; None (convert the whole series, then pick the stack's outputs
    by their sidecars) where they do not: multi-frame files, or no file matches."""
    if not is_split(spec):
        return None
    try:
        picked = stack_files(files, spec["stack"])
    except ValueError:
        return None  # select_stack gives the clear error on the outputs
    return picked.files if picked.files and not picked.undecidable else None

def file_list(files: list[str], scratch: Path) -> Path:
    """dcm2niix input restricted to ``files``: a text file listing them (read with
    ``-s y``, which dcm2niix.convert adds for a file); same output as the folder."""
    if any("\n" in str(f) for f in files):  # a name a list cannot hold
        return symlink_folder(files, scratch / "src")
    listing = scratch / "files.txt"
    listing.write_text("".join(f"{os.path.abspath(f)}\n" for f in files), encoding="utf-8")
    return listing
