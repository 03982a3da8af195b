"""Classification → BIDS destination: the whole mapping as data, in one place.

Read it top to bottom. :data:`RULES` picks the folder and suffix (the first rule
whose condition holds wins); :data:`CONSTRUCT_ENTITIES`, :data:`MODIFIER_ENTITIES`
and :data:`PROVENANCE_ENTITIES` add entities; flags add ``ce-`` and the ``spine``
acquisition label. :func:`bidsport.naming.name_series` applies it, the BIDS schema
(bidsschematools) checks every resulting name, and whatever the schema has no raw
name for is listed in ``.bidsignore`` (never dropped, never renamed into raw data).

The naming table of ``docs/naming.md`` is generated from this module
(``python -m bidsport.mapping``) and a test keeps the two equal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import re

from .stacks import StackRole, is_derived
from .vocabulary import canonical_technique, split_list

DWI_MAPS = {"ADC": "ADC", "eADC": "expADC", "FA": "FA", "Trace": "trace", "MD": "MD"}
PERFUSION_MAPS = {"CBF": "CBF", "CBV": "CBV", "MTT": "MTT", "Tmax": "Tmax", "TTP": "TTP"}
QUANTITATIVE_MAPS = {"T1map": "T1map", "T2map": "T2map", "R1map": "R1map", "R2map": "R2map", "PDmap": "PDmap",
                     "MyelinMap": "MyelinMap"}  # fmt: skip
SYNTHETIC = {"SyntheticT1w": "T1w", "SyntheticT2w": "T2w", "SyntheticFLAIR": "FLAIR", "SyntheticPDw": "PDw"}
# Contrast weighting (``base``) → anat suffix. T1rho/T2rho-*weighted* images are not
# the BIDS T1rho map, so they get a suffix of their own (listed in .bidsignore).
BASE_SUFFIX = {"T1w": "T1w", "T2w": "T2w", "PDw": "PDw", "T2*w": "T2starw", "T2starw": "T2starw", "MTw": "MTw",
               "T1rho": "T1rhow", "T2rho": "T2rhow", "SWI": "swi", "DWI": "dwi", "PWI": "PWI", "Unknown": "unknown"}  # fmt: skip
EPI_TECHNIQUES = {"EPI", "SE-EPI", "GRE-EPI", "DWI-EPI", "RESOLVE"}
FMAP_CONSTRUCTS = {"Magnitude", "Phase", "B0map"}
ASL_TECHNIQUES = {"ASL"}
MULTI_ECHO = {"MEGRE": "MEGRE", "MESE": "MESE"}  # technique → suffix when dcm2niix gives several echoes

# Constructs that add an entity (anat, dwi, func, perf, SWI; a fieldmap's
# Magnitude/Phase choose its suffix instead). Several rec- values join in this order.
CONSTRUCT_ENTITIES = {
    "INV1": ("inv", "1"), "INV2": ("inv", "2"),
    "Water": ("rec", "water"), "Fat": ("rec", "fat"), "InPhase": ("rec", "inphase"), "OutPhase": ("rec", "outphase"),
    "Denoised": ("rec", "denoised"),
    "MIP": ("rec", "mip"), "MinIP": ("rec", "minip"), "MPR": ("rec", "mpr"),
    "Magnitude": ("part", "mag"), "Phase": ("part", "phase"), "Real": ("part", "real"), "Imaginary": ("part", "imag"),
}  # fmt: skip
# Modifiers that change what the image shows: always named (other modifiers name
# an image only when a sibling in the session differs by them, see plan.py).
MODIFIER_ENTITIES = {
    "STIR": ("acq", "STIR"), "DIR": ("acq", "DIR"), "PSIR": ("acq", "PSIR"), "MT": ("acq", "MT"),
    "MoCo": ("rec", "moco"),
}  # fmt: skip
PROVENANCE_ENTITIES = {
    "SubtractionDerived": ("rec", "subtraction"),
    "ProjectionDerived": ("rec", "projection"),  # unless a MIP/MinIP/MPR construct says which
    "EPIMix": ("acq", "epimix"),
}
SPINAL_CORD_ACQ = "spine"  # spinal_cord = 1: never shares a name with a brain image
CONTRAST_AGENT = "gadolinium"  # post_contrast = 1


@dataclass(frozen=True)
class Classification:
    """One series-table row's classification, normalised."""

    intent: str
    base: str = ""
    modifiers: frozenset = frozenset()
    technique: str = ""  # canonical spelling (MPRAGE, TOF …)
    constructs: frozenset = frozenset()
    provenance: str = "RawRecon"
    acceleration: frozenset = frozenset()
    post_contrast: bool = False
    spinal_cord: bool = False
    localizer: bool = False
    pe_dir: str = ""  # phase_encoding_direction from the table (empty: from the images)
    stack: StackRole = StackRole()  # what tells this stack from its siblings (stacks.tell_apart)
    image_type: str = ""  # DICOM ImageType (the stack's column, else read from the images)
    description: str = ""  # series_description (only to recognise an ASL M0 scan)

    @classmethod
    def from_row(cls, row: dict, stack: StackRole | None = None, image_type: str | None = None) -> "Classification":
        """``stack``: the row's :class:`~bidsport.stacks.StackRole`; ``image_type``: the
        images' ImageType where the table has no ``stack_image_type``."""

        def flag(name: str) -> bool:
            return str(row.get(name, "") or "").strip() == "1"

        return cls(
            intent=row.get("directory_type", "") or "",
            base=(row.get("base") or "").strip(),
            modifiers=frozenset(split_list(row.get("modifier_csv"))),
            technique=canonical_technique(row.get("technique")),
            constructs=frozenset(split_list(row.get("construct_csv"))),
            provenance=(row.get("provenance") or "RawRecon").strip(),
            acceleration=frozenset(split_list(row.get("acceleration_csv"))),
            post_contrast=flag("post_contrast"),
            spinal_cord=flag("spinal_cord"),
            localizer=flag("localizer"),
            pe_dir=(row.get("phase_encoding_direction") or "").strip(),
            stack=stack or StackRole(),
            image_type=(row.get("stack_image_type") or image_type or "").strip(),
            description=(row.get("series_description") or "").strip(),
        )

    @property
    def derived(self) -> bool:
        """A scanner-computed image by its ImageType (never by provenance alone)."""
        return is_derived(self.image_type)

    def has(self, *constructs: str) -> bool:
        return bool(self.constructs & set(constructs))

    def first(self, table: dict) -> str | None:
        """The table's value for the first of this row's constructs it lists."""
        return next((table[c] for c in table if c in self.constructs), None)


