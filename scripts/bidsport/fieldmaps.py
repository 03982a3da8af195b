"""Fieldmap linkage: ``B0FieldIdentifier`` on fieldmaps, ``B0FieldSource`` (and,
optionally, ``IntendedFor`` as BIDS URIs) on the images they correct.

Pure planning (:func:`link_fieldmaps`) from the final file names and acquisition
times; the dataset step applies it to the sidecars. Matching, per subject and
session: the fieldmap acquired closest in time *before* the target, else the
closest after it; targets are func and dwi images (plus anat when configured).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FMAP_SUFFIXES = {"magnitude", "magnitude1", "magnitude2", "phasediff", "phase1", "phase2", "fieldmap", "epi"}


@dataclass(frozen=True)
class Image:
    path: str  # NIfTI path relative to the dataset root
    time: float  # seconds (date ordinal × 86400 + time of day); inf when unknown


def _session_of(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[1].startswith("ses-") else parts[0]


def _fmap_group(path: str) -> str:
    """Files of one fieldmap acquisition share everything but suffix, dir and part."""
    name = path.rsplit("/", 1)[-1].split(".")[0]
    pieces = name.split("_")
    kept = [p for p in pieces[:-1] if not p.startswith(("dir-", "part-"))]
    return "_".join(kept)


def link_fieldmaps(images: list[Image], targets: tuple[str, ...] = ("func", "dwi")) -> tuple[dict[str, str], dict[str, str]]:
    """(identifier per fieldmap file, source identifier per target file)."""
    identifiers: dict[str, str] = {}
    group_time: dict[tuple[str, str], float] = {}
    for img in images:
        parts = img.path.split("/")
        suffix = parts[-1].split(".")[0].rsplit("_", 1)[-1]
        if len(parts) >= 2 and parts[-2] == "fmap" and suffix in FMAP_SUFFIXES:
            group = _fmap_group(img.path)
            ident = re.sub(r"[^A-Za-z0-9]", "", group.replace("sub-", "").replace("ses-", "")) or "fmap"
            identifiers[img.path] = f"b0{ident}"
            key = (_session_of(img.path), identifiers[img.path])
            group_time[key] = min(group_time.get(key, float("inf")), img.time)
    sources: dict[str, str] = {}
    for img in images:
        parts = img.path.split("/")
        if len(parts) < 2 or parts[-2] not in targets:
            continue
        session = _session_of(img.path)
        candidates = [(t, ident) for (ses, ident), t in group_time.items() if ses == session]
        if not candidates:
            continue
        before = [c for c in candidates if c[0] <= img.time]
        chosen = max(before) if before else min(candidates, key=lambda c: (c[0] - img.time, c[1]))
        sources[img.path] = chosen[1]
    return identifiers, sources
