"""dcm2niix's outputs of one series job: collected, matched to the row's stack, named.

Outputs are grouped by dcm2niix's postfix; what each one *is* comes from its sidecar
(:mod:`bidsport.images`), so a stack takes the output its columns describe and every
output gets a BIDS name from what it holds, never from sort order or postfix text.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import dcm2niix as d2n
from . import images, naming, stacks
from .outcomes import SeriesFailed


NIFTI_EXTS = (".nii.gz", ".nii")

COMPANION_EXTS = (".json", ".bval", ".bvec")

def collect_outputs(scratch: Path, filename: str = "series") -> dict[str, list[Path]]:
    """dcm2niix outputs grouped by postfix: ``{"_e1": [nii, json], "": [...]}``."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(scratch.iterdir()):
        name = path.name
        if not name.startswith(filename):
            continue
        ext = next((e for e in NIFTI_EXTS + COMPANION_EXTS if name.endswith(e)), None)
        if ext is None:
            continue
        groups.setdefault(name[len(filename) : -len(ext)], []).append(path)
    # Keep only groups that hold an image: a stray sidecar is not an output.
    return {k: v for k, v in groups.items() if any(p.name.endswith(NIFTI_EXTS) for p in v)}

def convert_alone(dcm2niix: str, source: Path, uid: str, out: Path, compress: bool, timeout: float | None):
    """Convert all of ``source`` with outputs named ``series_<SeriesInstanceUID>…``:
    (result, this series' output groups, names of other series' images). Other
    series' outputs are deleted; where none is named by our UID, all are kept.

    dcm2niix's ``%j`` is not always the UID: for Siemens XA classic
    ("interoperability") exports it is the SeriesTime, under which dcm2niix merges
    the series such an export splits a run into. No group is then found, and the
    caller takes the exact path (the series' own files, by header), reusing these
    outputs where the folder turns out to hold only this series
    (:func:`outputs_of_one_series`)."""
    out.mkdir(parents=True)
    prefix = f"series_{uid}"
    result = d2n.convert(dcm2niix, source, out, compress=compress, filename="series_%j", timeout=timeout)
    groups = collect_outputs(out, prefix)
    strangers = sorted(p.name for p in out.iterdir() if p.name.endswith(NIFTI_EXTS) and not named_for(p.name, prefix))
    if groups:
        for path in out.iterdir():
            if not named_for(path.name, prefix):
                path.unlink()
    return result, groups, strangers

def outputs_of_one_series(out: Path) -> dict[str, list[Path]]:
    """The output groups of a ``series_%j`` conversion whose images all carry the
    same ``%j`` value (one series, named by something else than its UID); {} if
    they carry several or none."""
    values = set()
    for path in out.iterdir():
        ext = next((e for e in NIFTI_EXTS if path.name.endswith(e)), None)
        if ext and path.name.startswith("series_"):
            values.add(path.name[len("series_") : -len(ext)].split("_", 1)[0])
    return collect_outputs(out, f"series_{values.pop()}") if len(values) == 1 else {}

def named_for(name: str, prefix: str) -> bool:
    """Whether a dcm2niix output is ``prefix`` + postfix (``_e2``, ``_ph``, ``a`` …) +
    extension: a UID that merely starts with ours (``1.2.3`` vs ``1.2.34``) is not."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return not (rest[:1].isdigit() or (rest[:1] == "." and rest[1:2].isdigit()))

def sidecar_facts(groups: dict[str, list[Path]]) -> dict[str, images.OutputFacts]:
    """postfix → what each output is, from its sidecar (its postfix where it has none)."""
    facts = {}
    for postfix, files in groups.items():
        sidecar = next((p for p in files if p.name.endswith(".json")), None)
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar else {}
        except (OSError, ValueError):
            data = {}
        facts[postfix] = images.output_facts(postfix, data)
    return facts

def _matches(output: images.OutputFacts, stack: dict) -> bool:
    """Whether a converted image is what the stack's columns say the stack holds."""
    if "echo_time" in stack and output.echo_time is not None:
        if abs(output.echo_time - float(stack["echo_time"])) > max(stacks.ECHO_TOLERANCE_MS, 0.005 * stack["echo_time"]):
            return False
    wanted = stacks.image_part(stack.get("image_type"))
    if wanted and (output.part or "mag") != wanted:
        return False
    if "image_orientation" in stack and output.orientation:
        if output.orientation != str(stack["image_orientation"]).lower():
            return False
    return True

