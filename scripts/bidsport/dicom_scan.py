"""Which files of a folder belong to one series (and to one stack of it), cheaply and exactly.

(Longer than most modules on purpose: the series scan and the stack selection both
read headers with the same element walk, whose byte-level internals stay private here.)

Folders may hold several series (enhanced Siemens XA exports do), plus non-image
objects. dcm2niix's ``-n <CRC>`` filter is not reliable for this (on the XA30
sample it dropped the second echo of a fieldmap and converted nothing of a phase
map), so bidsport finds the series' own files itself, by the file's TOP-LEVEL
SeriesInstanceUID (0020,000E). The same tag also occurs inside sequence items
(ReferencedSeriesSequence, RelatedSeriesSequence: Siemens XA "interoperability"
exports put another series' UID there, before the file's own, in an item of
defined length without a delimiter); that one is never taken for the file's own:

1. the reference is a walk of the top-level data elements (explicit or implicit VR
   little endian) from the file meta group up to (0020,000E), stepping over each
   sequence whole (one of defined length by its length, one of undefined length item
   by item, at any nesting); it reads the first 4 KiB, and further windows only
   where the walk goes past them;
2. a byte search answers first where it can show that its answer is the walk's
   (see ``_found_at_top``): the walk costs Python work per element, the search a
   few passes over 4 KiB (16 KiB for the Siemens E11 headers that need it);
3. where the walk cannot go (no preamble, big endian, deflated, a malformed
   element), pydicom reads the header up to that element.

Files that are not DICOM, are empty or are truncated before the element are
simply not part of the series. ``stack_files`` (below) picks one stack's files out
of a series by their header values.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

FIRST_READ = 4096  # most classic headers reach (0020,000E) within this
HEAD_BYTES = 16384  # Siemens E11 ones within this
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.66",  # raw data
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.3.12.2.1107.5.9.1",  # Siemens CSA non-image
)
_UID_CHARS = b"0123456789."
_SOP_CLASS = 0x00080016
_SERIES_UID = 0x0020000E
_TRANSFER_SYNTAX = 0x00020010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_VRS = "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
_VR_CODES = frozenset(int.from_bytes(vr.encode(), "little") for vr in _VRS.split())
# Explicit VRs with a 4-byte length (PS3.5 7.1.2); every other VR has 2 bytes.
_LONG_VR_CODES = frozenset(int.from_bytes(vr.encode(), "little") for vr in "OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_UN = int.from_bytes(b"UN", "little")
_IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_WALKABLE = ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")  # big endian, deflated
_MAX_DEPTH = 32  # nesting deeper than real headers ever go: malformed, let pydicom judge
_HEADER = struct.Struct("<HHI")  # group, element, then the VR and length words
_LENGTH = struct.Struct("<I")


@dataclass
class Scan:
    files: list[str]  # the series' own image files, sorted (str: no Path per file)
    pure: bool  # True when the folder holds nothing else that looks like DICOM
    # What else was found (for a "no image of this series" message that says what
    # is there instead): other series' UIDs with their file counts, and how many
    # files of this series are non-image objects (reports, raw data).
    others: dict[str, int] = field(default_factory=dict)
    non_image: int = 0
    unreadable: list[str] = field(default_factory=list)  # files and folders that could not be read


class _Malformed(Exception):
    """The element stream is not what the walk expects: pydicom decides instead."""


class _Bytes:
    """A file's bytes on demand: the first read, then only the windows the walk
    needs (a skipped sequence is stepped over, never read)."""

    def __init__(self, fd: int, first: bytes):
        self.fd, self.base, self.buf = fd, 0, first

    def at(self, pos: int, n: int) -> tuple[bytes, int]:
        """A buffer holding ``n`` bytes from ``pos`` (fewer at the end of the
        file), and the offset of ``pos`` in it."""
        off = pos - self.base
        if off < 0 or off + n > len(self.buf):
            self.base, self.buf = pos, os.pread(self.fd, max(n, FIRST_READ), pos)
            off = 0
        return self.buf, off


def _element(data: _Bytes, pos: int, explicit: bool) -> tuple[int, int, int, int]:
    """(tag, VR code or 0, value length, value offset) of the element at ``pos``."""
    buf, off = data.at(pos, 12)
    if len(buf) - off < 8:
        raise EOFError
    group, elem, word = _HEADER.unpack_from(buf, off)
    if not explicit or group == 0xFFFE:  # items and delimiters never carry a VR
        return group << 16 | elem, 0, word, pos + 8
    vr = word & 0xFFFF
    if vr in _LONG_VR_CODES:
        if len(buf) - off < 12:
            raise EOFError
        return group << 16 | elem, vr, _LENGTH.unpack_from(buf, off + 8)[0], pos + 12
    if vr not in _VR_CODES:
        raise _Malformed
    return group << 16 | elem, vr, word >> 16, pos + 8


def _skip_sequence(data: _Bytes, pos: int, explicit: bool, depth: int) -> int:
    """Offset after an undefined-length sequence whose first item starts at ``pos``."""
    if depth > _MAX_DEPTH:
        raise _Malformed
    while True:
        tag, _, length, pos = _element(data, pos, False)
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _Malformed
        pos = _skip_item(data, pos, explicit, depth) if length == _UNDEFINED else pos + length


def _skip_item(data: _Bytes, pos: int, explicit: bool, depth: int) -> int:
    """Offset after an undefined-length item whose first element starts at ``pos``."""
    while True:
        tag, vr, length, pos = _element(data, pos, explicit)
        if tag == _ITEM_END:
            return pos
        if length == _UNDEFINED:
            # An undefined-length UN holds a sequence in implicit VR (PS3.5 6.2.2).
            pos = _skip_sequence(data, pos, explicit and vr != _UN, depth + 1)
        else:
            pos += length


def _walk(data: _Bytes, pos: int, explicit: bool, last: int, wanted: tuple[int, ...]) -> tuple[dict[int, bytes], int]:
    """The values of the ``wanted`` top-level elements up to tag ``last``, and the
    offset of the first element after ``last`` (or of the end of the data).

    The hot loop of a scan (about a hundred elements a file), hence inlined: the
    tag is compared with ``last`` before the VR is read, since the element after
    ``last`` may be in another encoding (the meta group is always explicit VR)."""
    found: dict[int, bytes] = {}
    unpack, unpack_length = _HEADER.unpack_from, _LENGTH.unpack_from
    buf, base, vr = data.buf, data.base, 0
    while True:
        off = pos - base
        if off < 0 or off + 12 > len(buf):
            buf, off = data.at(pos, 12)
            base = data.base
            if len(buf) - off < 8:
                return found, pos
        group, elem, word = unpack(buf, off)
        tag = group << 16 | elem
        if tag > last:  # also any item or delimiter (group FFFE): none belongs here
            return found, pos
        if not explicit:
            length, start = word, pos + 8
        elif (vr := word & 0xFFFF) in _LONG_VR_CODES:
            if len(buf) - off < 12:
                raise EOFError
            length, start = unpack_length(buf, off + 8)[0], pos + 12
        elif vr in _VR_CODES:
            length, start = word >> 16, pos + 8
        else:
            raise _Malformed
        if length == _UNDEFINED:
            pos = _skip_sequence(data, start, explicit and vr != _UN, 1)
            buf, base = data.buf, data.base
            continue
        if tag in wanted:
            if length > 1024:
                raise _Malformed
            value, at = data.at(start, length)
            found[tag] = value[at : at + length]
            buf, base = data.buf, data.base
        pos = start + length


def _uid(raw: bytes | None) -> str | None:
    raw = (raw or b"").rstrip(b"\x00 ")
    return raw.decode() if raw and not raw.translate(None, _UID_CHARS) else None


def _walk_file(data: _Bytes) -> tuple[str | None, str | None]:
    """(SeriesInstanceUID, SOPClassUID) by walking the top-level elements."""
    meta, pos = _walk(data, 132, True, 0x0002FFFF, (_TRANSFER_SYNTAX,))
    syntax = _uid(meta.get(_TRANSFER_SYNTAX))
    if not syntax or syntax in _NOT_WALKABLE:
        raise _Malformed
    found, _ = _walk(data, pos, syntax != _IMPLICIT_LE, _SERIES_UID, (_SOP_CLASS, _SERIES_UID))
    uid = _uid(found.get(_SERIES_UID))
    if not uid:
        raise _Malformed
    return uid, _uid(found.get(_SOP_CLASS))


# The byte search gives the walk's answer where the occurrence it finds lies inside
# no sequence item: every nested element lies inside an item, every item starts
# with its tag (FFFE,E000) before its content and ends at its defined length or at
# its delimiter (FFFE,E00D), so pairing these markers before the occurrence gives
# its depth. Occurrences inside items are passed over; no occurrence within the
# bytes read, or markers that do not pair up, are left to the walk.
_ITEM_START = b"\xfe\xff\x00\xe0"
_UNDEFINED_ITEM = _ITEM_START + b"\xff\xff\xff\xff"
_ITEM_STOP = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
# An item tag and its length, or an item delimiter (its length is always 0).
_MARKERS = re.compile(rb"\xfe\xff\x00\xe0(.{4})|\xfe\xff\x0d\xe0\x00\x00\x00\x00", re.DOTALL)


def _found_at_top(head: bytes) -> tuple[str, str | None] | None:
    """(SeriesInstanceUID, SOPClassUID) by byte search, or None where the search
    cannot show that the walk would give the same."""
    found = []
    for tag in (_SERIES_UID, _SOP_CLASS):
        for pos, uid in _uid_elements(head, _tag_bytes(tag)):
            depth = _item_depth(head, pos)
            if depth is None:
                return None
            if depth == 0:
                found.append(uid)
                break
        else:
            found.append(None)
    return (found[0], found[1]) if found[0] else None


def _tag_bytes(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def _uid_elements(head: bytes, tag: bytes):
    """(offset, value) of each element with this tag whose value (explicit or
    implicit VR little endian) is a UID wholly inside ``head``."""
    pos = head.find(tag, 132)
    while pos >= 0:
        i = pos + 4
        explicit = head[i : i + 2] == b"UI"
        length = int.from_bytes(head[i + 2 : i + 4] if explicit else head[i : i + 4], "little")
        start = i + 4
        if 0 < length <= 64 and start + length <= len(head):
            uid = _uid(head[start : start + length])
            if uid:
                yield pos, uid
        pos = head.find(tag, pos + 4)


def _item_depth(head: bytes, at: int) -> int | None:
    """How many sequence items enclose offset ``at`` (None: the markers before it
    do not pair up, so they are not all what they seem)."""
    starts = head.count(_ITEM_START, 132, at)
    if starts == head.count(_UNDEFINED_ITEM, 132, at):  # the common case, counted in C
        stops = head.count(_ITEM_STOP, 132, at)
        return starts - stops if stops <= starts else None
    open_ends: list[int | None] = []  # end offset of each open item (None: undefined length)
    for match in _MARKERS.finditer(head, 132, at):
        i = match.start()
        while open_ends and open_ends[-1] is not None and open_ends[-1] <= i:
            open_ends.pop()
        if match.group(1) is not None:  # an item: its length follows the tag
            length = int.from_bytes(match.group(1), "little")
            open_ends.append(None if length == _UNDEFINED else i + 8 + length)
        elif not open_ends or open_ends[-1] is not None:  # a delimiter closes nothing open
            return None
        else:
            open_ends.pop()
    while open_ends and open_ends[-1] is not None and open_ends[-1] <= at:
        open_ends.pop()
    return len(open_ends)


def series_uid_of(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """(SeriesInstanceUID, SOPClassUID) of a file, or (None, None) if not DICOM."""
    return _uids_of(path, search=True)


def series_uid_by_walk(path: str | os.PathLike) -> tuple[str | None, str | None]:
    """The same, by the element walk alone: the reference that the byte search is
    checked against (tests, benchmarks)."""
    return _uids_of(path, search=False)


def _uids_of(path: str | os.PathLike, search: bool) -> tuple[str | None, str | None]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, None
    try:
        head = os.read(fd, FIRST_READ)
        if len(head) >= 132 and head[128:132] == b"DICM":
            found = _found_at_top(head) if search else None
            if search and found is None and len(head) == FIRST_READ:  # look further, as far as HEAD_BYTES
                head += os.read(fd, HEAD_BYTES - FIRST_READ)
                found = _found_at_top(head)
            return found or _walk_file(_Bytes(fd, head))
    except (_Malformed, EOFError, OSError, UnicodeDecodeError):
        pass
    finally:
        os.close(fd)
    return _pydicom_uid(path)


def _pydicom_uid(path: str | os.PathLike) -> tuple[str | None, str | None]:
    try:
        from pydicom.filereader import read_partial

        with open(path, "rb") as fh:
            ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > 0x0020000E)
        uid = ds.get("SeriesInstanceUID")
        return (str(uid), str(ds.get("SOPClassUID", "")) or None) if uid else (None, None)
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
    others: dict[str, int] = {}
    non_image = 0
    for path in candidates:
        file_uid, sop = series_uid_of(path)
        if file_uid is None:
            if not _readable(path):  # not "not DICOM": it could not be read at all
                unreadable.append(path)
            continue
        if file_uid != uid:
            others[file_uid] = others.get(file_uid, 0) + 1
        elif (sop or "").startswith(NON_IMAGE_SOP_PREFIXES):
            non_image += 1
        else:
            mine.append(path)
    return Scan(files=mine, pure=not others and not non_image, others=others, non_image=non_image, unreadable=unreadable)


def absent_message(scan: Scan, uid: str, source: Path) -> str:
    """Why no image of series ``uid`` was found under ``source``: what is there instead."""
    if scan.non_image:
        return f"series {uid} under {source} holds only {scan.non_image} non-image object(s) (reports, raw data): no image to export"
    if not scan.others:
        return f"no DICOM image of series {uid} under {source} (no file there has a readable SeriesInstanceUID)"
    found = sorted(scan.others.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{other} ({n} file{'s' if n > 1 else ''})" for other, n in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"no DICOM image of series {uid} under {source}; it holds series {listed}{more}"


# --------------------------------------------------------------------------- stacks
# The classifier splits a series into stacks by a per-instance signature (echo time
# rounded to 0.01 ms, inversion time, echo numbers, TR, flip angle, orientation,
# ImageType, ...; ../shared/NILS_DATABASE.md). Given a stack's values, the files
# that hold it are found again by the same header values, so a stack can be copied
# (or converted) on its own without the instances table.

STACK_NUMBERS = ("echo_time", "inversion_time", "repetition_time", "flip_angle")
STACK_TEXTS = ("modality", "echo_numbers", "image_type", "image_orientation")
# Where an enhanced (multi-frame) file keeps each value per frame: (functional
# group sequence, attribute) in the per-frame group, else the shared one.
_FRAME_VALUES = {
    "echo_time": ("MREchoSequence", "EffectiveEchoTime"),
    "inversion_time": ("MRModifierSequence", "InversionTimes"),
    "repetition_time": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "flip_angle": ("MRTimingAndRelatedParametersSequence", "FlipAngle"),
    "image_type": ("MRImageFrameTypeSequence", "FrameType"),
    "image_orientation": ("PlaneOrientationSequence", "ImageOrientationPatient"),
}
_TOP_LEVEL = {
    "modality": "Modality",
    "echo_time": "EchoTime",
    "inversion_time": "InversionTime",
    "repetition_time": "RepetitionTime",
    "flip_angle": "FlipAngle",
    "echo_numbers": "EchoNumbers",
    "image_type": "ImageType",
    "image_orientation": "ImageOrientationPatient",
}


@dataclass
class StackFiles:
    """The files of one stack, picked from a series' files by their headers."""

    files: list[str]  # every frame of the file matches the stack
    undecidable: list[str]  # multi-frame files holding frames of this stack and others
    unreadable: list[str]  # no header could be read
    note: str  # for the report: what was found when it is not a clean split


