"""What one stack of a multi-stack series holds, and what tells it from its siblings.

A classifier such as NILS splits one DICOM series into *stacks* by a signature of
echo time, inversion time, echo numbers, ImageType, orientation … and numbers them
in the order it met them (``stack_index``: discovery order, which says nothing about
echo order or magnitude/phase). The ``stack_*`` columns of the series table say what
each stack holds; this module turns them into the facts a name needs:

* :func:`stack_facts` — the row's stack columns as a small dict (the series spec's
  ``stack``), which the series job also uses to pick the stack's own images;
* :func:`image_part` / :func:`is_derived` — what a DICOM (or dcm2niix sidecar)
  ImageType says;
* :func:`tell_apart` — per stack, the echo rank, part, inversion rank and
  orientation that distinguish it from the other stacks of its series, ranked by
  value (echo time, inversion time), never by index.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

from .dicom_scan import STACK_NUMBERS

# series-table column → key of the spec's ``stack`` dict
STACK_COLUMNS = {
    "stack_modality": "modality",
    "stack_echo_time": "echo_time",
    "stack_inversion_time": "inversion_time",
    "stack_echo_numbers": "echo_numbers",
    "stack_image_type": "image_type",
    "stack_image_orientation": "image_orientation",
    "stack_repetition_time": "repetition_time",
    "stack_flip_angle": "flip_angle",
    "stack_n_instances": "n_instances",
}
ECHO_TOLERANCE_MS = 0.05  # NILS rounds echo times to 0.01 ms; dcm2niix writes seconds
# DICOM ImageType value 3 (and dcm2niix's appended word) → BIDS part label
_PART_TOKENS = {
    "P": "phase", "PHASE": "phase", "PHASE MAP": "phase",
    "R": "real", "REAL": "real",
    "I": "imag", "IMAGINARY": "imag",
    "M": "mag", "MAGNITUDE": "mag",
}  # fmt: skip


def _number(text) -> float | None:
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def stack_facts(row: dict) -> dict:
    """The row's non-empty stack columns, keyed as :data:`STACK_COLUMNS` says
    (numbers as floats, ImageType upper case, backslash-separated)."""
    facts: dict = {}
    for column, key in STACK_COLUMNS.items():
        value = str(row.get(column) or "").strip()
        if not value:
            continue
        if key in STACK_NUMBERS:
            number = _number(value)
            if number is not None:
                facts[key] = number
        elif key == "image_type":
            facts[key] = "\\".join(t.strip().upper() for t in value.split("\\"))
        elif key == "n_instances":
            number = _number(value)
            if number is not None:
                facts[key] = int(number)
        else:
            facts[key] = value
    return facts


def _tokens(image_type) -> list[str]:
    if not image_type:
        return []
    if isinstance(image_type, str):
        image_type = image_type.split("\\")
    return [str(t).strip().upper() for t in image_type]


def image_part(image_type) -> str | None:
    """``mag``, ``phase``, ``real``, ``imag`` from an ImageType (DICOM or dcm2niix
    sidecar list), or None when it does not say. dcm2niix appends its own word
    (``MAGNITUDE``, ``PHASE`` …) last, which wins; else DICOM value 3 onwards."""
    tokens = _tokens(image_type)
    if tokens and tokens[-1] in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY"):
        return _PART_TOKENS[tokens[-1]]
    for token in tokens[2:]:
        if token in _PART_TOKENS:
            return _PART_TOKENS[token]
    return None


def is_derived(image_type) -> bool:
    """DICOM ImageType value 1 is ``DERIVED`` (a scanner-computed image)."""
    tokens = _tokens(image_type)
    return bool(tokens) and tokens[0] == "DERIVED"


@dataclass(frozen=True)
class StackRole:
    """What tells one stack from the other stacks of its series (None: nothing)."""

    echo: int | None = None  # rank of its echo time among the series' echo times (1 = shortest)
    part: str | None = None  # mag | phase | real | imag, when siblings differ in it or it is not mag
    echo_in_part: int | None = None  # rank among the stacks of its own part (magnitude1/2, phase1/2)
    n_in_part: int = 1  # how many distinct echoes its part has
    inv: int | None = None  # rank of its inversion time
    orientation: str | None = None  # axial | coronal | sagittal, when siblings differ in it
    note: str = ""  # why the stacks could not be told apart (for the report)


def _ranks(values: list) -> list[int | None]:
    """1-based rank of each value among the distinct known values; None where unknown
    or when all known values are equal (nothing to tell apart)."""
    known = [v for v in values if v is not None]
    distinct = _distinct(known)
    if len(distinct) < 2:
        return [None] * len(values)
    return [None if v is None else _rank(v, distinct) for v in values]


def _distinct(values: list) -> list:
    out: list = []
    for v in sorted(values, key=lambda x: (isinstance(x, str), x)):
        if not any(_same(v, o) for o in out):
            out.append(v)
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= ECHO_TOLERANCE_MS
    return a == b


def _rank(value, distinct: list) -> int:
    return next(i for i, d in enumerate(distinct, 1) if _same(value, d))


def _echo_numbers(facts: dict) -> float | None:
    numbers = [int(n) for n in str(facts.get("echo_numbers") or "").split("\\") if n.strip().isdigit()]
    return float(min(numbers)) if numbers else None


def _echoes(stacks: list[dict]) -> list[float | None]:
    """Echo times where every stack has one, else echo numbers where every stack has
    them, else the echo times there are (a stack without one is not ranked)."""
    times = [f.get("echo_time") for f in stacks]
    if all(t is not None for t in times):
        return [float(t) for t in times]
    numbers = [_echo_numbers(f) for f in stacks]
    if all(n is not None for n in numbers):
        return numbers
    return [None if t is None else float(t) for t in times]


def tell_apart(stacks: list[dict]) -> list[StackRole]:
    """One :class:`StackRole` per stack (facts from :func:`stack_facts`, in any order)."""
    if len(stacks) < 2:
        return [StackRole() for _ in stacks]
    echoes = _echoes(stacks)
    parts = [image_part(f.get("image_type")) for f in stacks]
    known_parts = {p for p in parts if p}
    shown_parts = [p if (len(known_parts) > 1 or (p and p != "mag")) else None for p in parts]
    inversions = _ranks([f.get("inversion_time") for f in stacks])
    orient = [str(f.get("image_orientation") or "").lower() or None for f in stacks]
    orientations = orient if len({o for o in orient if o}) > 1 else [None] * len(stacks)
    echo_ranks = _ranks(echoes)
    # Rank within each part, so a magnitude+phase pair at two echoes is magnitude1/2 + phase1/2.
    in_part: list[int | None] = [None] * len(stacks)
    n_in_part: list[int] = [1] * len(stacks)
    for part in {p or "" for p in parts}:
        members = [i for i, p in enumerate(parts) if (p or "") == part]
        distinct = _distinct([echoes[i] for i in members if echoes[i] is not None])
        for i in members:
            n_in_part[i] = max(1, len(distinct))
            if echoes[i] is not None and distinct:
                in_part[i] = _rank(echoes[i], distinct)
    roles = [
        StackRole(echo_ranks[i], shown_parts[i], in_part[i], n_in_part[i], inversions[i], orientations[i])
        for i in range(len(stacks))
    ]
    signatures = [(r.echo, r.part, r.inv, r.orientation) for r in roles]
    for i, sig in enumerate(signatures):
        twins = [j for j, other in enumerate(signatures) if other == sig and j != i]
        if twins:
            roles[i] = replace(roles[i], note=(
                f"its stack columns do not tell it apart from {len(twins)} other stack(s) of the series "
                "(same echo time, image type, inversion time and orientation): separated by run number"
            ))  # fmt: skip
    return roles


def row_key(row: dict) -> tuple[str, int]:
    """(SeriesInstanceUID, stack_index) of a table row: the key of :func:`roles_of`."""
    return row["series_instance_uid"], int(row.get("stack_index") or 0)


def roles_of(records: list[dict]) -> dict[tuple[str, int], StackRole]:
    """:func:`row_key` → what tells the row's stack from the other stacks of its series
    (give every row of the table: a filtered-out stack still counts in the ranks).

    From the stack columns (echo time, ImageType, inversion time …). A series whose
    rows carry none of them is told apart by ``stack_key`` and ``stack_index`` as a
    last resort, with a warning: the index is discovery order, not echo order."""
    by_uid: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_uid[r["series_instance_uid"]].append(r)
    roles: dict[tuple[str, int], StackRole] = {}
    for members in by_uid.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda r: int(r.get("stack_index") or 0))
        facts = [stack_facts(r) for r in members]
        if any(facts):
            for r, role in zip(members, tell_apart(facts)):
                roles[row_key(r)] = role
            continue
        note = ("no stack columns (stack_echo_time, stack_image_type …): told apart by stack_index, which is the "
                "classifier's discovery order, not necessarily the echo or inversion order")  # fmt: skip
        for r in members:
            index, key = int(r.get("stack_index") or 0), r.get("stack_key") or ""
            if key == "multi_echo":
                role = StackRole(echo=index + 1, echo_in_part=index + 1, n_in_part=len(members), note=note)
            elif key == "multi_ti":
                role = StackRole(inv=index + 1, note=note)
            else:
                role = StackRole(note=note.replace("told apart by stack_index", "not told apart (run numbers)"))
            roles[row_key(r)] = role
    return roles
