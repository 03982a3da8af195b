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

from dataclasses import dataclass, replace

from . import bids_schema, mapping
from .labels import sanitize_label
from .images import OutputFacts, output_facts
from .stacks import StackRole

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


def with_entities(name: SeriesName, **values: str | None) -> SeriesName:
    """``name`` with these entities set (None: removed), in the schema's order."""
    ents = dict(name.entities)
    for key, value in values.items():
        if value is None:
            ents.pop(key, None)
        else:
            ents[key] = value
    return replace(name, entities=_ordered(ents))


def join_labels(tokens: list[str]) -> str:
    """``["spine", "STIR"]`` → ``spineSTIR``: one alphanumeric label, each token readable."""
    out = ""
    for token in dict.fromkeys(sanitize_label(t) for t in tokens if any(ch.isalnum() for ch in str(t))):
        out += token if not out else token[:1].upper() + token[1:]
    return out


def name_series(
    row: dict, *, stack: StackRole | None = None, image_type: str | None = None, symri_subfolder: bool = True
) -> SeriesName:
    """Name one series (or one stack of it) from its classification (a series-table row).

    The folder and suffix come from the first matching rule of
    :data:`bidsport.mapping.RULES`; entities from the mapping's entity tables; a
    stack's ``echo-``/``part-``/``inv-`` (or fieldmap suffix) from what ``stack``
    (:func:`bidsport.stacks.tell_apart`) says it holds. ``image_type``: the images'
    ImageType where the table has none (a DERIVED image is never named as raw data).
    """
    c = mapping.Classification.from_row(row, stack=stack, image_type=image_type)
    rule = mapping.rule_for(c)
    if rule.kind == "excluded":
        raise ValueError("a series classified as excluded is never named (it is not exported)")
    suffix = rule.suffix_for(c)
    if rule.role == "fmap":
        suffix = fmap_stack_suffix(suffix, c.stack)
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
    if rule.role != "fmap":  # a fieldmap stack's echo and part are in its suffix
        if c.stack.echo is not None:
            entities["echo"] = str(c.stack.echo)
        if c.stack.part and suffix not in bids_schema.parametric_suffixes():
            entities["part"] = c.stack.part
    if c.stack.inv is not None:
        entities.setdefault("inv", str(c.stack.inv))
    if c.stack.orientation:
        acq.append(c.stack.orientation)
    if rule.datatype == "func":
        entities["task"] = sanitize_label(row.get("task") or "rest")
    if c.pe_dir and rule.datatype in ("func", "dwi", "perf", "fmap"):
        entities["dir"] = c.pe_dir
    if acq:
        entities["acq"] = join_labels(acq)
    if rec:
        entities["rec"] = join_labels(rec)
    multi = mapping.MULTI_ECHO.get(c.technique, "") if rule.datatype == "anat" and rule.role == "image" else ""
    entities = fold_disallowed(rule.datatype, suffix, entities)
    subfolder = rule.subfolder if symri_subfolder else None
    return SeriesName(rule.datatype, suffix, _ordered(entities), subfolder, rule.tail, rule.role, rule.kind, multi)


FMAP_STACK_SUFFIXES = ("magnitude1", "magnitude2", "phase1", "phase2", "phasediff")


def fmap_stack_suffix(suffix: str, stack: StackRole) -> str:
    """A gradient-echo fieldmap stack's suffix from what it holds: its part and the
    rank of its echo among its part's echoes (``magnitude2``, ``phase1`` …). A B0 map
    series (``fieldmap``) keeps ``fieldmap`` for its map and ``magnitude`` for its
    magnitude stack; without stack facts, the classification's suffix stands."""
    if stack == StackRole():
        return suffix
    if suffix == "fieldmap":
        return "magnitude" if stack.part == "mag" else suffix
    if stack.part == "phase" or (stack.part is None and suffix == "phasediff"):
        return f"phase{stack.echo_in_part}" if stack.n_in_part > 1 and stack.echo_in_part else "phasediff"
    if stack.part in (None, "mag"):
        return f"magnitude{min(stack.echo_in_part or 1, 2)}"
    return suffix


def fold_disallowed(datatype: str, suffix: str, entities: dict[str, str]) -> dict[str, str]:
    """Entities the schema does not allow on this raw suffix move into ``acq``, so
    the name stays valid and still tells the images apart (``ce-`` on a fieldmap)."""
    allowed = bids_schema.allowed_entities(datatype, suffix)
    if not allowed:
        return entities  # no raw name exists: the file is listed in .bidsignore as it is
    kept = {k: v for k, v in entities.items() if k in allowed or k == "acq"}
    moved = [f"{k}{v}" for k, v in entities.items() if k not in kept]
    if moved:
        kept["acq"] = join_labels([kept["acq"], *moved] if kept.get("acq") else moved)
    return kept


def _ordered(entities: dict[str, str]) -> tuple[tuple[str, str], ...]:
    order = bids_schema.entity_order()
    return tuple((k, entities[k]) for k in order if k in entities) + tuple(
        (k, v) for k, v in entities.items() if k not in order
    )


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class OutputName:
    """Final name pieces of one dcm2niix output (stem is without extension)."""

    postfix: str
    suffix: str
    entities: tuple[tuple[str, str], ...]
    tail: str = ""