def stack_files(files: list[str], stack: dict) -> StackFiles:
    """The files among ``files`` (one series) whose header values match every key
    given in ``stack`` (keys of STACK_NUMBERS and STACK_TEXTS; missing or empty keys
    are not compared; ``n_instances``, if given, is only checked against the count).

    Numbers are compared rounded to 0.01 (the classifier's echo-time precision);
    texts case-insensitively, multi-valued ones value by value; the orientation as
    the classifier's class (Axial, Coronal, Sagittal) of ImageOrientationPatient.
    A multi-frame file matches when each of its frames does (by its functional
    groups, or by the file's own top-level value). ValueError for a stack value
    that should be a number and is not."""
    wanted = _wanted(stack)
    matched: list[str] = []
    undecidable: list[str] = []
    unreadable: list[str] = []
    seen: dict[str, set] = {}  # key -> values found, to say why nothing matched
    for path in files:
        frames = _frame_values(path)
        if frames is None:
            unreadable.append(path)
            continue
        verdicts = set()
        for values in frames:
            for key in wanted:
                seen.setdefault(key, set()).update(_shown(v) for v in values[key])
            verdicts.add(all(any(_same(key, want, v) for v in values[key]) for key, want in wanted.items()))
        if verdicts == {True}:
            matched.append(path)
        elif verdicts == {True, False}:
            undecidable.append(path)
    return StackFiles(matched, undecidable, unreadable, _note(stack, wanted, matched, undecidable, unreadable, seen))


