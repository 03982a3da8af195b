"""Which files of a folder belong to one series, cheaply and exactly.

Folders may hold several series (enhanced Siemens XA exports do), plus non-image
objects. dcm2niix's ``-n <CRC>`` filter is not reliable for this (on the XA30
sample it dropped the second echo of a fieldmap and converted nothing of a phase
map), so bidsport finds the series' own files itself:

1. a byte search of the file's first 4 KiB, then (only if that does not hold both
   elements) of its first 16 KiB, for the SeriesInstanceUID element (group 0020,
   element 000E, explicit or implicit VR little endian) and the SOPClassUID - about
   10 µs a file, a few percent of dcm2niix's own time on a 2,160-file series. Only
   an occurrence followed by another top-level element counts: the same tag inside
   a ReferencedSeriesSequence item (enhanced files have several, before the real
   one) is followed by an item delimiter instead. The 4 KiB answer is the 16 KiB
   answer whenever it is given (the first qualifying occurrence lies wholly inside
   the first 4 KiB, and nothing after it can change it);
2. where that finds no such element (big endian, deflated, very long headers),
   pydicom reads the header up to that element.

Files that are not DICOM, are empty or are truncated before the element are
simply not part of the series.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

FIRST_READ = 4096  # classic headers reach (0020,000E) well within this
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
_UID_CHARS = b"0123456789."


@dataclass
class Scan:
    files: list[str]  # the series' own image files, sorted (str: no Path per file)
    pure: bool  # True when the folder holds nothing else that looks like DICOM
    unreadable: list[str] = field(default_factory=list)  # files and folders that could not be read


def _first_uid(head: bytes, tag: bytes, top_level_only: bool = False) -> str | None:
    """The first value of a UI element with this tag in ``head`` (explicit or
    implicit VR little endian), or None.

    ``top_level_only`` skips a value whose next element's group is the item/sequence
    delimiter group (FFFE), i.e. the last element of a sequence item, and one whose
    next element lies beyond ``head`` (cannot tell yet).
    """
    pos = head.find(tag)
    while pos >= 0:
        i = pos + 4
        if head[i : i + 2] == b"UI":
            length = int.from_bytes(head[i + 2 : i + 4], "little")
        else:
            length = int.from_bytes(head[i : i + 4], "little")
        start = i + 4
        end = start + length
        if 0 < length <= 64 and end <= len(head):
            following = head[end : end + 2]
            if not (top_level_only and (len(following) < 2 or following == b"\xfe\xff")):
                raw = head[start:end].rstrip(b"\x00 ")
                if raw and not raw.translate(None, _UID_CHARS):
                    return raw.decode()
        pos = head.find(tag, pos + 4)
    return None


def _uids_in(head: bytes) -> tuple[str | None, str | None]:
    uid = _first_uid(head, _SERIES_UID_TAG, top_level_only=True)
    return (uid, _first_uid(head, _SOP_CLASS_TAG)) if uid else (None, None)


def series_uid_of(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(SeriesInstanceUID, SOPClassUID) of a file, or (None, None) if not DICOM."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, FIRST_READ)
            if len(head) >= 132 and head[128:132] == b"DICM":
                uid, sop = _uids_in(head)
                if uid and sop:
                    return uid, sop
                if len(head) == FIRST_READ:  # look further, as far as HEAD_BYTES
                    head += os.read(fd, HEAD_BYTES - FIRST_READ)
        finally:
            os.close(fd)
    except OSError:
        return None, None
    if len(head) >= 132 and head[128:132] == b"DICM":
        uid, sop = _uids_in(head)
        if uid:
            return uid, sop
    return _pydicom_uid(path)


def _pydicom_uid(path: str | os.PathLike) -> tuple[str | None, str | None]:
    try:
        from pydicom.filereader import read_partial

        with open(path, "rb") as fh:
            ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > 0x0020000E)
        uid = ds.get("SeriesInstanceUID")
        return (str(uid) if uid else None), (str(ds.get("SOPClassUID", "")) or None)
    except Exception:  # noqa: BLE001 - not DICOM, truncated or unreadable: not ours
        return None, None


def walk_files(root: str | os.PathLike, unreadable: list[str] | None = None) -> list[str]:
    """Regular files (or links to files) under ``root``, sorted by name per folder,
    a folder's files before its subfolders'; symlinked folders are not followed
    (loops). os.scandir: no stat call per file on filesystems that report types.
    Folders that cannot be listed are added to ``unreadable``."""
    out: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        if unreadable is not None:
            unreadable.append(str(root))
        return out
    subdirs = []
    for entry in entries:
        try:
            if entry.is_dir():
                if not entry.is_symlink():
                    subdirs.append(entry.path)
            elif entry.is_file():
                out.append(entry.path)
        except OSError:
            continue
    for sub in subdirs:
        out.extend(walk_files(sub, unreadable))
    return out


def scan_series(source: Path, uid: str) -> Scan:
    """The image files of series ``uid`` under ``source`` (a folder or one file)."""
    unreadable: list[str] = []
    candidates = [str(source)] if source.is_file() else walk_files(source, unreadable)
    mine: list[str] = []
    others = 0
    for path in candidates:
        file_uid, sop = series_uid_of(path)
        if file_uid is None:
            if not _readable(path):  # not "not DICOM": it could not be read at all
                unreadable.append(path)
            continue
        if file_uid == uid and not (sop or "").startswith(NON_IMAGE_SOP_PREFIXES):
            mine.append(path)
        else:
            others += 1
    return Scan(files=mine, pure=others == 0, unreadable=unreadable)


def _readable(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        os.read(fd, 1)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
