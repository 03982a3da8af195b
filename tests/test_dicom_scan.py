"""The header scan (top-level SeriesInstanceUID only), picking a stack's files by
header, and what the series job does with both (issue 19, items 3 and 5)."""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
import pytest
from bidsport import dcm2niix as d2n
from bidsport import export_series as es
from bidsport.dicom_scan import FIRST_READ, HEAD_BYTES, absent_message, scan_series, series_uid_by_walk, series_uid_of, stack_files
from bidsport.synthdicom import MR_IMAGE_STORAGE, make_uid, spec_for, write_series
from helpers import SAMPLES, needs_samples
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

TOP_UID = "1.2.40.0.13.1.7.1"
NESTED_UID = "1.2.40.0.13.1.7.2"
XA30I = SAMPLES / "dcm_qa_xa30i" / "In"
PH_DUAL_ECHO = SAMPLES / "dcm_qa_table" / "In" / "Ph" / "1301_Dual-echo_iso"
PH_ENHANCED = SAMPLES / "dcm_qa_enh" / "In" / "Philips" / "IM_0027_fMAP.dcm"

# --------------------------------------------------------------- synthetic headers
# pydicom always writes sequences and items of undefined length; the Siemens XA
# interoperability export uses defined lengths without delimiters, so these
# helpers encode sequences by hand, either way.