def _wanted(stack: dict) -> dict:
    """The stack's given values, normalised for comparison."""
    wanted: dict = {}
    for key in STACK_NUMBERS + STACK_TEXTS:
        value = stack.get(key)
        if value is None or value != value or (isinstance(value, str) and not value.strip()):
            continue  # not given (None, NaN from an empty table cell, blank)
        if key in STACK_NUMBERS:
            try:
                wanted[key] = round(float(value), 2)
            except (TypeError, ValueError):
                raise ValueError(f"the stack's {key} {value!r} is not a number") from None
        elif key == "image_orientation":
            wanted[key] = str(value).strip().capitalize()
        else:
            wanted[key] = _texts(value)
    return wanted


def _texts(value) -> tuple[str, ...]:
    """A multi-valued DICOM text (``A\\B``, a list, or a number) as upper-case parts."""
    if isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        parts = [str(v) for v in value]
    else:
        parts = [str(value)]
    return tuple(_plain(p) for p in parts)


def _plain(part: str) -> str:
    """One value of a text: upper case, no padding; integers without ``.0``."""
    part = part.strip().upper()
    try:
        number = float(part)
    except ValueError:
        return part
    return str(int(number)) if number == int(number) else part


def _same(key: str, want, value) -> bool:
    if value is None:
        return False
    if key in STACK_NUMBERS:
        return abs(want - value) < 1e-6
    return want == value


