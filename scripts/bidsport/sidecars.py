"""Complete the JSON sidecars dcm2niix writes, and say which required keys are missing.

dcm2niix cannot know a BOLD run's task, or that a ``fieldmap`` is in Hz; bidsport
does, from the series table. What the BIDS schema still requires after that and
is missing becomes a warning in the export report (the export page's "Missing
sidecars" case), using the schema's own ``rules.sidecars`` selectors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import bids_files, bids_schema

_SIMPLE = {
    "datatype": re.compile(r'^datatype == "(\w+)"$'),
    "suffix": re.compile(r'^suffix == "(\w+)"$'),
}


def _selector_true(selector: str, datatype: str, suffix: str, sidecar: dict) -> bool | None:
    """Evaluate the selector forms these rules use; None for a form we do not know."""
    sel = selector.strip()
    if m := _SIMPLE["datatype"].match(sel):
        return datatype == m.group(1)
    if m := _SIMPLE["suffix"].match(sel):
        return suffix == m.group(1)
    if m := re.match(r"^intersects\(\[suffix\], \[(.*)\]\)$", sel):
        return suffix in re.findall(r'"(\w+)"', m.group(1))
    if sel.startswith("match(extension"):
        return True  # we only ever check the image's sidecar
    if m := re.match(r'^!\("(\w+)" in sidecar\)$', sel):
        return m.group(1) not in sidecar
    if sel == 'modality == "mri"':
        return True
    return None


def missing_required(datatype: str, suffix: str, sidecar: dict) -> list[str]:
    """Required keys the sidecar lacks; alternatives read ``A or B``."""
    missing: list[str] = []
    alternatives: dict[str, str] = {}
    for selectors, required in bids_schema.sidecar_required_rules():
        verdicts = [_selector_true(s, datatype, suffix, sidecar) for s in selectors]
        if None in verdicts or not all(verdicts):
            continue
        absent = [m.group(1) for s in selectors if (m := re.match(r'^!\("(\w+)" in sidecar\)$', s.strip()))]
        for key in required:
            if key not in sidecar and key not in missing:
                missing.append(key)
                if absent:
                    alternatives[key] = absent[0]
    out: list[str] = []
    for key in missing:
        alt = alternatives.get(key)
        if alt in missing and alternatives.get(alt) == key:
            pair = " or ".join(sorted((key, alt)))
            if pair not in out:
                out.append(pair)
        else:
            out.append(key)
    return out


def fix_sidecars(spec: dict, moves: list[tuple[Path, str]]) -> tuple[list[str], set[str]]:
    """Add what bidsport knows to each sidecar in scratch.

    Returns the warnings and the stems (destination without extension) whose sidecar
    still lacks keys the schema requires: the dataset step lists those files in
    .bidsignore (exported, never dropped), as the report says.
    """
    warnings: list[str] = []
    incomplete: set[str] = set()
    for src, rel in moves:
        if not rel.endswith(".json"):
            continue
        try:
            data = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.append(f"{rel}: unreadable sidecar ({exc})")
            continue
        ents, suffix = bids_files.entities_and_suffix(bids_files.split_extension(rel)[0])
        changed = False
        if suffix == "bold" and ents.get("task") and data.get("TaskName") != ents["task"]:  # the label (an override may set it)
            data["TaskName"] = ents["task"]
            changed = True
        if suffix == "fieldmap" and "Units" not in data:
            data["Units"] = "Hz"  # dcm2niix's _fieldmaphz maps are in Hz
            changed = True
        if (ents.get("part") == "phase" or suffix in ("phase", "phase1", "phase2", "phasediff")) and "Units" not in data:
            data["Units"] = "arbitrary"
            changed = True
        if changed:
            src.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        if spec.get("subfolder") or spec.get("tail"):
            continue  # not raw BIDS: the schema's rules do not apply
        missing = missing_required(spec["datatype"], suffix, data)
        if missing and not (suffix == "phasediff" and set(missing) <= {"EchoTime1", "EchoTime2"}):
            warnings.append(f"{rel}: sidecar lacks required {', '.join(missing)}: listed in .bidsignore")
            incomplete.add(rel[: -len(".json")])
        elif missing:
            warnings.append(f"{rel}: sidecar lacks {', '.join(missing)}: the dataset step takes them from its magnitude1/2 images")
    return warnings, incomplete