def base_contrast(c: Classification) -> str:
    """The anat suffix a plain image of this contrast gets."""
    if "FLAIR" in c.modifiers and c.base not in ("T1w", "PDw"):
        return "FLAIR"
    if c.base:
        return BASE_SUFFIX.get(c.base, c.base)
    if c.technique in ("TOF", "PC"):
        return "angio"
    return "unknown"  # no contrast given: say so rather than guess T1w


@dataclass(frozen=True)
class Rule:
    when: str  # the condition, as the naming table shows it
    test: Callable[[Classification], bool]
    datatype: str
    suffix: str | Callable[[Classification], str]
    shown: str  # the destination, as the naming table shows it
    kind: str = "raw"  # raw | derived | synthetic | swi | localizer | misc | excluded
    role: str = "image"  # image | fmap | epi | dwi
    subfolder: str | None = None
    tail: str = ""

    def suffix_for(self, c: Classification) -> str:
        return self.suffix(c) if callable(self.suffix) else self.suffix


def _symri(c: Classification) -> bool:
    return c.provenance == "SyMRI" or c.has(*SYNTHETIC)


_M0_WORD = re.compile(r"(?<![a-z0-9])m0(scan)?(?![a-z0-9])", re.IGNORECASE)


def _perf_image(c: Classification) -> str:
    if c.base == "PDw" or c.has("M0", "M0scan") or _M0_WORD.search(c.description):
        return "m0scan"
    if "ASL" in c.technique.upper() or c.provenance == "ASLRecon":  # ASL, PASL, pCASL …
        return "asl"
    return "dsc" if c.base == "PWI" or c.technique == "Perfusion" else "asl"