def _shown(value) -> str:
    if value is None:
        return "(none)"
    return "\\".join(value) if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) else str(value)


def _frame_values(path: str) -> list[dict[str, list]] | None:
    """Per frame (one for a classic file): each stack key's candidate values, the
    frame's own (functional groups) and the file's top-level one. None if unreadable."""
    single = _single_frame_values(path)
    if single is not None:
        return [{key: [value] for key, value in single.items()}]
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - not DICOM or truncated: reported as unreadable
        return None
    top = {key: _normalised(key, ds.get(keyword)) for key, keyword in _TOP_LEVEL.items()}
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return [{key: [value] for key, value in top.items()}]
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    frames = []
    for group in per_frame:
        values = {key: [value] for key, value in top.items()}
        for key, (sequence, keyword) in _FRAME_VALUES.items():
            item = _item(group, sequence) or _item(shared, sequence)
            if item is not None and keyword in item:
                values[key].append(_normalised(key, item.get(keyword)))
        frames.append(values)
    return frames


_STACK_TAGS = {
    0x00080008: "image_type",
    0x00080060: "modality",
    0x00180080: "repetition_time",
    0x00180081: "echo_time",
    0x00180082: "inversion_time",
    0x00180086: "echo_numbers",
    0x00181314: "flip_angle",
    0x00200037: "image_orientation",
}
_NUMBER_OF_FRAMES = 0x00280008
_TEXT_BYTES = bytes(range(0x20, 0x7F))


