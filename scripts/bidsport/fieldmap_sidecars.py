"""The dataset step's edits of the sidecars the series jobs wrote, for fieldmaps:
``phasediff`` EchoTime1/2 from its magnitude images, the fieldmaps the validator
would reject (exported, listed in ``.bidsignore``), and ``B0FieldIdentifier`` /
``B0FieldSource`` / ``IntendedFor`` from the final names (matching: ``fieldmaps``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import fieldmaps
from .acquisition import acquisition
from .bids_files import NIFTI_EXTS, is_raw_image, sidecar_of
from .fsutil import write_if_changed

# A fieldmap image → the sibling the validator requires beside it (same name otherwise).
_NEEDS_MAGNITUDE = {"phasediff": "magnitude1", "phase1": "magnitude1", "phase2": "magnitude2", "fieldmap": "magnitude"}


def fill_phasediff_echo_times(output_dir: Path, files: list[str]) -> None:
    """``phasediff`` needs EchoTime1/2: take them from its magnitude1/2 siblings."""
    for rel in files:
        if not rel.endswith("_phasediff.json"):
            continue
        path = output_dir / rel
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "EchoTime1" in data and "EchoTime2" in data:
            continue
        times = []
        for n in (1, 2):
            mag = path.with_name(path.name.replace("_phasediff.json", f"_magnitude{n}.json"))
            try:
                times.append(json.loads(mag.read_text(encoding="utf-8")).get("EchoTime"))
            except (OSError, ValueError):
                times.append(None)
        if all(t is not None for t in times) and times[0] != times[1]:
            data["EchoTime1"], data["EchoTime2"] = sorted(times)
            write_if_changed(path, json.dumps(data, indent=2) + "\n")


def incomplete_fieldmaps(output_dir: Path, files: list[str], everything: set[str]) -> dict[str, str]:
    """NIfTI fieldmaps among ``files`` that the validator would reject, and why: a
    phase or Hz map whose magnitude image was not exported (``everything``: every
    file of the export), or a ``phasediff`` still without EchoTime1/EchoTime2."""
    found = {}
    for rel in files:
        if not rel.endswith(NIFTI_EXTS) or not fieldmaps.is_fieldmap_file(rel):
            continue
        suffix = rel.rsplit("_", 1)[-1].split(".")[0]
        needed = _NEEDS_MAGNITUDE.get(suffix)
        if needed is None:
            continue
        ext = ".nii.gz" if rel.endswith(".nii.gz") else ".nii"
        sibling = rel[: -len(suffix + ext)] + needed + ext
        if sibling not in everything:
            found[rel] = f"a {suffix} without its {needed} image (not in the export)"
            continue
        if suffix == "phasediff":
            try:
                data = json.loads((output_dir / sidecar_of(rel)).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            if not ("EchoTime1" in data and "EchoTime2" in data):
                found[rel] = "a phasediff without EchoTime1/EchoTime2 (neither dcm2niix nor its magnitude images give them)"
    return found


def complete_fieldmaps(output_dir: Path, by_key: dict[str, dict]) -> set[str]:
    """Fill phasediff echo times, then flag the fieldmaps the validator would still
    reject: each gets a warning in its series' manifest (``by_key``, merged); returns
    those images and their sidecars (exported, but listed in ``.bidsignore``)."""
    all_files = [f["path"] for m in by_key.values() for f in m["files"]]
    fill_phasediff_echo_times(output_dir, all_files)
    everything = set(all_files)  # once: each series' fieldmaps look up their siblings in it
    incomplete: set[str] = set()
    for m in by_key.values():
        for rel, reason in incomplete_fieldmaps(output_dir, [f["path"] for f in m["files"]], everything).items():
            incomplete |= {rel, sidecar_of(rel)}
            m["warnings"].append(f"{rel}: {reason}: exported, listed in .bidsignore")
    return incomplete


def links_table(cfg: dict, plan: list[dict], excluded: list[dict]) -> list[fieldmaps.LinkOverride]:
    """The links table (``fieldmap_links_table``), checked against the plan; raises TableError."""
    path = fieldmaps.table_path(cfg, "fieldmap_links_table")
    if not path:
        return []
    return fieldmaps.check_links_table(path, plan, excluded)


def link_fieldmaps(output_dir: Path, plan: list[dict], by_key: dict, cfg: dict, links: list | tuple = (),
                   incomplete: set[str] = frozenset()) -> None:  # fmt: skip
    """B0FieldIdentifier / B0FieldSource (+ IntendedFor) from the final names."""
    images = []
    files_of: dict[tuple[str, int], list[str]] = {}  # (uid, stack) -> raw NIfTI files
    for row in plan:
        for f in by_key.get(row["key"], {}).get("files", []):
            if is_raw_image(f["path"], incomplete):
                images.append(fieldmaps.Image(f["path"], acquisition(row, by_key.get(row["key"]))[0]))
                files_of.setdefault((row["series_instance_uid"], int(row.get("stack_index") or 0)), []).append(f["path"])
    overrides: dict[str, str | None] = {}
    links_path = fieldmaps.table_path(cfg, "fieldmap_links_table")
    for link in sorted(links, key=lambda x: x.stack_index is not None):  # a given stack wins over "every stack"
        fmap = None
        if link.fieldmap_uid:
            fmap_files = sorted(p for (uid, _), paths in files_of.items() if uid == link.fieldmap_uid for p in paths if fieldmaps.is_fieldmap_file(p))
            if not fmap_files:
                _warn(f"{links_path}:{link.line}: fieldmap series {link.fieldmap_uid} has no exported image (failed?); "
                      f"series {link.series_instance_uid} gets no B0FieldSource until it has")  # fmt: skip
            fmap = fmap_files[0] if fmap_files else None
        for (uid, stack), paths in files_of.items():
            if uid == link.series_instance_uid and (link.stack_index is None or stack == link.stack_index):
                overrides.update(dict.fromkeys(paths, fmap))
    targets = tuple(cfg.get("fieldmap_targets") or ("func", "dwi"))
    gap = cfg.get("fieldmap_max_gap_minutes")
    identifiers, sources = fieldmaps.link_fieldmaps(
        images,
        targets,
        matching=cfg.get("fieldmap_matching") or "closest_before",
        max_gap=None if gap is None else float(gap) * 60,
        overrides=overrides,
    )
    intended: dict[str, list[str]] = {}
    for target, ident in sources.items():
        intended.setdefault(ident, []).append(f"bids::{target}")
    for img in images:
        sidecar = output_dir / sidecar_of(img.path)
        if img.path in identifiers:
            ident = identifiers[img.path]
            extra = {"IntendedFor": sorted(intended.get(ident, []))} if cfg.get("fieldmap_intended_for", True) else {}
            drop = () if extra else ("IntendedFor",)
            _update_sidecar(sidecar, {"B0FieldIdentifier": ident, **extra}, drop)
        elif img.path in sources:
            _update_sidecar(sidecar, {"B0FieldSource": sources[img.path]})
        else:
            _update_sidecar(sidecar, {}, ("B0FieldSource",))


def _update_sidecar(path: Path, set_keys: dict, drop_keys: tuple[str, ...] = ()) -> None:
    """Edit a JSON sidecar atomically, and only if something changes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    new = {k: v for k, v in data.items() if k not in drop_keys}
    new.update(set_keys)
    if new != data:
        write_if_changed(path, json.dumps(new, indent=2) + "\n")


def _warn(message: str) -> None:
    print(f"bidsport: warning: {message}", file=sys.stderr)