def name_outputs(series: SeriesName, outputs: dict[str, OutputFacts] | list[str]) -> dict[str, OutputName]:
    """Give every dcm2niix output of one series (or stack) its own name.

    ``outputs``: postfix → :class:`~bidsport.images.OutputFacts` (from the sidecars),
    or just the postfixes. Names come from what each output is: echoes ranked by echo
    time → ``echo-``/``magnitude1/2``/``phase1/2``; ImageType → ``part-`` or the
    fieldmap suffix; for a pepolar fieldmap, each output's own phase-encoding
    direction → ``dir-``. dcm2niix's postfix tokens never become entity values:
    outputs still alike are told apart by orientation, then by a number in ``acq``.
    """
    facts = outputs if isinstance(outputs, dict) else {p: output_facts(p) for p in outputs}
    facts = {p: facts[p] for p in sorted(facts)}
    echo_rank = _echo_ranks(list(facts.values()))
    parts = {f.part for f in facts.values() if f.part}
    directions = {f.pe_dir for f in facts.values() if f.pe_dir}
    result: dict[str, OutputName] = {}
    for text, f in facts.items():
        ents = dict(series.entities)
        suffix = series.suffix
        if series.role == "fmap":
            suffix = _fmap_suffix(series, f, list(facts.values()))
        else:
            if echo_rank.get(f.postfix) is not None:
                ents["echo"] = str(echo_rank[f.postfix])
                suffix = series.multi_suffix or suffix
            part = f.part or ("mag" if parts and not f.fieldmap_hz else None)  # beside a phase image, a magnitude
            if part and (part != "mag" or len(parts | {part}) > 1) and series.kind != "swi" and "part" not in ents:
                ents["part"] = part
            if f.fieldmap_hz:
                ents["acq"] = join_labels([ents.get("acq") or "", "fieldmap"])
        if series.role == "epi" and len(directions) > 1 and f.pe_dir:
            ents["dir"] = f.pe_dir  # both polarities in one series: each output by its own
        result[text] = OutputName(text, suffix, _ordered(ents), series.tail)
    _make_distinct(result, facts)
    return result


def _echo_ranks(facts: list[OutputFacts]) -> dict[str, int | None]:
    """postfix → rank of its echo among the outputs' echoes (None: a single echo).
    Echo times where every output has one, else echo numbers."""
    if all(f.echo_time is not None for f in facts):
        values = {f.postfix: f.echo_time for f in facts}
    else:
        values = {f.postfix: f.echo for f in facts}
    distinct = sorted({round(v, 2) for v in values.values() if v is not None})
    if len(distinct) < 2:
        return {}
    return {p: (None if v is None else distinct.index(round(v, 2)) + 1) for p, v in values.items()}


def _fmap_suffix(series: SeriesName, f: OutputFacts, siblings: list[OutputFacts]) -> str:
    if len(siblings) == 1 and series.suffix in FMAP_STACK_SUFFIXES:
        return series.suffix  # a stack already named by what it holds
    if f.fieldmap_hz:
        return "fieldmap"
    if any(s.fieldmap_hz for s in siblings):
        return "magnitude"
    phases = [s for s in siblings if s.part == "phase"]
    is_phase = f.part == "phase" or (series.suffix == "phasediff" and not phases)
    if is_phase:
        if len(phases) <= 1:
            return "phasediff"
        rank = _echo_ranks(phases).get(f.postfix)
        return f"phase{rank}" if rank else "phasediff"
    if series.suffix == "fieldmap":
        return "fieldmap"  # a B0 map series with no ``_fieldmaphz`` postfix
    mags = [s for s in siblings if s.part != "phase" and not s.fieldmap_hz]
    rank = _echo_ranks(mags).get(f.postfix) if len(mags) > 1 else None
    if rank:
        return f"magnitude{min(rank, 2)}"
    if series.suffix in ("magnitude1", "magnitude2"):
        return series.suffix
    return "magnitude1"


def _make_distinct(result: dict[str, OutputName], facts: dict[str, OutputFacts]) -> None:
    """Two outputs must never share a name: tell alike outputs apart by orientation
    where that differs, else number the later ones in ``acq``."""
    alike: dict[tuple, list[str]] = {}
    for text in sorted(result):
        out = result[text]
        alike.setdefault((out.suffix, out.entities), []).append(text)
    for members in alike.values():
        if len(members) < 2:
            continue
        orientations = [facts[m].orientation for m in members]
        if None not in orientations and len(set(orientations)) == len(members):
            for m, orientation in zip(members, orientations):
                out = result[m]
                ents = dict(out.entities)
                ents["acq"] = join_labels([ents.get("acq") or "", orientation])
                result[m] = OutputName(out.postfix, out.suffix, _ordered(ents), out.tail)
    seen: set[tuple] = set()
    for text in sorted(result):
        out = result[text]
        n = 1
        while (out.suffix, out.entities) in seen:
            n += 1
            ents = dict(result[text].entities)
            ents["acq"] = (ents.get("acq") or "") + f"n{n}"
            out = OutputName(out.postfix, out.suffix, _ordered(ents), out.tail)
        seen.add((out.suffix, out.entities))
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


def is_raw_bids(datatype: str, subfolder: str | None, entities, suffix: str, tail: str, extension: str, session: bool) -> bool:
    """Whether the validator will accept this file as raw data (else: .bidsignore)."""
    if subfolder or tail:
        return False
    keys = {"sub", *dict(entities)} | ({"ses"} if session else set())
    return bids_schema.is_raw_name(datatype, frozenset(keys), suffix, extension)
