"""A thumbnail of one series, drawn from its DICOM files without converting it.

The middle image of the series (by InstanceNumber; the middle frame of a
multi-frame file), windowed to its 1st-99th percentile, scaled to fit
``SIZE`` pixels, as PNG. Cached on disk by source, series, stack and the source's
modification time, so a review page re-opened later costs one ``stat`` per series.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from .dicom_scan import scan_series

SIZE = 128  # pixels, the longer side
MAX_HEADERS = 400  # beyond this many files, file-name order stands in for InstanceNumber


class ThumbnailError(ValueError):
    """No image could be drawn for the series (the message says why)."""


def cache_path(cache_dir: Path, source: Path, uid: str, stack_index: int, files: list[str] | None = None) -> Path:
    try:
        version = os.stat(source).st_mtime_ns
    except OSError:
        version = 0
    ident = "\0".join([str(source), uid, str(stack_index), str(version), *(files or [])])
    return Path(cache_dir) / f"{hashlib.sha1(ident.encode()).hexdigest()}.png"


def thumbnail(cache_dir: Path, source: Path, uid: str, stack_index: int = 0, files: list[str] | None = None) -> Path:
    """The cached PNG of the series (drawn now if it is not cached yet)."""
    path = cache_path(cache_dir, source, uid, stack_index, files)
    if path.exists():
        return path
    data = draw(source, uid, files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def middle_file(source: Path, uid: str, files: list[str] | None = None) -> str:
    """The file holding the series' middle image."""
    if not files:
        if not Path(source).exists():
            raise ThumbnailError(f"{source} does not exist")
        files = scan_series(Path(source), uid).files
    if not files:
        raise ThumbnailError(f"no image of series {uid} under {source}")
    if len(files) > MAX_HEADERS:
        return sorted(files)[len(files) // 2]
    import pydicom

    def number(path: str) -> tuple:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["InstanceNumber"])
            return (int(ds.get("InstanceNumber") or 0), path)
        except Exception:  # noqa: BLE001 - an unreadable header sorts by name
            return (0, path)

    ordered = sorted(files, key=number)
    return ordered[len(ordered) // 2]


def draw(source: Path, uid: str, files: list[str] | None = None) -> bytes:
    """PNG bytes of the series' middle image."""
    import numpy as np
    import pydicom
    from PIL import Image

    path = middle_file(source, uid, files)
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - compressed without a decoder, truncated …
        raise ThumbnailError(f"cannot read the pixels of {path}: {exc}") from None
    pixels = np.asarray(pixels)
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        pixels = pixels.mean(axis=-1)
    while pixels.ndim > 2:  # frames of a multi-frame file: its middle one
        pixels = pixels[pixels.shape[0] // 2]
    plane = pixels.astype(np.float32)
    low, high = np.percentile(plane, [1, 99]) if plane.size else (0.0, 1.0)
    scaled = np.clip((plane - low) / max(float(high - low), 1e-6), 0, 1)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        scaled = 1 - scaled
    image = Image.fromarray((scaled * 255).astype(np.uint8), mode="L")
    image.thumbnail((SIZE, SIZE))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
