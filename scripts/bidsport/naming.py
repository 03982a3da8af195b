"""BIDS names for classified series, and for every file dcm2niix writes for them.

Two steps, both pure functions:

1. :func:`name_series` turns one series-table row (its classification and
   provenance) into a :class:`SeriesName`: the datatype folder, an optional routing
   subfolder (``SyMRI``), ordered entities, the suffix and a *role* that says how
   the series' several dcm2niix outputs are told apart.
2. :func:`name_outputs` takes the dcm2niix postfixes of one conversion
   (``""``, ``_e1``, ``_e2_ph``, ``_fieldmaphz``, ``_i00001`` …) and gives each output
   its own final stem, so that nothing is overwritten and nothing is dropped.

The rules are the mapping (:mod:`bidsport.mapping`, shown in ``docs/naming.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import bids_schema, mapping
from .labels import sanitize_label

@dataclass(frozen=True)
class SeriesName:
    """How one series is named before dcm2niix tells us its outputs."""

    datatype: str  # folder under the session: anat, dwi, func, fmap, perf, misc
    suffix: str
    entities: tuple[tuple[str, str], ...] = ()  # (short name, label), without sub/ses/run
    subfolder: str | None = None  # routing folder inside the datatype (SyMRI)
    tail: str = ""  # text after the suffix (``_synth``)
    role: str = "image"  # image | fmap | epi | dwi
    kind: str = "raw"  # raw | synthetic | swi | derived | localizer | misc (for reports)
    multi_suffix: str = ""  # suffix when dcm2niix writes several echoes (MEGRE, MESE)

    def entity(self, key: str) -> str | None:
        return dict(self.entities).get(key)

    def with_entity(self, key: str, value: str | None) -> "SeriesName":
        ents = dict(self.entities)
        if value is None:
            ents.pop(key, None)
        else:
            ents[key] = value
        return replace(self, entities=tuple(ents.items()))


def _join_labels(tokens: list[str]) -> str:
    """``["spine", "STIR"]`` → ``spineSTIR``: one alphanumeric label, each token readable."""
    out = ""
    for token in dict.fromkeys(sanitize_label(t) for t in tokens if any(ch.isalnum() for ch in str(t))):
        out += token if not out else token[:1].upper() + token[1:]
    return out


def name_series(row: dict, *, symri_subfolder: bool = True) -> SeriesName:
    """Name one series from its classification (a series-table row as a dict).

    The folder and suffix come from the first matching rule of
    :data:`bidsport.mapping.RULES`; entities from the mapping's entity tables.
    """
    c = mapping.Classification.from_row(row)
    rule = mapping.rule_for(c)
    if rule.kind == "excluded":
        raise ValueError("a series classified as excluded is never named (it is not exported)")
    suffix = rule.suffix_for(c)
    entities: dict[str, str] = {}
    acq: list[str] = [mapping.SPINAL_CORD_ACQ] if c.spinal_cord else []
    rec: list[str] = []
    if c.post_contrast:
        entities["ce"] = mapping.CONTRAST_AGENT
    if "FLAIR" in c.modifiers and c.base in ("T1w", "PDw") and rule.datatype == "anat":
        acq.append("FLAIR")
    for modifier in (m for m in mapping.MODIFIER_ENTITIES if m in c.modifiers):
        key, label = mapping.MODIFIER_ENTITIES[modifier]
        (acq if key == "acq" else rec).append(label)
    for construct in (k for k in mapping.CONSTRUCT_ENTITIES if k in c.constructs):
        key, label = mapping.CONSTRUCT_ENTITIES[construct]
        if key == "part" and (rule.role == "fmap" or suffix in bids_schema.parametric_suffixes()):
            continue  # a fieldmap's Magnitude/Phase choose its suffix; maps have no part
        if key == "rec":
            rec.append(label)
        else:
            entities.setdefault(key, label)
    if c.provenance in mapping.PROVENANCE_ENTITIES:
        key, label = mapping.PROVENANCE_ENTITIES[c.provenance]
        if not (c.provenance == "ProjectionDerived" and rec):
            (acq if key == "acq" else rec).append(label)
    if c.n_stacks > 1 and c.stack_key == "multi_echo":
        entities["echo"] = str(c.stack_index + 1)
    elif c.n_stacks > 1 and c.stack_key == "multi_ti":
        entities.setdefault("inv", str(c.stack_index + 1))
    if rule.datatype == "func":
        entities["task"] = sanitize_label(row.get("task") or "rest")
    if c.pe_dir and rule.datatype in ("func", "dwi", "perf", "fmap"):
        entities["dir"] = c.pe_dir
    if acq:
        entities["acq"] = _join_labels(acq)
    if rec:
        entities["rec"] = _join_labels(rec)
    multi = mapping.MULTI_ECHO.get(c.technique, "") if rule.datatype == "anat" and rule.role == "image" else ""
    entities = fold_disallowed(rule.datatype, suffix, entities)
    subfolder = rule.subfolder if symri_subfolder else None
    return SeriesName(rule.datatype, suffix, _ordered(entities), subfolder, rule.tail, rule.role, rule.kind, multi)


def fold_disallowed(datatype: str, suffix: str, entities: dict[str, str]) -> dict[str, str]:
    """Entities the schema does not allow on this raw suffix move into ``acq``, so
    the name stays valid and still tells the images apart (``ce-`` on a fieldmap)."""
    allowed = bids_schema.allowed_entities(datatype, suffix)
    if not allowed:
        return entities  # no raw name exists: the file is listed in .bidsignore as it is
    kept = {k: v for k, v in entities.items() if k in allowed or k == "acq"}
    moved = [f"{k}{v}" for k, v in entities.items() if k not in kept]
    if moved:
        kept["acq"] = _join_labels([kept["acq"], *moved] if kept.get("acq") else moved)
    return kept


def _ordered(entities: dict[str, str]) -> tuple[tuple[str, str], ...]:
    order = bids_schema.entity_order()
    return tuple((k, entities[k]) for k in order if k in entities) + tuple(
        (k, v) for k, v in entities.items() if k not in order
    )


# --------------------------------------------------------------------------- outputs

@dataclass
class Postfix:
    """dcm2niix's postfix of one output, parsed."""

    text: str
    echo: int | None = None
    part: str | None = None  # phase | real | imag
    fieldmap_hz: bool = False
    other: list[str] = field(default_factory=list)