def _single_frame_values(path: str) -> dict | None:
    """The stack keys' values of a single-frame file by the element walk (about a
    tenth of pydicom's time), or None where pydicom must read it: a multi-frame
    file (NumberOfFrames given), a value that is not text, a file the walk cannot go
    through."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        head = os.read(fd, FIRST_READ)
        if len(head) < 132 or head[128:132] != b"DICM":
            return None
        data = _Bytes(fd, head)
        meta, pos = _walk(data, 132, True, 0x0002FFFF, (_TRANSFER_SYNTAX,))
        syntax = _uid(meta.get(_TRANSFER_SYNTAX))
        if not syntax or syntax in _NOT_WALKABLE:
            return None
        found, _ = _walk(data, pos, syntax != _IMPLICIT_LE, _NUMBER_OF_FRAMES, (*_STACK_TAGS, _NUMBER_OF_FRAMES))
    except (_Malformed, EOFError, OSError):
        return None
    finally:
        os.close(fd)
    if _NUMBER_OF_FRAMES in found:
        return None
    values = {}
    for tag, key in _STACK_TAGS.items():
        raw = found.get(tag, b"").rstrip(b"\x00 ")
        if raw.translate(None, _TEXT_BYTES):  # binary: not the text VR the standard gives
            return None
        text = raw.decode("ascii")
        values[key] = _normalised(key, text.split("\\")) if text else None
        if text and values[key] is None:
            return None
    return values


def _item(group, sequence: str):
    seq = group.get(sequence) if group is not None else None
    return seq[0] if seq else None


def _normalised(key: str, value):
    """A header value in the form :func:`_wanted` gives the stack's."""
    if value is None or value == "":
        return None
    try:
        if key in STACK_NUMBERS:
            first = value[0] if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else value
            return round(float(first), 2)
        if key == "image_orientation":
            return orientation_class([float(v) for v in value])
        return _texts(value)
    except (TypeError, ValueError, IndexError):
        return None


