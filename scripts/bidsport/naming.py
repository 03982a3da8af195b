"""BIDS names for classified series, and for every file dcm2niix writes for them.

Two steps, both pure functions:

1. :func:`name_series` turns one series-table row (its classification and
   provenance) into a :class:`SeriesName`: the datatype folder, an optional routing
   subfolder (``SyMRI``), ordered entities, the suffix and a *role* that says how
   the series' several dcm2niix outputs are told apart.
2. :func:`name_outputs` takes the dcm2niix postfixes of one conversion
   (``""``, ``_e1``, ``_e2_ph``, ``_fieldmaphz``, ``_i00001`` …) and gives each output
   its own final stem, so that nothing is overwritten and nothing is dropped.

Defaults follow ``shared/DESIGN.md`` (table "BIDS naming, by default").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import bids_schema
from .labels import sanitize_label

# Contrast weighting (``base``) → anat suffix.
ANAT_SUFFIX = {
    "T1w": "T1w",
    "T2w": "T2w",
    "PDw": "PDw",
    "T2*w": "T2starw",
    "T2starw": "T2starw",
    "FLAIR": "FLAIR",
    "PDT2": "PDT2",
    "angio": "angio",
}
# ``construct_csv`` values that are BIDS parametric anat maps.
ANAT_MAPS = {
    "T1map", "T2map", "T2starmap", "R1map", "R2map", "R2starmap", "PDmap",
    "MTRmap", "MTsat", "UNIT1", "T1rho", "MWFmap", "MTVmap", "Chimap", "S0map", "M0map",
}  # fmt: skip
# DWI scanner derivatives (BIDS 1.10+ ``ScannerDerivatives``): construct → suffix.
DWI_DERIVED = {"ADC": "ADC", "FA": "FA", "Trace": "trace", "TRACEW": "trace", "S0map": "S0map",
               "colFA": "colFA", "ColFA": "colFA", "eADC": "expADC", "expADC": "expADC"}  # fmt: skip
SYMRI_SYNTHETIC = re.compile(r"^Synthetic(?P<contrast>.+)$")
# Modifiers that are kept in the ``acq`` label because they change the contrast.
ACQ_MODIFIERS = ("STIR", "DIR", "PSIR", "MT")


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

    def entity(self, key: str) -> str | None:
        return dict(self.entities).get(key)

    def with_entity(self, key: str, value: str | None) -> "SeriesName":
        ents = dict(self.entities)
        if value is None:
            ents.pop(key, None)
        else:
            ents[key] = value
        return replace(self, entities=tuple(ents.items()))


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def name_series(row: dict, *, symri_subfolder: bool = True) -> SeriesName:
    """Name one series from its classification (a series-table row as a dict)."""
    intent = row.get("directory_type", "")
    provenance = row.get("provenance") or "RawRecon"
    base = row.get("base") or ""
    constructs = _csv(row.get("construct_csv"))
    modifiers = _csv(row.get("modifier_csv"))
    technique = (row.get("technique") or "").upper()
    entities: dict[str, str] = {}
    if str(row.get("post_contrast", "")) == "1":
        entities["ce"] = "gadolinium"
    pe_dir = row.get("phase_encoding_direction") or None

    if intent in ("localizer", "misc") or provenance == "Localizer":
        folder = "misc"
        suffix = "localizer" if (intent == "localizer" or provenance == "Localizer") else "misc"
        return SeriesName(folder, suffix, _ordered(entities), kind="localizer" if suffix == "localizer" else "misc")

    if provenance == "SyMRI":
        synthetic = [m.group("contrast") for c in constructs if (m := SYMRI_SYNTHETIC.match(c))]
        maps = [c for c in constructs if c in ANAT_MAPS]
        if maps and not synthetic:
            return SeriesName("anat", maps[0], _ordered(entities), "SyMRI" if symri_subfolder else None, kind="synthetic")
        contrast = synthetic[0] if synthetic else (base or (constructs[0] if constructs else "T1w"))
        suffix = ANAT_SUFFIX.get(contrast, sanitize_label(contrast))
        return SeriesName("anat", suffix, _ordered(entities), "SyMRI" if symri_subfolder else None, "_synth", kind="synthetic")

    if provenance == "SWIRecon" or base == "SWI" or "SWI" in constructs:
        if "QSM" in constructs:
            entities["acq"] = "qsm"
            return SeriesName("anat", "T2starw", _ordered(entities), kind="swi")
        if "MinIP" in constructs or "MIP" in constructs:
            entities["rec"] = "minip" if "MinIP" in constructs else "mip"
            return SeriesName("anat", "swi", _ordered(entities), kind="swi")
        if "Phase" in constructs:
            entities["part"] = "phase"
        elif "Magnitude" in constructs:
            entities["part"] = "mag"
        return SeriesName("anat", "swi", _ordered(entities), kind="swi")

    derived_dwi = [c for c in constructs if c in DWI_DERIVED]
    if derived_dwi and (intent == "dwi" or provenance == "DTIRecon"):
        return SeriesName("dwi", DWI_DERIVED[derived_dwi[0]], _ordered(entities), kind="derived")

    if provenance in ("ProjectionDerived", "SubtractionDerived"):
        projection = next((c for c in constructs if c in ("MIP", "MinIP")), None)
        entities["rec"] = sanitize_label(projection.lower()) if projection else (
            "subtraction" if provenance == "SubtractionDerived" else "projection"
        )
        suffix = _anat_suffix(base, modifiers) if intent in ("anat", "") else _intent_suffix(intent)
        return SeriesName(intent or "anat", suffix, _ordered(entities), kind="derived")

    if intent == "perf" or provenance == "PerfusionRecon":
        maps = [sanitize_label(c) for c in constructs]
        if maps:
            return SeriesName("perf", maps[0], _ordered(entities), kind="derived")
        if base == "PWI" and "ASL" not in technique:  # ASL, PASL, PCASL … are ASL
            return SeriesName("perf", "dsc", _ordered(entities), kind="derived")
        if pe_dir:
            entities["dir"] = pe_dir
        return SeriesName("perf", "asl", _ordered(entities), kind="raw")

    if intent == "anat":
        maps = [c for c in constructs if c in ANAT_MAPS]
        acq = [m for m in modifiers if m in ACQ_MODIFIERS]
        if acq:
            entities["acq"] = sanitize_label("".join(acq))
        suffix = maps[0] if maps else _anat_suffix(base, modifiers)
        return SeriesName("anat", suffix, _ordered(entities))

    if intent == "func":
        entities["task"] = sanitize_label(row.get("task") or "rest")
        if pe_dir:
            entities["dir"] = pe_dir
        return SeriesName("func", "bold", _ordered(entities))

    if intent == "dwi":
        if pe_dir:
            entities["dir"] = pe_dir
        return SeriesName("dwi", "dwi", _ordered(entities), role="dwi")

    if intent == "fmap":
        fmap_hints = {"Magnitude", "Phase", "B0map", "Fieldmap", "PhaseDiff"}
        is_epi = (technique in ("EPI", "SE-EPI", "SEEPI", "GRE-EPI") or pe_dir) and not (fmap_hints & set(constructs))
        if is_epi:
            entities["dir"] = pe_dir or "AP"
            return SeriesName("fmap", "epi", _ordered(entities), role="epi")
        hint = "phasediff" if ("Phase" in constructs or "PhaseDiff" in constructs) else (
            "fieldmap" if ("B0map" in constructs or "Fieldmap" in constructs) else "magnitude"
        )
        return SeriesName("fmap", hint, _ordered(entities), role="fmap")

    raise ValueError(f"no naming rule for directory_type {intent!r}")


def _anat_suffix(base: str, modifiers: list[str]) -> str:
    if "FLAIR" in modifiers:
        return "FLAIR"
    if base in ANAT_SUFFIX:
        return ANAT_SUFFIX[base]
    return sanitize_label(base) if base else "T1w"


def _intent_suffix(intent: str) -> str:
    return {"dwi": "dwi", "func": "bold", "fmap": "epi", "perf": "asl"}.get(intent, "T1w")


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


def is_raw_bids(datatype: str, subfolder: str | None, entities, suffix: str, tail: str, extension: str, session: bool) -> bool:
    """Whether the validator will accept this file as raw data (else: .bidsignore)."""
    if subfolder or tail:
        return False
    keys = {"sub", *dict(entities)} | ({"ses"} if session else set())
    return bids_schema.is_raw_name(datatype, frozenset(keys), suffix, extension)