# First match wins. Order: what the image *is* (maps, synthetics) before how it was
# acquired, so that a map is never named as raw data.
RULES: tuple[Rule, ...] = (
    Rule("`directory_type` excluded (the classifier's verdict)", lambda c: c.intent == "excluded",
         "", "", "not exported; reported as `excluded`", kind="excluded"),
    Rule("`localizer` = 1, intent `localizer` or provenance `Localizer` (whatever the intent)",
         lambda c: c.localizer or c.intent == "localizer" or c.provenance == "Localizer",
         "misc", "localizer", "`misc/…_localizer`", kind="localizer"),
    Rule("intent `misc`", lambda c: c.intent == "misc", "misc", "misc", "`misc/…_misc`", kind="misc"),
    Rule("construct `ADC`, `eADC`, `FA`, `Trace`, `MD` (diffusion maps)", lambda c: c.has(*DWI_MAPS),
         "dwi", lambda c: c.first(DWI_MAPS), "`dwi/…_ADC`, `_expADC`, `_FA`, `_trace` (BIDS scanner derivatives), `_MD`",
         kind="derived"),
    Rule("construct `CBF`, `CBV`, `MTT`, `Tmax`, `TTP` (perfusion maps)", lambda c: c.has(*PERFUSION_MAPS),
         "perf", lambda c: c.first(PERFUSION_MAPS), "`perf/…_CBF`, `_CBV`, `_MTT`, `_Tmax`, `_TTP`", kind="derived"),
    Rule("construct `B1map`", lambda c: c.has("B1map"), "fmap", "TB1map", "`fmap/…_TB1map`", kind="derived"),
    Rule("construct `QSM`", lambda c: c.has("QSM"), "anat", "Chimap", "`anat/…_Chimap` (BIDS susceptibility map)",
         kind="derived"),
    Rule("provenance `SyMRI` with a map (`T1map`, `T2map`, `R1map`, `R2map`, `PDmap`, `MyelinMap`)",
         lambda c: _symri(c) and c.has(*QUANTITATIVE_MAPS), "anat", lambda c: c.first(QUANTITATIVE_MAPS),
         "`anat/SyMRI/…_T1map` …", kind="synthetic", subfolder="SyMRI"),
    Rule("provenance `SyMRI` or construct `Synthetic<X>`", _symri, "anat",
         lambda c: c.first(SYNTHETIC) or base_contrast(c), "`anat/SyMRI/…_<X>_synth`", kind="synthetic",
         subfolder="SyMRI", tail="_synth"),
    Rule("construct `T1map`, `T2map`, `R1map`, `R2map`, `PDmap`, `MyelinMap`", lambda c: c.has(*QUANTITATIVE_MAPS),
         "anat", lambda c: c.first(QUANTITATIVE_MAPS), "`anat/…_T1map` … (BIDS parametric maps; `_MyelinMap`)",
         kind="derived"),
    Rule("provenance `SWIRecon`, base `SWI` or construct `SWI`",
         lambda c: c.provenance == "SWIRecon" or c.base == "SWI" or c.has("SWI"), "anat", "swi", "`anat/…_swi`",
         kind="swi"),
    Rule("construct `Uniform` (MP2RAGE)", lambda c: c.has("Uniform"), "anat", "UNIT1", "`anat/…_UNIT1`"),
    Rule("construct `INV1`/`INV2`, or technique `MP2RAGE` with `multi_ti` stacks",
         lambda c: c.has("INV1", "INV2") or (c.technique == "MP2RAGE" and c.stack.inv is not None),
         "anat", "MP2RAGE", "`anat/…_inv-1_MP2RAGE`, `_inv-2_MP2RAGE`"),
    Rule("stacks that differ in inversion time", lambda c: c.stack.inv is not None,
         "anat", "IRT1", "`anat/…_inv-<rank of its inversion time>_IRT1`"),
    Rule("technique `TOF` or `PC` (MR angiography)", lambda c: c.technique in ("TOF", "PC"), "anat", "angio",
         "`anat/…_angio`"),
    Rule("intent `fmap`, technique EPI-like or a phase-encoding direction, no `Magnitude`/`Phase`/`B0map`",
         lambda c: c.intent == "fmap" and (c.technique in EPI_TECHNIQUES or c.pe_dir) and not c.has(*FMAP_CONSTRUCTS),
         "fmap", "epi", "`fmap/…_dir-<PE>_epi` (PE from the table, else from the images)", role="epi"),
    Rule("intent `fmap` (gradient-echo fieldmap)", lambda c: c.intent == "fmap", "fmap",
         lambda c: "fieldmap" if c.has("B0map") else "phasediff" if c.has("Phase") else "magnitude",
         "`magnitude1/2`, `phasediff` or `phase1/2`, `fieldmap` + `magnitude`: chosen by what the images are",
         role="fmap"),
    Rule("intent `func` (or provenance `BOLDRecon`), ImageType `DERIVED`, no `MoCo`",
         lambda c: (c.intent == "func" or c.provenance == "BOLDRecon") and c.derived and "MoCo" not in c.modifiers,
         "func", "boldmap", "`func/…_task-<task>_boldmap` (scanner-derived, not raw BOLD)", kind="derived"),
    Rule("intent `func` or provenance `BOLDRecon` (raw BOLD)", lambda c: c.intent == "func" or c.provenance == "BOLDRecon",
         "func", "bold", "`func/…_task-<task, default rest>[_echo-N][_dir-XX]_bold` (`MoCo`: `rec-moco`)"),
    Rule("intent `dwi` or provenance `DTIRecon`, ImageType `DERIVED`, no map construct",
         lambda c: (c.intent == "dwi" or c.provenance == "DTIRecon") and c.derived, "dwi", "DTI",
         "`dwi/…_DTI` (scanner-derived, not raw diffusion data)", kind="derived"),
    Rule("intent `dwi` or provenance `DTIRecon` (raw diffusion)", lambda c: c.intent == "dwi" or c.provenance == "DTIRecon",
         "dwi", "dwi", "`dwi/…[_dir-XX]_dwi` + `.bval`/`.bvec`", role="dwi"),
    Rule("intent `perf` or provenance `PerfusionRecon`/`ASLRecon`, ImageType `DERIVED`, no map construct",
         lambda c: (c.intent == "perf" or c.provenance in ("PerfusionRecon", "ASLRecon")) and c.derived, "perf", "PWI",
         "`perf/…_PWI` (scanner-derived perfusion image)", kind="derived"),
    Rule("intent `perf` or provenance `PerfusionRecon`/`ASLRecon` (raw perfusion)",
         lambda c: c.intent == "perf" or c.provenance in ("PerfusionRecon", "ASLRecon"), "perf", _perf_image,
         "M0 (base `PDw`, construct `M0`, or `M0` in the description) → `perf/…_m0scan`; technique `ASL` or provenance "
         "`ASLRecon` → `_asl` (+ `aslcontext.tsv`); DSC (`PWI`) → `_dsc`"),
    Rule("technique `MEGRE`/`MESE` with several echoes", lambda c: c.intent == "anat" and c.technique in MULTI_ECHO,
         "anat", base_contrast, "`anat/…_echo-<n>_MEGRE` / `_MESE` (one echo: the base contrast)"),
    Rule("intent `anat`", lambda c: True, "anat", base_contrast,
         "`anat/…_<base>`: `T1w`, `T2w`, `PDw`, `T2starw`, `FLAIR` (modifier; on T1w/PDw: `acq-FLAIR`), "
         "`MTw`, `T1rhow`, `T2rhow`, `unknown`"),
)  # fmt: skip


