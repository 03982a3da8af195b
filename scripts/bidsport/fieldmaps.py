"""Fieldmap linkage: ``B0FieldIdentifier`` on fieldmaps, ``B0FieldSource`` (and,
optionally, ``IntendedFor`` as BIDS URIs) on the images they correct.

Pure planning (:func:`link_fieldmaps`) from the final file names and acquisition
times; the dataset step applies it to the sidecars. Matching, per subject and
session (``fieldmap_matching``):

* ``closest_before`` (default): the fieldmap acquired closest in time *before* the
  target, else the closest after it;
* ``closest``: the nearest in time on either side (a tie goes to the one before);
* ``before_only``: the closest before the target, else none.

``fieldmap_max_gap_minutes`` drops candidates further than that from the target.
Targets are func and dwi images (plus anat/perf when configured). A per-lab
*links table* (``fieldmap_links_table``) overrides the matching for the series it
lists: a given fieldmap series, or none; :func:`check_links` validates it against
the plan (in the planning checkpoint and again in the dataset step).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .bids_files import entities_and_suffix, split_extension
from .settings import resolve_paths
from .table import TableError, load_fieldmap_links_table

FMAP_SUFFIXES = {"magnitude", "magnitude1", "magnitude2", "phasediff", "phase1", "phase2", "fieldmap", "epi"}
MATCHING_MODES = ("closest_before", "closest", "before_only")


@dataclass(frozen=True)
class Image:
    path: str  # NIfTI path relative to the dataset root
    time: float  # seconds (date ordinal × 86400 + time of day); inf when unknown


def _session_of(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[1].startswith("ses-") else parts[0]


def _fmap_group(path: str) -> str:
    """Files of one fieldmap acquisition share everything but suffix, dir and part."""
    ents, _ = entities_and_suffix(split_extension(path)[0])
    return "_".join(f"{k}-{v}" for k, v in ents.items() if k not in ("dir", "part"))


def is_fieldmap_file(path: str) -> bool:
    parts = path.split("/")
    _, suffix = entities_and_suffix(split_extension(path)[0])
    return len(parts) >= 2 and parts[-2] == "fmap" and suffix in FMAP_SUFFIXES


def _distance(a: float, b: float) -> float:
    """|a - b| in seconds; unknown (inf) when either time is unknown."""
    return abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf


def _choose(candidates: list[tuple[float, str]], time: float, matching: str, max_gap: float | None) -> str | None:
    """The identifier of the fieldmap acquisition a target at ``time`` gets."""
    if max_gap is not None:
        candidates = [c for c in candidates if _distance(c[0], time) <= max_gap]
    if not candidates:
        return None
    before = [c for c in candidates if c[0] <= time]
    if matching == "before_only":
        return max(before)[1] if before else None
    if matching == "closest":
        # nearest first; on a tie the one before, then the later one before / earlier after
        return min(candidates, key=lambda c: (_distance(c[0], time), c[0] > time, -c[0] if c[0] <= time else c[0], c[1]))[1]
    return max(before)[1] if before else min(candidates, key=lambda c: (c[0] - time, c[1]))[1]


def link_fieldmaps(
    images: list[Image],
    targets: tuple[str, ...] = ("func", "dwi"),
    *,
    matching: str = "closest_before",
    max_gap: float | None = None,
    overrides: dict[str, str | None] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(identifier per fieldmap file, source identifier per target file).

    ``max_gap`` is in seconds (None: no limit). ``overrides`` maps a target image's
    path to a file of the fieldmap acquisition it must use (same session), or to
    None for no fieldmap; listed images skip the automatic matching (whatever their
    datatype).
    """
    if matching not in MATCHING_MODES:
        raise ValueError(f"fieldmap_matching {matching!r} is not one of {', '.join(MATCHING_MODES)}")
    identifiers: dict[str, str] = {}
    group_time: dict[tuple[str, str], float] = {}
    for img in images:
        if is_fieldmap_file(img.path):
            group = _fmap_group(img.path)
            ident = re.sub(r"[^A-Za-z0-9]", "", group.replace("sub-", "").replace("ses-", "")) or "fmap"
            identifiers[img.path] = f"b0{ident}"
            key = (_session_of(img.path), identifiers[img.path])
            group_time[key] = min(group_time.get(key, float("inf")), img.time)
    overrides = overrides or {}
    sources: dict[str, str] = {}
    for img in images:
        if img.path in identifiers:
            continue
        session = _session_of(img.path)
        if img.path in overrides:
            fmap = overrides[img.path]
            if fmap is None:
                continue
            if fmap not in identifiers:
                raise ValueError(f"override for {img.path}: {fmap} is not an exported fieldmap file")
            if _session_of(fmap) != session:
                raise ValueError(f"override for {img.path}: {fmap} is from another subject or session")
            sources[img.path] = identifiers[fmap]
            continue
        parts = img.path.split("/")
        if len(parts) < 2 or parts[-2] not in targets:
            continue
        candidates = [(t, ident) for (ses, ident), t in group_time.items() if ses == session]
        chosen = _choose(candidates, img.time, matching, max_gap)
        if chosen is not None:
            sources[img.path] = chosen
    return identifiers, sources


