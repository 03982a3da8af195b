"""What a series' images say about themselves, read at planning time.

The classification decides a name, but the images have the last word where they
can tell (docs/vocabulary.md): whether a fieldmap series holds magnitude or phase
images, and which way its phase encoding runs. dcm2niix answers both with
``-b o`` (sidecars only: headers are read, no image is written, ~50 ms a series).
Only fieldmap series are probed, and each answer is cached under the output's
state folder, keyed by the series' files, so a re-plan costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import dcm2niix as d2n
from .dicom_scan import Scan, scan_series

# Direction (LPS, DICOM's patient axes) toward which phase is encoded → BIDS dir- label.
_DIR_LABEL = {(0, 1): "RL", (0, -1): "LR", (1, 1): "AP", (1, -1): "PA", (2, 1): "IS", (2, -1): "SI"}


@dataclass
class ImageFacts:
    kinds: list[str] = field(default_factory=list)  # magnitude / phase / fieldmap, one per output
    pe_direction: str | None = None  # dcm2niix's PhaseEncodingDirection (i, j-, …) if known
    pe_dir: str | None = None  # the BIDS dir- label it means (AP, PA, …), if the polarity is known
    note: str = ""


def dir_label(pe_direction: str | None, orientation: list[float] | None) -> str | None:
    """dcm2niix's ``PhaseEncodingDirection`` (``j-``) + ``ImageOrientationPatientDICOM`` → ``AP`` …

    dcm2niix's voxel axis i runs along the DICOM row vector, j against the column
    vector (it flips rows). The label names the direction of the *traversal*, as
    BIDS/Siemens do: ``AP`` = anterior to posterior = toward +y in LPS.
    """
    if not pe_direction or pe_direction[0] not in "ij" or not orientation or len(orientation) != 6:
        return None
    if pe_direction[0] == "i":
        vector = [float(v) for v in orientation[:3]]
    else:
        vector = [-float(v) for v in orientation[3:]]
    if pe_direction.endswith("-"):
        vector = [-v for v in vector]
    axis = max(range(3), key=lambda a: abs(vector[a]))
    return _DIR_LABEL[(axis, 1 if vector[axis] > 0 else -1)]


def image_kind(postfix: str, sidecar: dict) -> str:
    image_type = [str(t).upper() for t in sidecar.get("ImageType", [])]
    if "fieldmaphz" in postfix or "FIELDMAP" in image_type and "PHASE" not in image_type:
        return "fieldmap"
    if postfix.endswith("_ph") or "_ph_" in postfix or "P" in image_type or "PHASE" in image_type:
        return "phase"
    return "magnitude"


def _cache_key(source: Path, uid: str, files: list[str]) -> str:
    digest = hashlib.sha1(f"{source}\n{uid}".encode())
    for path in files:
        st = os.stat(path)
        digest.update(f"\n{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def probe(
    source: Path, uid: str, dcm2niix: str, cache_dir: Path, timeout: float = 120, files: list[str] | None = None
) -> ImageFacts | None:
    """The facts of series ``uid`` under ``source`` (or of exactly ``files``, a stack's
    own files from the instances table); None if dcm2niix cannot read it."""
    if files is not None:
        paths = [str(f) for f in files]
        if not paths or not all(os.path.isfile(p) for p in paths):
            return None  # the series job reports the missing files
        scan = Scan(files=paths, pure=False)
    else:
        scan = scan_series(source, uid)
    if not scan.files:
        return None
    cache = cache_dir / f"{_cache_key(source, uid, scan.files)}.json"
    try:
        return ImageFacts(**json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        pass
    with tempfile.TemporaryDirectory(prefix="bidsport-probe-") as tmp:  # never inside the dataset
        work = Path(tmp)
        if scan.pure:
            target = source
        else:  # only this series' files, as the export itself will see them
            target = work / "src"
            target.mkdir()
            for i, path in enumerate(scan.files):
                os.symlink(os.path.abspath(path), target / f"{i:06d}_{os.path.basename(path)}")
        out = work / "out"
        out.mkdir()
        result = d2n.convert(dcm2niix, target, out, compress=False, timeout=timeout, sidecars_only=True)
        sidecars = sorted(out.glob("series*.json"))
        if not sidecars:
            return None
        facts = ImageFacts()
        for path in sidecars:
            data = json.loads(path.read_text(encoding="utf-8"))
            facts.kinds.append(image_kind(path.name[len("series") : -len(".json")], data))
            if facts.pe_direction is None and data.get("PhaseEncodingDirection"):
                facts.pe_direction = data["PhaseEncodingDirection"]
                facts.pe_dir = dir_label(data["PhaseEncodingDirection"], data.get("ImageOrientationPatientDICOM"))
            elif facts.pe_direction is None and data.get("PhaseEncodingAxis"):
                facts.note = f"the images give the phase-encoding axis ({data['PhaseEncodingAxis']}) but not its polarity"
        if result.returncode not in (0, None):
            facts.note = (facts.note + "; " if facts.note else "") + f"dcm2niix exit {result.returncode}"
        shutil.rmtree(work / "src", ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_cache = cache.with_suffix(".tmp")
    tmp_cache.write_text(json.dumps(facts.__dict__), encoding="utf-8")
    os.replace(tmp_cache, cache)
    return facts


def prober(dcm2niix: str | None, dicom_root: Path, cache_dir: Path, instances: dict | None = None):
    """``image_facts(row)`` for :func:`bidsport.plan.build_plan` (None without dcm2niix).
    With ``instances`` (table.load_instances_table) a stack is probed by its own files."""
    if not dcm2niix:
        try:
            dcm2niix = d2n.find_dcm2niix()
        except d2n.Dcm2niixError:
            return None
    from .table import resolve_dicom_path

    def image_facts(row: dict) -> ImageFacts | None:
        source = resolve_dicom_path(row["dicom_path"], dicom_root)
        files = None
        if instances is not None:
            files = instances.get((row["series_instance_uid"], int(row.get("stack_index") or 0)), [])
        return probe(source, row["series_instance_uid"], dcm2niix, cache_dir, files=files)

    return image_facts
