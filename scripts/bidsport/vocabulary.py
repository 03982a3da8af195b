"""The classifier's vocabulary, column by column (``docs/vocabulary.md``).

Every value NILS v0.2.0 emits is listed here, so that the planner can say which
values of a table it does not know (:func:`unknown_values`) instead of guessing
silently. The naming rules for these values are in :mod:`bidsport.mapping`.
"""

from __future__ import annotations

from collections import defaultdict

INTENTS = ("anat", "dwi", "func", "fmap", "perf", "localizer", "misc", "excluded")
BASES = ("T1w", "T2w", "PDw", "T2*w", "DWI", "PWI", "SWI", "MTw", "T1rho", "T2rho", "Unknown")
MODIFIERS = ("FLAIR", "STIR", "DIR", "PSIR", "IR", "FatSat", "WaterExc", "Dixon", "MT", "FlowComp",
             "Radial", "Spiral", "BlackBlood", "BrightBlood", "MoCo")  # fmt: skip
# Canonical technique name → family name; tables may carry either spelling.
TECHNIQUE_FAMILIES = {
    "MDME": "MDME", "SPACE": "3D-TSE", "HASTE": "SS-TSE", "TIRM": "IR-TSE", "MESE": "ME-SE",
    "RESTORE": "VFA-TSE", "TSE": "TSE", "SE": "SE", "QALAS": "QALAS", "MP2RAGE": "MP2RAGE",
    "MEMPRAGE": "MEMPRAGE", "MPRAGE": "MPRAGE", "TOF": "TOF-MRA", "PC": "PC-MRA", "MEDIC": "comb-ME-GRE",
    "MEGRE": "ME-GRE", "CISS": "CISS", "FIESTA": "bSSFP", "DESS": "DESS", "PSIF": "SSFP",
    "VFA-GRE": "VFA-GRE", "VIBE": "VI-GRE", "TurboFLASH": "FSP-GRE", "FLASH": "SP-GRE", "FISP": "SS-GRE",
    "GRE": "GRE", "RESOLVE": "MS-EPI", "EPI": "EPI", "DWI-EPI": "DWI-EPI", "DWI-STEAM": "DWI-STEAM",
    "BOLD": "BOLD-EPI", "ASL": "ASL-EPI", "Perfusion": "Perfusion-EPI", "GRASE": "GRASE",
    "SE-EPI": "SE-EPI", "GRE-EPI": "GRE-EPI", "MRF": "MRF",
}  # fmt: skip
CONSTRUCTS = (
    "ADC", "eADC", "FA", "Trace", "MD",  # diffusion maps
    "CBF", "CBV", "MTT", "Tmax", "TTP",  # perfusion maps
    "Water", "Fat", "InPhase", "OutPhase",  # Dixon
    "T1map", "T2map", "R1map", "R2map", "PDmap",  # quantitative maps
    "INV1", "INV2", "Uniform",  # MP2RAGE
    "Denoised",
    "SyntheticT1w", "SyntheticT2w", "SyntheticFLAIR", "SyntheticPDw", "MyelinMap",  # SyMRI
    "SWI", "Phase", "QSM", "MIP", "MinIP", "MPR",  # SWI and projections
    "B0map", "B1map",  # field maps
    "Magnitude", "Real", "Imaginary",  # image components (Phase is above)
)  # fmt: skip
PROVENANCES = ("SyMRI", "SWIRecon", "EPIMix", "DTIRecon", "PerfusionRecon", "ASLRecon", "BOLDRecon",
               "ProjectionDerived", "SubtractionDerived", "Localizer", "RawRecon")  # fmt: skip
ACCELERATIONS = ("ParallelImaging", "SimultaneousMultiSlice", "PartialFourier", "CompressedSensing", "ViewSharing")
FLAGS = ("post_contrast", "localizer", "spinal_cord", "manual_review_required")

# Column → its known values (comma-list columns are split first).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "directory_type": INTENTS,
    "base": BASES,
    "modifier_csv": MODIFIERS,
    "technique": tuple(TECHNIQUE_FAMILIES) + tuple(v for v in TECHNIQUE_FAMILIES.values() if v not in TECHNIQUE_FAMILIES),
    "construct_csv": CONSTRUCTS,
    "provenance": PROVENANCES,
    "acceleration_csv": ACCELERATIONS,
}
LIST_COLUMNS = ("modifier_csv", "construct_csv", "acceleration_csv")
_CANONICAL = {v.upper(): k for k, v in TECHNIQUE_FAMILIES.items()} | {k.upper(): k for k in TECHNIQUE_FAMILIES}


def canonical_technique(value: str | None) -> str:
    """``TOF-MRA`` → ``TOF``, ``tof`` → ``TOF``; an unknown technique is returned as given."""
    text = (value or "").strip()
    return _CANONICAL.get(text.upper(), text)


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def is_known(column: str, value: str) -> bool:
    if column == "technique":
        return value.upper() in _CANONICAL
    return value in VOCABULARY[column]


def unknown_values(records: list[dict]) -> dict[tuple[str, str], list[int]]:
    """``{(column, value): [line, …]}`` for every value outside the vocabulary."""
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in records:
        for column in VOCABULARY:
            if column == "directory_type":
                continue  # validated by the table schema (an unknown intent is an error)
            raw = r.get(column)
            values = split_list(raw) if column in LIST_COLUMNS else ([str(raw).strip()] if raw else [])
            for value in values:
                if value and not is_known(column, value):
                    found[(column, value)].append(int(r.get("_line", 0)))
    return dict(found)