def select_stack(groups: dict[str, list[Path]], spec: dict, facts: dict[str, images.OutputFacts]) -> dict[str, list[Path]]:
    """For one stack of a multi-stack series, keep the outputs that are that stack:
    matched by what the stack's columns say it holds (echo time, ImageType,
    orientation) against each output's sidecar, never by order."""
    n = int(spec.get("n_stacks") or 1)
    stack = spec.get("stack") or {}
    if n <= 1:
        return groups
    if not stack:
        return _select_by_index(groups, spec)
    chosen = {p: files for p, files in groups.items() if _matches(facts[p], stack)}
    if not chosen:
        raise SeriesFailed(
            f"none of the {len(groups)} image(s) dcm2niix wrote for this series is stack {spec.get('stack_index', 0)} "
            f"({_describe_stack(stack)}): it wrote {'; '.join(_describe_output(facts[p]) for p in sorted(groups))}"
        )
    return chosen

def _describe_stack(stack: dict) -> str:
    shown = [f"echo time {stack['echo_time']:g} ms" if "echo_time" in stack else "",
             f"ImageType {stack['image_type']}" if stack.get("image_type") else "",
             f"orientation {stack['image_orientation']}" if stack.get("image_orientation") else ""]  # fmt: skip
    return ", ".join(x for x in shown if x) or "no stack columns"

def _describe_output(f: images.OutputFacts) -> str:
    echo = f"echo time {f.echo_time:g} ms" if f.echo_time is not None else "no echo time"
    return f"{f.postfix or '(plain)'}: {echo}, {f.part or 'mag'}" + (f", {f.orientation}" if f.orientation else "")

def _select_by_index(groups: dict[str, list[Path]], spec: dict) -> dict[str, list[Path]]:
    """A table without stack columns: echoes (``multi_echo``) or sorted postfixes
    taken in stack order, the plan's warning says so."""
    n = int(spec.get("n_stacks") or 1)
    index = int(spec.get("stack_index") or 0)
    postfixes = sorted(groups)
    if spec.get("stack_key") == "multi_echo":
        echoes = sorted({images.output_facts(p).echo or 0 for p in postfixes})
        if len(echoes) == n:
            wanted = echoes[index]
            return {p: groups[p] for p in postfixes if (images.output_facts(p).echo or 0) == wanted}
    if len(postfixes) == n:
        return {postfixes[index]: groups[postfixes[index]]}
    if len(postfixes) % n == 0:  # e.g. 2 stacks × (mag, phase)
        per = len(postfixes) // n
        chosen = postfixes[index * per : (index + 1) * per]
        return {p: groups[p] for p in chosen}
    raise SeriesFailed(
        f"the table lists {n} stacks for this series but dcm2niix wrote {len(postfixes)} "
        f"outputs ({', '.join(p or '(plain)' for p in postfixes)}); cannot tell which is stack {index} "
        "(give the stack columns stack_echo_time / stack_image_type)"
    )

def plan_nifti_files(spec: dict, groups: dict[str, list[Path]], facts: dict[str, images.OutputFacts] | None = None) -> list[tuple[Path, str]]:
    """(scratch file, destination relative to output_dir) for every output file."""
    series_name = naming.SeriesName(
        datatype=spec["datatype"],
        suffix=spec["suffix"],
        entities=tuple(tuple(e) for e in spec["entities"]),
        subfolder=spec.get("subfolder"),
        tail=spec.get("tail", ""),
        role=spec.get("role", "image"),
        kind=spec.get("kind", "raw"),
        multi_suffix=spec.get("multi_suffix", ""),
    )
    facts = facts if facts is not None else sidecar_facts(groups)
    names = naming.name_outputs(series_name, {p: facts[p] for p in groups})
    moves: list[tuple[Path, str]] = []
    for postfix, files in groups.items():
        out = names[postfix]
        stem = naming.stem(spec["subject"], spec.get("session"), out.entities, out.suffix, out.tail, spec.get("run"))
        for path in files:
            ext = next(e for e in NIFTI_EXTS + COMPANION_EXTS if path.name.endswith(e))
            moves.append((path, "/".join(p for p in (spec["nifti_dir"], stem + ext) if p)))
    return moves

def direction_warnings(spec: dict, moves: list[tuple[Path, str]]) -> list[str]:
    """Say so where the planned ``dir-`` and the image's phase encoding disagree."""
    planned = dict(map(tuple, spec.get("entities", []))).get("dir")
    if not planned or any(f"_dir-{planned}_" not in Path(rel).name for _, rel in moves):
        return []  # no planned direction, or outputs named by their own directions
    for src, rel in moves:
        if not rel.endswith(".json"):
            continue
        try:
            data = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = images.dir_label(data.get("PhaseEncodingDirection"), data.get("ImageOrientationPatientDICOM"))
        if found and found != planned:
            return [f"named dir-{planned} (as planned), but the image encodes {found} "
                    f"(PhaseEncodingDirection {data['PhaseEncodingDirection']}): check the table"]  # fmt: skip
        return []
    return []