def parse_postfix(text: str) -> Postfix:
    """Parse ``_e2_ph``, ``_fieldmaphz``, ``_i00001``, ``_real`` … (dcm2niix ``-f`` postfixes)."""
    parsed = Postfix(text)
    for token in [t for t in text.split("_") if t]:
        if m := re.fullmatch(r"e(\d+)", token):
            parsed.echo = int(m.group(1))
        elif token == "ph":
            parsed.part = "phase"
        elif token == "real":
            parsed.part = "real"
        elif token in ("imaginary", "imag"):
            parsed.part = "imag"
        elif token == "fieldmaphz":
            parsed.fieldmap_hz = True
        else:
            parsed.other.append(token)
    return parsed


@dataclass(frozen=True)
class OutputName:
    """Final name pieces of one dcm2niix output (stem is without extension)."""

    postfix: str
    suffix: str
    entities: tuple[tuple[str, str], ...]
    tail: str = ""


def name_outputs(series: SeriesName, postfixes: list[str]) -> dict[str, OutputName]:
    """Give every dcm2niix output of one series its own name.

    ``postfixes`` are the distinct postfixes of the NIfTI files dcm2niix wrote
    (``""`` for the plain one). Echo and part siblings get ``echo-``/``part-``
    entities (``magnitude1/2``, ``phase1/2``, ``phasediff``, ``fieldmap`` for
    fieldmaps); anything else dcm2niix appended is folded into ``acq`` so that
    the name stays valid and distinct.
    """
    parsed = {p: parse_postfix(p) for p in sorted(postfixes)}
    echoes = sorted({p.echo for p in parsed.values() if p.echo is not None})
    any_part = any(p.part for p in parsed.values())
    result: dict[str, OutputName] = {}
    for text, post in parsed.items():
        ents = dict(series.entities)
        suffix = series.suffix
        if series.role == "fmap":
            suffix = _fmap_suffix(series, post, parsed, echoes)
        else:
            if post.echo is not None and len(echoes) > 1:
                ents["echo"] = str(post.echo)
                suffix = series.multi_suffix or suffix
            if post.part:
                ents["part"] = post.part
            elif any_part and series.kind != "swi" and "part" not in ents:
                ents["part"] = "mag"
            if post.fieldmap_hz:
                post.other.append("fieldmaphz")
        if post.other:
            extra = sanitize_label("".join(post.other))
            ents["acq"] = (ents.get("acq") or "") + extra
        result[text] = OutputName(text, suffix, _ordered(ents), series.tail)
    _make_distinct(result)
    return result


def _fmap_suffix(series: SeriesName, post: Postfix, parsed: dict[str, Postfix], echoes: list[int]) -> str:
    if post.fieldmap_hz:
        return "fieldmap"
    has_hz = any(p.fieldmap_hz for p in parsed.values())
    if has_hz:
        return "magnitude"
    phases = sorted({p.echo or 0 for p in parsed.values() if p.part == "phase"})
    mags = sorted({p.echo or 0 for p in parsed.values() if p.part is None})
    is_phase = post.part == "phase" or (series.suffix == "phasediff" and post.part is None and not phases)
    if is_phase:
        if series.suffix == "phasediff" and not phases:
            return "phasediff"  # a phase series with no ``_ph`` postfix (some vendors)
        if len(phases) <= 1:
            return "phasediff"
        return f"phase{phases.index(post.echo or 0) + 1}"
    if series.suffix == "fieldmap":
        return "fieldmap"  # a B0 map series with no ``_fieldmaphz`` postfix
    if len(mags) <= 1:
        return "magnitude1"
    return f"magnitude{mags.index(post.echo or 0) + 1}"


def _make_distinct(result: dict[str, OutputName]) -> None:
    """Two outputs must never share a name: number the later ones in ``acq``."""
    seen: dict[tuple, str] = {}
    for text in sorted(result):
        out = result[text]
        key = (out.suffix, out.entities)
        n = 1
        while key in seen:
            n += 1
            ents = dict(out.entities)
            ents["acq"] = (ents.get("acq") or "") + f"n{n}"
            out = OutputName(out.postfix, out.suffix, _ordered(ents), out.tail)
            key = (out.suffix, out.entities)
        seen[key] = text
        result[text] = out


def stem(subject: str, session: str | None, entities, suffix: str, tail: str = "", run: int | None = None) -> str:
    """The file stem: ``sub-X[_ses-Y]_<entities in schema order>[_run-NN]_<suffix><tail>``."""
    ents = dict(entities)
    ents["sub"] = subject
    if session:
        ents["ses"] = session
    if run is not None:
        ents["run"] = f"{run:02d}"
    order = bids_schema.entity_order()
    parts = [f"{k}-{ents[k]}" for k in order if ents.get(k)]
    parts += [f"{k}-{v}" for k, v in ents.items() if k not in order and v]
    return "_".join(parts + [suffix]) + tail
