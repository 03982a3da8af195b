"""What the official BIDS schema (via ``bidsschematools``) says about file names.

Entity order, short entity names, and whether a (datatype, entities, suffix,
extension) combination is a valid raw-data name all come from the schema bundled
with ``bidsschematools``, so bidsport follows the specification it ships with.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

# The few schema facts a per-series job needs, saved by the planning step: loading
# the whole schema is a cost that thousands of short series jobs would each pay.
FACTS_FILE = "schema_facts.json"
_facts: dict | None = None


@lru_cache(maxsize=1)
def _loaded():
    from bidsschematools import schema as _schema

    return _schema.load_schema()


def use_facts(path: str | os.PathLike) -> bool:
    """Answer entity_order/sidecar_required_rules from a facts file (if readable)."""
    global _facts
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        _facts = {"entity_order": tuple(data["entity_order"]),
                  "sidecar_required": [(list(sel), list(req)) for sel, req in data["sidecar_required"]]}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        _facts = None
    return _facts is not None


def write_facts(path: str | os.PathLike) -> bool:
    """Save the facts the series jobs need (only rewritten when they change)."""
    from .fsutil import write_if_changed

    data = {"bids_version": bids_version(), "entity_order": list(entity_order()), "sidecar_required": sidecar_required_rules()}
    return write_if_changed(path, json.dumps(data, indent=1) + "\n")


def entity_order() -> tuple[str, ...]:
    """Short entity names (``sub``, ``ses``, ``task``, ``acq`` …) in filename order."""
    if _facts is not None:
        return _facts["entity_order"]
    return _entity_order_from_schema()


@lru_cache(maxsize=1)
def _entity_order_from_schema() -> tuple[str, ...]:
    s = _loaded()
    return tuple(s.objects.entities[name].name for name in s.rules.entities)


def sidecar_required_rules() -> list[tuple[list[str], list[str]]]:
    """(selectors, required metadata keys) for every MRI sidecar rule with required keys."""
    if _facts is not None:
        return _facts["sidecar_required"]
    return _sidecar_rules_from_schema()


@lru_cache(maxsize=1)
def _sidecar_rules_from_schema() -> list[tuple[list[str], list[str]]]:
    s = _loaded()
    out = []
    for group in ("func", "fmap", "dwi", "anat", "perf", "mri", "asl", "qmri"):
        for rule in s.rules.sidecars.get(group, {}).values():
            if "fields" not in rule:
                continue
            required = [
                s.objects.metadata[name].name
                for name, level in dict(rule.fields).items()
                if (level if isinstance(level, str) else level.get("level")) == "required"
            ]
            if required:
                out.append((list(rule.selectors), required))
    return out


@lru_cache(maxsize=1)
def _long_names() -> dict[str, str]:
    s = _loaded()
    return {s.objects.entities[name].name: name for name in s.rules.entities}


def bids_version() -> str:
    return str(_loaded().bids_version)


@lru_cache(maxsize=4096)
def is_raw_name(datatype: str, entities: frozenset[str], suffix: str, extension: str) -> bool:
    """True if some raw-data rule of the schema admits this combination.

    ``entities`` are short names (``sub``, ``ses`` …); values are not checked here
    except by the caller (labels are alphanumeric by construction).
    """
    s = _loaded()
    long = _long_names()
    try:
        wanted = {long[e] for e in entities}
    except KeyError:
        return False
    for group in s.rules.files.raw.values():
        for rule in group.values():
            if datatype not in rule.get("datatypes", []):
                continue
            if suffix not in rule.get("suffixes", []) or extension not in rule.get("extensions", []):
                continue
            allowed = dict(rule.get("entities", {}))
            required = {k for k, v in allowed.items() if _level(v) == "required"}
            if wanted <= set(allowed) and required <= wanted:
                return True
    return False


@lru_cache(maxsize=256)
def allowed_entities(datatype: str, suffix: str) -> frozenset[str]:
    """Short names of the entities some raw rule allows on ``datatype``/``suffix``
    (empty when the schema has no raw name with this suffix)."""
    s = _loaded()
    allowed: set[str] = set()
    for group in s.rules.files.raw.values():
        for rule in group.values():
            if datatype in rule.get("datatypes", []) and suffix in rule.get("suffixes", []):
                allowed |= {s.objects.entities[name].name for name in rule.get("entities", {})}
    return frozenset(allowed)


@lru_cache(maxsize=1)
def parametric_suffixes() -> frozenset[str]:
    """Suffixes of BIDS quantitative maps (``T1map``, ``UNIT1``, ``Chimap`` …): no ``part-``."""
    return frozenset(_loaded().rules.files.raw.anat.parametric.suffixes)


def _level(value) -> str:
    return value if isinstance(value, str) else value.get("level", "optional")