# --------------------------------------------------------------------------- links table


@dataclass(frozen=True)
class LinkOverride:
    """One row of the links table."""

    line: int
    series_instance_uid: str  # the target series
    stack_index: int | None  # None: every stack of the target series
    fieldmap_uid: str | None  # None: the target gets no fieldmap


def read_links(path: str | os.PathLike) -> list[LinkOverride]:
    """The links table as :class:`LinkOverride` rows (file-level checks in table.py)."""
    frame = load_fieldmap_links_table(path)
    links = []
    for r in frame.to_dict("records"):
        stack = r.get("stack_index", "")
        links.append(
            LinkOverride(
                line=int(r["_line"]),
                series_instance_uid=r["series_instance_uid"],
                stack_index=int(stack) if stack != "" else None,
                fieldmap_uid=r["fieldmap_series_instance_uid"] or None,
            )
        )
    return links


def check_links(links: list[LinkOverride], plan_rows: list[dict], path: str, excluded_rows: list[dict] = ()) -> list[str]:
    """Problems (``file:line: ...``) of links-table rows against the plan.

    ``plan_rows``: dicts with series_instance_uid, stack_index, subject, session and
    datatype (plan.tsv rows or plan entries); ``excluded_rows`` say why a series
    is not in the plan.
    """
    by_uid: dict[str, list[dict]] = {}
    for row in plan_rows:
        by_uid.setdefault(str(row["series_instance_uid"]), []).append(row)
    why_not: dict[str, str] = {}
    for row in excluded_rows:
        why_not.setdefault(str(row.get("series_instance_uid", "")), str(row.get("reason", "")))

    def absent(uid: str) -> str:
        reason = why_not.get(uid)
        return f"{uid} is not in the export plan" + (f" (excluded: {reason})" if reason else " (not in the series table)")

    def where(row: dict) -> str:
        return f"sub-{row['subject']}" + (f" ses-{row['session']}" if row.get("session") else "")

    problems: list[str] = []
    for link in links:
        at = f"{path}:{link.line}"
        rows = by_uid.get(link.series_instance_uid, [])
        if link.stack_index is not None:
            rows = [r for r in rows if int(r.get("stack_index") or 0) == link.stack_index]
        if not rows:
            if link.series_instance_uid in by_uid:  # the series is planned, that stack is not
                problems.append(f"{at}: column 'stack_index': series {link.series_instance_uid} has no stack {link.stack_index} in the export plan")
            else:
                problems.append(f"{at}: column 'series_instance_uid': {absent(link.series_instance_uid)}")
            continue
        if any(r["datatype"] == "fmap" for r in rows):
            problems.append(f"{at}: column 'series_instance_uid': {link.series_instance_uid} is itself a fieldmap series, not a target")
            continue
        if link.fieldmap_uid is None:
            continue
        fmaps = by_uid.get(link.fieldmap_uid, [])
        if not fmaps:
            problems.append(f"{at}: column 'fieldmap_series_instance_uid': {absent(link.fieldmap_uid)}")
            continue
        if not all(f["datatype"] == "fmap" for f in fmaps):
            kind = ", ".join(sorted({f["datatype"] for f in fmaps}))
            problems.append(f"{at}: column 'fieldmap_series_instance_uid': {link.fieldmap_uid} is exported as {kind}, not as a fieldmap (fmap)")
            continue
        target_places = {where(r) for r in rows}
        fmap_places = {where(f) for f in fmaps}
        if target_places != fmap_places:
            problems.append(
                f"{at}: column 'fieldmap_series_instance_uid': fieldmap {link.fieldmap_uid} is from "
                f"{', '.join(sorted(fmap_places))} but the target {link.series_instance_uid} is from "
                f"{', '.join(sorted(target_places))}: a fieldmap corrects images of its own subject and session only"
            )
    return problems


def check_links_table(path: str | os.PathLike, plan_rows: list[dict], excluded_rows: list[dict] = ()) -> list[LinkOverride]:
    """Read and validate the links table against the plan; raises TableError."""
    links = read_links(path)
    problems = check_links(links, plan_rows, str(path), list(excluded_rows))
    if problems:
        raise TableError(problems)
    return links


def check_plan_links(cfg: dict, plan_rows: list, excluded_rows: list[dict] = (), *, bids_nifti: bool) -> None:
    """The planning checkpoint's early check (a no-op without a links table, or when
    the export is not a BIDS NIfTI tree: ``bids_nifti``, as the planner decided it)."""
    if cfg.get("fieldmap_links_table") and bids_nifti:
        rows = [r if isinstance(r, dict) else vars(r) for r in plan_rows]  # plan entries (dataclasses) or dicts
        check_links_table(table_path(cfg, "fieldmap_links_table"), rows, excluded_rows)


def table_path(cfg: dict, key: str) -> str | None:
    """A configured table's absolute path (also for a config not yet resolved)."""
    return resolve_paths({key: cfg[key]})[key] if cfg.get(key) else None
