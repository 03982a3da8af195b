"""Synthetic classic MR DICOM series (one slice per file) that dcm2niix converts.

For the demo, the tests and the benchmarks. Everything is deterministic: UIDs come
from uuid5 of the given names, pixel data from a seeded generator, so regenerating
gives byte-identical files (and existing identical files are left untouched, which
keeps re-runs incremental).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def make_uid(*names: object) -> str:
    """A stable DICOM UID (2.25.<uuid5 as integer>) for the given names."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "bidsport/" + "/".join(map(str, names))).int)


@dataclass
class SeriesSpec:
    """What to write; the defaults make a small 3D T1w."""

    kind: str = "t1w"  # t1w t2w flair bold dwi fmap_magnitude fmap_phasediff swi_mag swi_phase synthetic adc localizer
    description: str = "T1w"
    series_number: int = 1
    series_time: str = "100000"
    slices: int = 24
    volumes: int = 1
    rows: int = 64
    cols: int = 64
    echo_times: tuple[float, ...] = (3.0,)
    repetition_time: float = 2300.0
    b_values: tuple[float, ...] = ()
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    extra: dict = field(default_factory=dict)


KINDS = {
    "t1w": dict(description="t1_mprage", echo_times=(2.98,), repetition_time=2300.0),
    "t2w": dict(description="t2_tse", echo_times=(89.0,), repetition_time=6000.0),
    "flair": dict(description="t2_flair", echo_times=(81.0,), repetition_time=9000.0),
    "bold": dict(description="ep2d_bold_rest", echo_times=(30.0,), repetition_time=2000.0, volumes=6, slices=12),
    "dwi": dict(description="ep2d_diff", echo_times=(89.0,), repetition_time=8000.0, b_values=(0, 1000, 1000, 1000, 1000, 1000, 1000), slices=12),
    "adc": dict(description="ep2d_diff_ADC", image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), slices=12),
    "fmap_magnitude": dict(description="gre_field_mapping", echo_times=(4.92, 7.38), repetition_time=500.0, slices=12),
    "fmap_phasediff": dict(description="gre_field_mapping", echo_times=(7.38,), repetition_time=500.0, slices=12, image_type=("ORIGINAL", "PRIMARY", "P", "ND")),
    "swi_mag": dict(description="swi_mag", echo_times=(20.0,), repetition_time=28.0, slices=16),
    "swi_phase": dict(description="swi_pha", echo_times=(20.0,), repetition_time=28.0, slices=16, image_type=("ORIGINAL", "PRIMARY", "P", "ND")),
    "synthetic": dict(description="SyMRI synthetic", image_type=("DERIVED", "SECONDARY", "SYNTHETIC"), slices=16),
    "localizer": dict(description="localizer", echo_times=(4.0,), repetition_time=8.6, slices=3),
}  # fmt: skip


def spec_for(kind: str, **overrides) -> SeriesSpec:
    return SeriesSpec(kind=kind, **{**KINDS[kind], **overrides})


@dataclass
class WrittenSeries:
    series_instance_uid: str
    folder: Path
    files: list[Path]


