"""Which files of a folder belong to one series, cheaply and exactly.

Folders may hold several series (enhanced Siemens XA exports do), plus non-image
objects. dcm2niix's ``-n <CRC>`` filter is not reliable for this (on the XA30
sample it dropped the second echo of a fieldmap and converted nothing of a phase
map), so bidsport finds the series' own files itself:

1. a byte search of the file's first 16 KiB for the SeriesInstanceUID element
   (group 0020, element 000E, explicit or implicit VR little endian) - about 20 µs
   a file. Only an occurrence followed by another top-level element counts: the
   same tag inside a ReferencedSeriesSequence item (enhanced files have several,
   before the real one) is followed by an item delimiter instead;
2. where that finds no such element (big endian, deflated, very long headers),
   pydicom reads the header up to that element.

Files that are not DICOM, are empty or are truncated before the element are
simply not part of the series.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 16384
_SERIES_UID_TAG = b"\x20\x00\x0e\x00"
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.66",  # raw data
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.3.12.2.1107.5.9.1",  # Siemens CSA non-image
)
_SOP_CLASS_TAG = b"\x08\x00\x16\x00"


@dataclass
class Scan:
    files: list[Path]  # the series' own image files, sorted
    pure: bool  # True when the folder holds nothing else that looks like DICOM


def _element_value(head: bytes, tag: bytes, top_level_only: bool = False) -> list[str]:
    """Values of a UI element with this tag found in ``head`` (explicit or implicit VR).

    ``top_level_only`` keeps a value only if the next element's group is not the
    item/sequence delimiter group (FFFE), i.e. the element is not the last one of
    a sequence item.
    """
    values = []
    for m in re.finditer(re.escape(tag), head):
        i = m.end()
        if head[i : i + 2] == b"UI":
            length = int.from_bytes(head[i + 2 : i + 4], "little")
            start = i + 4
        else:
            length = int.from_bytes(head[i : i + 4], "little")
            start = i + 4
        if 0 < length <= 64 and start + length <= len(head):
            raw = head[start : start + length].rstrip(b"\x00 ")
            following = head[start + length : start + length + 2]
            if top_level_only and (len(following) < 2 or following == b"\xfe\xff"):
                continue
            if re.fullmatch(rb"[0-9.]+", raw):
                values.append(raw.decode())
    return values


def series_uid_of(path: Path) -> tuple[str | None, str | None]:
    """(SeriesInstanceUID, SOPClassUID) of a file, or (None, None) if not DICOM."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return None, None
    if len(head) >= 132 and head[128:132] == b"DICM":
        uids = _element_value(head, _SERIES_UID_TAG, top_level_only=True)
        if uids:
            sop = _element_value(head, _SOP_CLASS_TAG)
            return uids[0], (sop[0] if sop else None)
    return _pydicom_uid(path)


def _pydicom_uid(path: Path) -> tuple[str | None, str | None]:
    try:
        from pydicom.filereader import read_partial

        with open(path, "rb") as fh:
            ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > 0x0020000E)
        uid = ds.get("SeriesInstanceUID")
        return (str(uid) if uid else None), (str(ds.get("SOPClassUID", "")) or None)
    except Exception:  # noqa: BLE001 - not DICOM, truncated or unreadable: not ours
        return None, None


def walk_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted; symlinked folders are not followed (loops)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                out.append(path)
    return out


def scan_series(source: Path, uid: str) -> Scan:
    """The image files of series ``uid`` under ``source`` (a folder or one file)."""
    candidates = [source] if source.is_file() else walk_files(source)
    mine: list[Path] = []
    others = 0
    for path in candidates:
        file_uid, sop = series_uid_of(path)
        if file_uid is None:
            continue
        if file_uid == uid and not (sop or "").startswith(NON_IMAGE_SOP_PREFIXES):
            mine.append(path)
        else:
            others += 1
    return Scan(files=mine, pure=others == 0)
