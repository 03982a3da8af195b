"""What the official BIDS schema (via ``bidsschematools``) says about file names.

Entity order, short entity names, and whether a (datatype, entities, suffix,
extension) combination is a valid raw-data name all come from the schema bundled
with ``bidsschematools``, so bidsport follows the specification it ships with.
"""

from __future__ import annotations

from functools import lru_cache

from bidsschematools import schema as _schema


@lru_cache(maxsize=1)
def _loaded():
    return _schema.load_schema()


@lru_cache(maxsize=1)
def entity_order() -> tuple[str, ...]:
    """Short entity names (``sub``, ``ses``, ``task``, ``acq`` …) in filename order."""
    s = _loaded()
    return tuple(s.objects.entities[name].name for name in s.rules.entities)


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


def _level(value) -> str:
    return value if isinstance(value, str) else value.get("level", "optional")


@lru_cache(maxsize=1)
def part_labels() -> tuple[str, ...]:
    return tuple(_loaded().objects.entities.part.enum)