def write_series(
    folder: Path,
    spec: SeriesSpec,
    *,
    patient_id: str,
    study_uid: str,
    study_date: str,
    seed: int = 0,
    series_uid: str | None = None,
    file_prefix: str = "",
) -> WrittenSeries:
    """Write one series into ``folder`` (which may hold other series too)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or make_uid(study_uid, spec.series_number, spec.kind)
    rng = np.random.default_rng(seed)
    base = _phantom(spec.rows, spec.cols, spec.slices, rng)
    files: list[Path] = []
    frame = 0
    directions = _directions(len(spec.b_values))
    n_vols = len(spec.b_values) if spec.b_values else spec.volumes
    for vol in range(n_vols):
        for echo_index, te in enumerate(spec.echo_times, start=1):
            for sl in range(spec.slices):
                frame += 1
                ds = _slice_dataset(spec, patient_id, study_uid, study_date, series_uid, frame)
                ds.EchoTime = te
                ds.EchoNumbers = echo_index if len(spec.echo_times) > 1 or spec.kind == "fmap_phasediff" else 1
                if spec.kind == "fmap_phasediff":
                    ds.EchoNumbers = 2
                ds.AcquisitionNumber = vol + 1
                ds.TemporalPositionIdentifier = vol + 1
                ds.NumberOfTemporalPositions = n_vols
                ds.ImagePositionPatient = [-spec.cols / 2, -spec.rows / 2, float(sl * 3)]
                ds.SliceLocation = float(sl * 3)
                t = (vol * spec.repetition_time / 1000.0) if spec.kind == "bold" else 0.0
                ds.AcquisitionTime = _add_seconds(spec.series_time, t + sl * 0.01)
                ds.ContentTime = ds.AcquisitionTime
                if spec.b_values:
                    ds.add_new(0x00189087, "FD", float(spec.b_values[vol]))
                    ds.add_new(0x00189089, "FD", [float(x) for x in directions[vol]])
                    ds.add_new(0x00189075, "CS", "DIRECTIONAL" if spec.b_values[vol] > 0 else "NONE")
                pixels = base[sl] * (1.0 + 0.1 * vol) / echo_index
                if "P" in spec.image_type:
                    pixels = (pixels * 7) % 4096
                ds.PixelData = np.clip(pixels, 0, 4095).astype(np.uint16).tobytes()
                path = folder / f"{file_prefix}{spec.series_number:03d}_{frame:05d}.dcm"
                _save_if_changed(ds, path)
                files.append(path)
    return WrittenSeries(series_uid, folder, files)


def _phantom(rows: int, cols: int, slices: int, rng: np.random.Generator) -> np.ndarray:
    """An ellipsoid 'head' with a little noise: recognisable in QC pictures."""
    z, y, x = np.mgrid[0:slices, 0:rows, 0:cols]
    cz, cy, cx = (slices - 1) / 2, (rows - 1) / 2, (cols - 1) / 2
    r = ((x - cx) / (cols * 0.4)) ** 2 + ((y - cy) / (rows * 0.45)) ** 2 + ((z - cz) / max(slices * 0.6, 1)) ** 2
    head = np.where(r < 1, 1000 - 400 * r, 0)
    inner = ((x - cx) / (cols * 0.15)) ** 2 + ((y - cy) / (rows * 0.2)) ** 2 < 1
    head = head + np.where(inner, 600, 0)
    return head + rng.normal(0, 20, head.shape).clip(0)


def _directions(n: int) -> list[tuple[float, float, float]]:
    dirs = [(0.0, 0.0, 0.0)]
    golden = np.pi * (3 - np.sqrt(5))
    for i in range(1, n):
        zc = 1 - 2 * (i - 0.5) / max(n - 1, 1)
        r = np.sqrt(max(0.0, 1 - zc * zc))
        dirs.append((float(np.cos(golden * i) * r), float(np.sin(golden * i) * r), float(zc)))
    return dirs


def _slice_dataset(spec: SeriesSpec, patient_id: str, study_uid: str, study_date: str, series_uid: str, frame: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = make_uid(series_uid, frame)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.ImageType = list(spec.image_type)
    ds.Modality = "MR"
    ds.Manufacturer = "Philips"
    ds.ManufacturerModelName = "Synthetic"
    ds.SoftwareVersions = "bidsport-synthetic"
    ds.MagneticFieldStrength = 3.0
    ds.PatientPosition = "HFS"
    ds.PatientName = f"Demo^{patient_id}"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.StudyTime = spec.series_time
    ds.SeriesTime = spec.series_time
    ds.SeriesNumber = spec.series_number
    ds.InstanceNumber = frame
    ds.SeriesDescription = spec.description
    ds.ProtocolName = spec.description
    ds.FrameOfReferenceUID = make_uid(study_uid, "frame")
    ds.RepetitionTime = spec.repetition_time
    ds.FlipAngle = 9.0
    ds.SliceThickness = 3.0
    ds.SpacingBetweenSlices = 3.0
    ds.PixelSpacing = [3.0, 3.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.MRAcquisitionType = "2D"
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.ScanningSequence = "EP" if spec.kind in ("bold", "dwi", "adc") else "GR"
    ds.SequenceVariant = "SK"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    return ds


def _add_seconds(hhmmss: str, seconds: float) -> str:
    total = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:6]) + seconds
    whole = int(total)
    frac = total - whole
    return f"{whole // 3600 % 24:02d}{whole % 3600 // 60:02d}{whole % 60:02d}.{int(round(frac * 1e6)):06d}"


def _save_if_changed(ds: Dataset, path: Path) -> None:
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