def orientation_class(iop: list[float]) -> str | None:
    """Axial, Coronal or Sagittal: the axis the slice normal (row × column
    direction cosines of ImageOrientationPatient) points along most."""
    if len(iop) != 6:
        return None
    r, c = iop[:3], iop[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    axis = max(range(3), key=lambda i: abs(normal[i]))
    return ("Sagittal", "Coronal", "Axial")[axis]


def _note(stack: dict, wanted: dict, matched: list, undecidable: list, unreadable: list, seen: dict) -> str:
    """What the report should say about this selection ('' when it is clean)."""
    notes = []
    if undecidable:
        notes.append(f"{len(undecidable)} multi-frame file(s) hold frames of this stack and of others: they cannot be split by file")
    if unreadable:
        notes.append(f"{len(unreadable)} file(s) could not be read")
    if not matched and not undecidable:
        found = "; ".join(f"{key} {', '.join(sorted(seen.get(key, {'(none)'})))}" for key in wanted)
        notes.append(f"no file matches the stack ({_shown_wanted(wanted)}); the files have {found}")
    expected = _count(stack.get("n_instances"))
    if expected is not None and matched and expected != len(matched) + len(undecidable):
        notes.append(f"{len(matched) + len(undecidable)} file(s) match the stack, the table says {expected}")
    return "; ".join(notes)


def _count(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _shown_wanted(wanted: dict) -> str:
    return ", ".join(f"{key} {_shown(value)}" for key, value in wanted.items())


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
