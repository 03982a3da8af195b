"""A name tells two images apart by what differs in their classification: series
whose classifications differ never share a name (only repeats share one and get
``run-``). Also the planning warnings for values outside the classifier's vocabulary."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from . import mapping, naming, vocabulary
from .acquisitions import run_group


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


def tell_classifications_apart(records: list[dict]) -> None:
    """The naming principle: series whose classifications differ never share a name
    (told apart by ``run-`` only). Where they would, the axes on which they differ
    (technique, modifiers, …) are added to ``acq``; repeats keep sharing a name."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[run_group(r)].append(r)
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
            by_name[run_group(r)].add(tuple(v.items()))
        for r, v in zip(members, values):
            if len(by_name[run_group(r)]) > 1:
                digest = hashlib.sha1(repr(sorted(v.items())).encode()).hexdigest()[:4]
                n = r["_name"]
                r["_name"] = naming.with_entities(n, acq=naming.join_labels([n.entity("acq") or "", f"c{digest}"]))


def unknown_value_warnings(records: list[dict], table_path: str) -> list[str]:
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