def rule_for(c: Classification) -> Rule:
    return next(rule for rule in RULES if rule.test(c))


def markdown_table() -> str:
    """The naming table of docs/naming.md, generated from :data:`RULES` and the entity tables."""
    lines = ["| classification (first match wins) | destination |", "|---|---|"]
    lines += [f"| {rule.when} | {rule.shown} |" for rule in RULES]
    lines.append("")
    lines.append("| value | adds |")
    lines.append("|---|---|")
    for table, column in ((CONSTRUCT_ENTITIES, "construct"), (MODIFIER_ENTITIES, "modifier"), (PROVENANCE_ENTITIES, "provenance")):
        grouped: dict[tuple[str, str], list[str]] = {}
        for value, (key, label) in table.items():
            grouped.setdefault((key, label), []).append(value)
        for (key, label), values in grouped.items():
            lines.append(f"| {column} {', '.join(f'`{v}`' for v in values)} | `{key}-{label}` |")
    lines.append(f"| `post_contrast` = 1 | `ce-{CONTRAST_AGENT}` |")
    lines.append(f"| `spinal_cord` = 1 | `acq-{SPINAL_CORD_ACQ}` (first in the label) |")
    lines.append("| modifier `FLAIR` on base `T1w`/`PDw` | `acq-FLAIR` |")
    lines.append("| stacks of one series that differ in echo time / inversion time | `echo-<rank>` / `inv-<rank>` "
                 "(rank of the stack's value, never its index) |")
    lines.append("| stacks that differ in ImageType (magnitude/phase) | `part-mag`/`part-phase`; fieldmaps: "
                 "`magnitude1/2`, `phase1/2` or `phasediff` |")
    lines.append("| stacks that differ in orientation | `acq-axial`, `acq-coronal`, `acq-sagittal` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
