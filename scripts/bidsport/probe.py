"""What a series' images say about themselves, read at planning time.

The classification decides a name, but the images have the last word where they
can tell (docs/vocabulary.md): whether a fieldmap series holds magnitude or phase
images, and which way its phase encoding runs. dcm2niix answers both with
``-b o`` (sidecars only: headers are read, no image is written, ~50 ms a series).
Only fieldmap series are probed, and each answer is cached under the output's
state folder, keyed by the series' files, so a re-plan costs nothing.

:func:`header_image_type` answers a cheaper question for series whose name depends
on it (raw or scanner-derived, when the table has no ``stack_image_type``): the
ImageType of the series' first file, read from its header.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import dcm2niix as d2n
from . import images, mapping
from .dicom_scan import Scan, scan_series, series_uid_of, walk_files
from .table import resolve_dicom_path


@dataclass
class ImageFacts:
    kinds: list[str] = field(default_factory=list)  # magnitude / phase / fieldmap, one per output
    pe_direction: str | None = None  # the first output's PhaseEncodingDirection (i, j-, …) if known
    pe_dir: str | None = None  # the BIDS dir- label it means (AP, PA, …), if the polarity is known
    pe_dirs: list[str] = field(default_factory=list)  # every output's dir- label (both polarities: two)
    image_types: list[str] = field(default_factory=list)  # every output's ImageType, backslash-joined
    note: str = ""


def _cache_key(source: Path, uid: str, files: list[str]) -> str:
    digest = hashlib.sha1(f"v2\n{source}\n{uid}".encode())
    for path in files:
        st = os.stat(path)
        digest.update(f"\n{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def probe(
    source: Path, uid: str, dcm2niix: str, cache_dir: Path, timeout: float = 120, files: list[str] | None = None,
    full: bool = False,
) -> ImageFacts | None:
    """The facts of series ``uid`` under ``source`` (or of exactly ``files``, a stack's
    own files from the instances table); None if dcm2niix cannot read it.

    ``full``: convert the images too (uncompressed, then thrown away). A header read
    (``-b o``) writes one sidecar for a series that dcm2niix only splits while writing
    images, such as a pepolar fieldmap holding both polarities."""
    if files is not None:
        paths = [str(f) for f in files]
        if not paths or not all(os.path.isfile(p) for p in paths):
            return None  # the series job reports the missing files
        scan = Scan(files=paths, pure=False)
    else:
        scan = scan_series(source, uid)
    if not scan.files:
        return None
    cache = cache_dir / f"{_cache_key(source, uid, scan.files)}{'-full' if full else ''}.json"
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
        result = d2n.convert(dcm2niix, target, out, compress=False, timeout=timeout, sidecars_only=not full)
        sidecars = sorted(out.glob("series*.json"))
        if not sidecars:
            return None
        facts = ImageFacts()
        for path in sidecars:
            data = json.loads(path.read_text(encoding="utf-8"))
            output = images.output_facts(path.name[len("series") : -len(".json")], data)
            facts.kinds.append(images.kind(output))
            facts.image_types.append("\\".join(output.image_type))
            if output.pe_dir and output.pe_dir not in facts.pe_dirs:
                facts.pe_dirs.append(output.pe_dir)
            if facts.pe_direction is None and output.pe_direction:
                facts.pe_direction, facts.pe_dir = output.pe_direction, output.pe_dir
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
    def image_facts(row: dict, full: bool = False) -> ImageFacts | None:
        source = resolve_dicom_path(row["dicom_path"], dicom_root)
        files = None
        if instances is not None:
            files = instances.get((row["series_instance_uid"], int(row.get("stack_index") or 0)), [])
        return probe(source, row["series_instance_uid"], dcm2niix, cache_dir, files=files, full=full)

    return image_facts


def header_image_type(source: Path, uid: str, files: list[str] | None = None) -> str | None:
    """The DICOM ImageType (backslash-joined) of the series' first image file, or None."""
    import pydicom

    if files:
        paths = [str(f) for f in files[:3]]
    else:  # the first file of the series: no need to find all of them
        candidates = [str(source)] if source.is_file() else walk_files(source)
        first = next((p for p in candidates if series_uid_of(p)[0] == uid), None)
        paths = [first] if first else []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ImageType"])
        except Exception:  # noqa: BLE001 - unreadable: try the next, else unknown
            continue
        value = ds.get("ImageType")
        if value:
            return "\\".join(str(v) for v in ([value] if isinstance(value, str) else list(value)))
    return None


def image_type_reader(dicom_root: Path, instances: dict | None = None):
    """``image_type(row)`` for :func:`bidsport.plan.build_plan`: the header's ImageType
    of the row's series (or stack, with ``instances``), or None."""
    def image_type(row: dict) -> str | None:
        files = None
        if instances is not None:
            files = instances.get((row["series_instance_uid"], int(row.get("stack_index") or 0))) or None
        return header_image_type(resolve_dicom_path(row["dicom_path"], dicom_root), row["series_instance_uid"], files)

    return image_type


# Provenances whose raw and scanner-derived images share a branch: ImageType decides.
_IMAGE_TYPE_DECIDES = {"BOLDRecon", "ASLRecon", "DTIRecon", "PerfusionRecon"}


def image_types(records: list[dict], image_type: Callable[[dict], str | None] | None) -> dict[int, str]:
    """id(row) → the images' ImageType, for rows whose name depends on it and whose
    table has no ``stack_image_type`` (read from one header each, a few at once)."""
    if image_type is None:
        return {}
    wanted = [
        r for r in records
        if not r.get("stack_image_type")
        and (r.get("provenance") in _IMAGE_TYPE_DECIDES or r.get("directory_type") in ("func", "dwi", "perf"))
        and not mapping.Classification.from_row(r).first({**mapping.DWI_MAPS, **mapping.PERFUSION_MAPS})
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = list(pool.map(image_type, wanted))
    return {id(r): t for r, t in zip(wanted, found) if t}