def _encode(ds: Dataset, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def _tag(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def _sequence(tag: int, items: list[bytes], implicit: bool, defined: bool) -> bytes:
    """An SQ element holding ``items`` (encoded item contents)."""
    body = b""
    for content in items:
        if defined:
            body += _tag(0xFFFEE000) + struct.pack("<I", len(content)) + content
        else:
            body += _tag(0xFFFEE000) + b"\xff\xff\xff\xff" + content + _tag(0xFFFEE00D) + b"\0\0\0\0"
    if not defined:
        body += _tag(0xFFFEE0DD) + b"\0\0\0\0"
    length = struct.pack("<I", len(body) if defined else 0xFFFFFFFF)
    return _tag(tag) + (length if implicit else b"SQ\0\0" + length) + body


def _referencing_item(implicit: bool) -> bytes:
    """An item of ReferencedSeriesSequence: another series' UID, then more elements."""
    item = Dataset()
    item.SeriesInstanceUID = NESTED_UID
    item.add_new(0x0040A170, "SQ", [])  # an element after it, as in the XA30 item
    return _encode(item, implicit)


def _write(path: Path, middle: bytes, implicit: bool = False, pad: int = 0, sop: str = MR_IMAGE_STORAGE) -> Path:
    """A DICOM file whose top level holds ``middle`` (encoded elements in the 0008
    group after SOPInstanceUID) before its own SeriesInstanceUID."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = make_uid(path.name)
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_file_meta_info(head, meta)
    first = Dataset()
    first.SOPClassUID = sop
    first.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    last = Dataset()
    if pad:  # a private OB value before the UID: pushes it beyond the first read
        last.add_new(0x00190010, "LO", "PAD")
        last.add_new(0x00191001, "OB", b"\x20\x00\x0e\x00" * (pad // 4))
    last.StudyInstanceUID = make_uid("study")
    last.SeriesInstanceUID = TOP_UID
    last.SeriesNumber = 1
    path.write_bytes(b"\0" * 128 + b"DICM" + head.getvalue() + _encode(first, implicit) + middle + _encode(last, implicit))
    return path


# The byte search (which answers where it can prove its answer) and the walk.
READERS = pytest.mark.parametrize("read", [series_uid_of, series_uid_by_walk], ids=["search", "walk"])


@READERS
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("defined", [True, False], ids=["defined", "undefined"])
def test_a_series_uid_inside_a_sequence_item_is_not_the_files_own(tmp_path, implicit, defined, read):
    middle = _sequence(0x00081250, [_referencing_item(implicit)], implicit, defined)
    path = _write(tmp_path / "f.dcm", middle, implicit)
    data = path.read_bytes()
    assert data.find(NESTED_UID.encode()) < data.find(TOP_UID.encode()) < FIRST_READ  # the trap is set
    assert read(path) == (TOP_UID, MR_IMAGE_STORAGE)
    assert pydicom.dcmread(path).SeriesInstanceUID == TOP_UID  # the file is what we think it is


@READERS
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_nested_sequences_at_any_depth_mixing_defined_and_undefined_lengths(tmp_path, implicit, read):
    inner = _sequence(0x00081250, [_referencing_item(implicit)], implicit, defined=True)
    middle_item = _encode(_dataset(ReferringPhysicianName="x"), implicit) + inner
    middle = _sequence(0x00081115, [middle_item, _referencing_item(implicit)], implicit, defined=False)
    outer_item = _encode(_dataset(StudyID="1"), implicit) + middle
    seq = _sequence(0x00081140, [outer_item], implicit, defined=True)
    seq += _sequence(0x00081250, [outer_item], implicit, defined=False)
    path = _write(tmp_path / "deep.dcm", seq, implicit)
    assert path.read_bytes().count(NESTED_UID.encode()) == 4
    assert read(path) == (TOP_UID, MR_IMAGE_STORAGE)
    assert pydicom.dcmread(path).SeriesInstanceUID == TOP_UID


def _dataset(**values) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


@READERS
@pytest.mark.parametrize("pad", [6000, 20000], ids=["within-16KiB", "beyond-16KiB"])
def test_a_uid_beyond_the_first_read_and_a_large_sequence_skipped_whole(tmp_path, pad, read):
    big_item = _referencing_item(False) + _encode(_dataset(DerivationDescription="d" * 1000), False)
    seq = _sequence(0x00081250, [big_item] * 8, implicit=False, defined=True)  # > 8 KiB
    path = _write(tmp_path / "far.dcm", seq, pad=pad)
    assert path.read_bytes().find(TOP_UID.encode()) > (2 * FIRST_READ if pad < HEAD_BYTES else HEAD_BYTES)
    assert read(path) == (TOP_UID, MR_IMAGE_STORAGE)


@pytest.mark.parametrize(
    "marker",
    [b"\xfe\xff\x0d\xe0\0\0\0\0", b"\xfe\xff\x00\xe0\xff\xff\xff\xff", b"\xfe\xff\x00\xe0\xff\xff\x00\x00"],
    ids=["delimiter", "undefined-item", "defined-item"],
)
def test_item_markers_inside_a_value_do_not_mislead_the_search(tmp_path, marker):
    """Bytes that look like an item tag or delimiter inside a binary value: the
    search cannot pair them, so the walk (which steps over values) answers."""
    blob = Dataset()
    blob.add_new(0x00090010, "LO", "BLOB")
    blob.add_new(0x00091001, "OB", marker * 4)
    middle = _sequence(0x00081250, [_referencing_item(False)], False, True) + _encode(blob, False)
    path = _write(tmp_path / "blob.dcm", middle)
    assert series_uid_of(path) == series_uid_by_walk(path) == (TOP_UID, MR_IMAGE_STORAGE)


def test_truncated_and_non_dicom_files_belong_to_no_series(tmp_path):
    path = _write(tmp_path / "whole.dcm", _sequence(0x00081250, [_referencing_item(False)], False, True))
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: data.find(TOP_UID.encode()) - 8])  # ends before its own UID
    text = tmp_path / "notes.txt"
    text.write_text("DICM " * 100)
    assert series_uid_of(cut) == (None, None)
    assert series_uid_of(text) == (None, None)
    assert series_uid_of(tmp_path / "missing.dcm") == (None, None)


def test_a_series_that_is_not_there_is_named_with_what_is(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.dcm", b"")
    scan = scan_series(tmp_path, NESTED_UID)
    assert scan.files == [] and scan.others == {TOP_UID: 3}
    message = absent_message(scan, NESTED_UID, tmp_path)
    assert f"no DICOM image of series {NESTED_UID}" in message and f"{TOP_UID} (3 files)" in message
    found = scan_series(tmp_path, TOP_UID)
    assert len(found.files) == 3 and found.pure
    reports = tmp_path / "reports"
    reports.mkdir()
    _write(reports / "sr.dcm", b"", sop="1.2.840.10008.5.1.4.1.1.88.22")  # a structured report
    only_reports = scan_series(reports, TOP_UID)
    assert only_reports.files == [] and only_reports.non_image == 1
    assert "only 1 non-image object" in absent_message(only_reports, TOP_UID, reports)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no file there has a readable SeriesInstanceUID" in absent_message(scan_series(empty, TOP_UID), TOP_UID, empty)


@needs_samples
def test_xa30_interoperability_export_gives_its_top_level_series_uid():
    """The real case: every file holds a RelatedSeriesSequence item with another
    series' UID (defined lengths) before its own."""
    for folder in ("10001_gre_field_mapping", "18001_asl_2d_tra"):
        files = sorted(str(p) for p in (XA30I / folder).iterdir())
        own = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        scan = scan_series(XA30I / folder, own)
        assert scan.files == files and scan.pure


@needs_samples
def test_search_and_walk_agree_with_pydicom_on_every_sample_file():
    from bidsport.dicom_scan import walk_files

    checked = 0
    for path in walk_files(SAMPLES):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            assert series_uid_of(path) == (None, None), path
            continue
        expected = (str(ds.SeriesInstanceUID), str(ds.SOPClassUID))
        assert series_uid_of(path) == series_uid_by_walk(path) == expected, path
        checked += 1
    assert checked > 800


# --------------------------------------------------------------------- stacks


def _four_stacks(folder: Path) -> str:
    """One series in one folder: magnitude and phase at two echoes (4 stacks), as a
    Philips two-echo fieldmap series."""
    uid = make_uid("four-stacks")
    common = {"patient_id": "p1", "study_uid": make_uid("study"), "study_date": "20240101", "series_uid": uid}
    write_series(folder, spec_for("fmap_magnitude", slices=4, rows=16, cols=16), **common)
    phase = spec_for("fmap_magnitude", slices=4, rows=16, cols=16, image_type=("ORIGINAL", "PRIMARY", "P", "ND"))
    write_series(folder, phase, file_prefix="p", **common)
    return uid


STACKS = [
    {"echo_time": 4.92, "image_type": "ORIGINAL\\PRIMARY\\M\\ND"},
    {"echo_time": 7.38, "image_type": "ORIGINAL\\PRIMARY\\M\\ND"},
    {"echo_time": 4.92, "image_type": "ORIGINAL\\PRIMARY\\P\\ND"},
    {"echo_time": 7.38, "image_type": "ORIGINAL\\PRIMARY\\P\\ND"},
]


def _header(path: str) -> tuple[float, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return float(ds.EchoTime), "\\".join(ds.ImageType)


def test_each_of_four_stacks_in_one_folder_gets_its_own_files(tmp_path):
    _four_stacks(tmp_path)
    files = sorted(str(p) for p in tmp_path.iterdir())
    assert len(files) == 16
    seen: set[str] = set()
    for stack in STACKS:
        picked = stack_files(files, {**stack, "modality": "MR", "echo_numbers": "1" if stack["echo_time"] < 5 else "2", "n_instances": "4"})
        assert len(picked.files) == 4 and not picked.undecidable and picked.note == ""
        assert {_header(f) for f in picked.files} == {(stack["echo_time"], stack["image_type"])}
        seen.update(picked.files)
    assert seen == set(files)


def test_stack_values_compare_as_the_classifier_rounds_and_spells_them(tmp_path):
    _four_stacks(tmp_path)
    files = sorted(str(p) for p in tmp_path.iterdir())
    # 0.01 ms rounding, case, padding, orientation class, text numbers
    loose = {"echo_time": "4.921", "image_type": "original\\primary\\p\\nd ", "image_orientation": "axial", "repetition_time": "500"}
    assert len(stack_files(files, loose).files) == 4
    assert len(stack_files(files, {"image_orientation": "Sagittal"}).files) == 0
    assert len(stack_files(files, {"echo_time": "", "image_type": None, "flip_angle": float("nan")}).files) == 16  # nothing given: all
    with pytest.raises(ValueError, match="echo_time 'short' is not a number"):
        stack_files(files, {"echo_time": "short"})


def test_a_stack_that_matches_nothing_says_what_the_files_hold(tmp_path):
    _four_stacks(tmp_path)
    files = sorted(str(p) for p in tmp_path.iterdir())
    picked = stack_files(files, {"echo_time": 10.0})
    assert picked.files == [] and "no file matches" in picked.note and "4.92" in picked.note and "7.38" in picked.note
    counted = stack_files(files, {"echo_time": 4.92, "n_instances": 5})
    assert len(counted.files) == 8 and "the table says 5" in counted.note


def _multiframe(path: Path, frame_types: list[str], echo_times: list[float]) -> Path:
    """A small enhanced MR file: its frames' ImageType and echo time in functional groups."""
    ds = _dataset(SOPClassUID="1.2.840.10008.5.1.4.1.1.4.1", SOPInstanceUID=make_uid(path.name), Modality="MR",
                  SeriesInstanceUID=TOP_UID, ImageType=["ORIGINAL", "PRIMARY", "MIXED"], NumberOfFrames=len(echo_times))  # fmt: skip
    ds.PerFrameFunctionalGroupsSequence = [
        _dataset(MRImageFrameTypeSequence=[_dataset(FrameType=ft.split("\\"))], MREchoSequence=[_dataset(EffectiveEchoTime=te)])
        for ft, te in zip(frame_types, echo_times)
    ]
    ds.SharedFunctionalGroupsSequence = [_dataset(PlaneOrientationSequence=[_dataset(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])])]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_multi_frame_file_holding_several_stacks_is_undecidable(tmp_path):
    mixed = str(_multiframe(tmp_path / "mixed.dcm", ["ORIGINAL\\PRIMARY\\M", "ORIGINAL\\PRIMARY\\P"], [4.92, 4.92]))
    magnitude = str(_multiframe(tmp_path / "mag.dcm", ["ORIGINAL\\PRIMARY\\M"] * 2, [4.92, 7.38]))
    picked = stack_files([mixed, magnitude], {"image_type": "ORIGINAL\\PRIMARY\\M"})
    assert picked.files == [magnitude] and picked.undecidable == [mixed] and "multi-frame" in picked.note
    by_echo = stack_files([mixed, magnitude], {"echo_time": 4.92, "image_orientation": "Axial"})
    assert by_echo.files == [mixed] and by_echo.undecidable == [magnitude]
    whole = stack_files([mixed], {"image_type": "ORIGINAL\\PRIMARY\\MIXED"})  # the file's own ImageType
    assert whole.files == [mixed]


def test_unreadable_files_are_reported_not_matched(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    picked = stack_files([str(junk)], {"modality": "MR"})
    assert picked.unreadable == [str(junk)] and picked.files == [] and "could not be read" in picked.note


@needs_samples
def test_philips_dual_echo_magnitude_and_phase_split_by_header():
    files = sorted(str(p) for p in PH_DUAL_ECHO.iterdir())
    for echo, te in ((1, 7.0), (2, 10.0)):
        for part, image_type in (("M", "ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE"), ("P", "ORIGINAL\\PRIMARY\\PHASE MAP\\P\\FFE")):
            picked = stack_files(files, {"echo_time": te, "image_type": image_type, "echo_numbers": str(echo), "n_instances": 30})
            assert len(picked.files) == 30 and picked.note == ""
            for path in picked.files:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                assert int(ds.EchoNumbers) == echo and ds.ImageType[3] == part


@needs_samples
def test_philips_enhanced_fieldmap_frames_hold_two_stacks():
    picked = stack_files([str(PH_ENHANCED)], {"image_type": "ORIGINAL\\PRIMARY\\T1\\M"})
    assert picked.undecidable == [str(PH_ENHANCED)] and picked.files == []


# ------------------------------------------------------------------ series job


def _spec(source: Path, uid: str, **more) -> dict:
    spec = {
        "key": "k", "subject": "01", "session": None, "series_instance_uid": uid, "stack_index": 0, "n_stacks": 1,
        "stack_key": "", "datatype": "fmap", "subfolder": None, "entities": [], "suffix": "phasediff", "tail": "",
        "role": "image", "kind": "raw", "run": None, "stem": "sub-01_phasediff", "formats": ["nii.gz", "dcm"],
        "nifti_dir": "sub-01/fmap", "dicom_dir": "sourcedata/sub-01/fmap/sub-01_phasediff", "source": str(source),
        "multi_suffix": "", "overwrite": "skip",
    }  # fmt: skip
    spec.update(more)
    return spec


def _export(spec: dict, part: str, out: Path) -> dict:
    return es.export(spec, part, out, dcm2niix=d2n.find_dcm2niix(), copy_method="copy", copy_workers=1, timeout=120)


def test_dicom_copy_of_each_stack_holds_only_its_files(tmp_path):
    src = tmp_path / "src"
    uid = _four_stacks(src)
    out = tmp_path / "out"
    for index, stack in enumerate(STACKS):
        spec = _spec(src, uid, key=f"k{index}", stack_index=index, n_stacks=4, stack={**stack, "n_instances": 4},
                     dicom_dir=f"sourcedata/sub-01/fmap/stack{index}", source_alone=True)  # fmt: skip
        manifest = _export(spec, "dicom", out)
        assert manifest["status"] == "exported" and manifest["warnings"] == [], manifest
        copied = sorted((out / spec["dicom_dir"]).iterdir())
        assert len(copied) == 4
        assert {_header(str(p)) for p in copied} == {(stack["echo_time"], stack["image_type"])}


def test_dicom_copy_keeps_the_whole_series_without_stack_values(tmp_path):
    src = tmp_path / "src"
    uid = _four_stacks(src)
    manifest = _export(_spec(src, uid, n_stacks=4, stack_index=1), "dicom", tmp_path / "out")
    assert manifest["status"] == "exported"
    assert len(list((tmp_path / "out" / "sourcedata/sub-01/fmap/sub-01_phasediff").iterdir())) == 16


def test_dicom_copy_of_a_stack_found_nowhere_fails_saying_why(tmp_path):
    src = tmp_path / "src"
    uid = _four_stacks(src)
    manifest = _export(_spec(src, uid, n_stacks=4, stack={"echo_time": 9.9}), "dicom", tmp_path / "out")
    assert manifest["status"] == "failed" and "no file matches the stack" in manifest["message"]
    assert not (tmp_path / "out" / "sourcedata").exists()


def test_multi_frame_files_of_several_stacks_are_copied_with_a_warning(tmp_path):
    src = tmp_path / "src"
    _multiframe(src.mkdir() or src / "mixed.dcm", ["ORIGINAL\\PRIMARY\\M", "ORIGINAL\\PRIMARY\\P"], [4.92, 4.92])
    _multiframe(src / "mag.dcm", ["ORIGINAL\\PRIMARY\\M"] * 2, [4.92, 4.92])
    _multiframe(src / "phase.dcm", ["ORIGINAL\\PRIMARY\\P"] * 2, [4.92, 4.92])
    spec = _spec(src, TOP_UID, n_stacks=2, stack={"image_type": "ORIGINAL\\PRIMARY\\M"}, formats=["dcm"])
    manifest = _export(spec, "dicom", tmp_path / "out")
    assert manifest["status"] == "exported"
    assert sorted(p.name for p in (tmp_path / "out" / spec["dicom_dir"]).iterdir()) == ["mag.dcm", "mixed.dcm"]
    assert any("multi-frame" in w and "copied whole" in w for w in manifest["warnings"])


def test_a_lone_folder_whose_outputs_are_not_named_by_uid_is_converted_from_its_own_files(tmp_path):
    """A folder that holds another series too (not in the table) and outputs that
    dcm2niix does not name by UID: the exact path converts only the series' files."""
    src = tmp_path / "src"
    uid = _four_stacks(src)
    other = write_series(src, spec_for("t1w", slices=3, rows=16, cols=16), patient_id="p1", study_uid=make_uid("study"), study_date="20240101", file_prefix="t1")  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    renamer = work / "dcm2niix"  # the real dcm2niix, told to name outputs by series number
    renamer.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do if [ "$a" = series_%j ]; then a=series_%s; fi; set -- "$@" "$a"; shift; done\n'
        f'exec "{d2n.find_dcm2niix()}" "$@"\n'
    )
    renamer.chmod(0o755)
    spec = _spec(src, uid, source_alone=True, formats=["nii.gz"], dicom_dir=None)
    manifest = es.export(spec, "nifti", tmp_path / "out", dcm2niix=str(renamer), copy_method="copy", copy_workers=1, timeout=120)
    assert manifest["status"] == "exported", manifest
    assert "/nii/series" in manifest["dcm2niix_output"]  # the second, exact conversion ...
    assert "Found 16 DICOM file(s)" in manifest["dcm2niix_output"]  # ... of its own files only
    assert any("also holds 3 file(s) of series not in the table" in w for w in manifest["warnings"])
    assert len(other.files) == 3


def test_a_missing_series_names_the_series_that_are_there(tmp_path):
    src = tmp_path / "src"
    uid = _four_stacks(src)
    manifest = _export(_spec(src, "1.2.3.4", source_alone=True), "nifti", tmp_path / "out")
    assert manifest["status"] == "failed"
    assert manifest["message"].startswith("no DICOM image of series 1.2.3.4") and f"{uid} (16 files)" in manifest["message"]


@needs_samples
@pytest.mark.parametrize("folder", ["10001_gre_field_mapping", "18001_asl_2d_tra"])
def test_xa30_interoperability_series_alone_in_its_folder_is_exported(tmp_path, folder):
    """dcm2niix names these outputs by series time, not UID (%j): the job falls back
    to the series' own files, which the header scan now finds."""
    source = XA30I / folder
    uid = str(pydicom.dcmread(next(source.iterdir()), stop_before_pixels=True).SeriesInstanceUID)
    spec = _spec(source, uid, source_alone=True)
    out = tmp_path / "out"
    nifti = _export(spec, "nifti", out)
    assert nifti["status"] == "exported", nifti
    written = sorted(Path(f["path"]).name.split(".", 1)[1] for f in nifti["files"])
    assert written == ["json", "nii.gz"]  # one image (its name is the naming tests' business)
    # converted once: the folder holds only this series, so the first conversion's
    # outputs (named by series time) are its own
    assert "nii-alone/series_" in nifti["dcm2niix_output"] and "/nii/series" not in nifti["dcm2niix_output"]
    dicom = _export(spec, "dicom", out)
    assert dicom["status"] == "exported", dicom
    assert sorted(p.name for p in (out / spec["dicom_dir"]).iterdir()) == sorted(p.name for p in source.iterdir())
