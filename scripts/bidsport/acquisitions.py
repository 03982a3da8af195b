"""Which planned series (or stacks) form one acquisition, and their run numbers.

Run numbers separate repeats only: within (subject, session, folder, name), by
acquisition time; magnitude/phase siblings and fieldmap parts of one acquisition share
one run. The images have the last word on what a fieldmap series holds (magnitude,
phase, Hz map) and on a pepolar series' direction (:mod:`bidsport.probe`).
Plan records are dicts with ``_name`` (naming.SeriesName), ``_kinds``, ``_warnings``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from . import naming, vocabulary
from .table import parse_date, parse_time


def time_order(row: dict) -> tuple:
    date = parse_date(row["study_date"]).toordinal() if row.get("study_date") else 0
    time = parse_time(row["series_time"]) if row.get("series_time") else float("inf")
    number = int(row["series_number"]) if row.get("series_number") else 1 << 30
    return (date, time, number, row["series_instance_uid"])


def run_group(r: dict) -> tuple:
    """Series that would share a name but for ``part`` or the fieldmap suffix."""
    n: naming.SeriesName = r["_name"]
    entities = tuple(e for e in n.entities if e[0] != "part")
    suffix = ("fmap-b0" if is_b0_family(n, r) else "fmap") if n.role == "fmap" else n.suffix
    return (r["_subject"], r["_session"], n.datatype, n.subfolder, entities, suffix, n.tail)


def member(r: dict) -> tuple[str, int]:
    return (r["series_instance_uid"], int(r.get("stack_index") or 0))


# What each fieldmap suffix may become once dcm2niix has written the images: two
# series (or stacks) pair in one acquisition only while these do not overlap.
_GRE_KINDS = {"magnitude1", "magnitude2", "phasediff", "phase1", "phase2"}


_FMAP_KINDS = {
    "magnitude": {"magnitude1", "magnitude2"},
    "phasediff": {"phasediff", "phase1", "phase2"},
    "fieldmap": {"fieldmap", "magnitude"},
}


def is_b0_family(n: naming.SeriesName, r: dict) -> bool:
    """A B0 map (``fieldmap`` + ``magnitude``) rather than a gradient-echo fieldmap."""
    return n.suffix == "fieldmap" or "B0map" in vocabulary.split_list(r.get("construct_csv"))


def sibling_kinds(n: naming.SeriesName, r: dict, *, split: bool = False, mixed: bool = False) -> set[str]:
    """What a series (or stack) contributes to one acquisition; a repeat starts the
    next run. ``split``: one stack of a series told apart by its stack columns;
    ``mixed``: its images are magnitude and phase (by the classification or the images)."""
    if n.role == "fmap":
        if is_b0_family(n, r):
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


def images_have_the_last_word(records: list[dict], image_facts) -> None:
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
        r["_kinds"] = sibling_kinds(r["_name"], r, mixed=seen >= {"magnitude", "phase"})


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
        r["_name"] = naming.with_entities(n, dir=None)
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


def run_numbers(records: list[dict]) -> dict[tuple, int | None]:
    """(run group, member) → run number (None where the group holds one acquisition)."""
    groups: dict[tuple, dict[tuple, tuple]] = defaultdict(dict)
    for r in records:
        groups[run_group(r)][member(r)] = time_order(r)
    run_of: dict[tuple, int | None] = {}
    kinds = {member(r): r["_kinds"] for r in records}
    for gkey, members in groups.items():
        acquisitions: list[set[str]] = []  # the kinds each acquisition already holds
        index_of: dict[tuple, int] = {}
        for one in sorted(members, key=members.get):
            if not acquisitions or acquisitions[-1] & kinds[one]:
                acquisitions.append(set())
            acquisitions[-1] |= kinds[one]
            index_of[one] = len(acquisitions)
        for one, i in index_of.items():
            run_of[(gkey, one)] = i if len(acquisitions) > 1 else None
    return run_of
