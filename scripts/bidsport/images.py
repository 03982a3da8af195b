"""What one dcm2niix output is, from its sidecar (and, failing that, its file name).

dcm2niix appends postfixes (``_e2``, ``_ph``, ``_fieldmaphz``, ``a``, ``_i00001`` …)
to tell the outputs of one conversion apart. They are hints, not names: a BIDS name
comes from what the sidecar says the image is (EchoTime, ImageType, phase-encoding
direction, orientation), which :func:`output_facts` reads, with the postfix only as a
fallback where the sidecar is silent. Used at planning time (the fieldmap probe) and
by the series job (picking a stack's outputs, naming each output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .dicom_scan import orientation_class
from .stacks import image_part

# Direction (LPS, DICOM's patient axes) toward which phase is encoded → BIDS dir- label.
_DIR_LABEL = {(0, 1): "RL", (0, -1): "LR", (1, 1): "AP", (1, -1): "PA", (2, 1): "IS", (2, -1): "SI"}


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


def orientation_of(orientation: list[float] | None) -> str | None:
    """``axial``, ``coronal`` or ``sagittal`` from ImageOrientationPatient (6 numbers)."""
    found = orientation_class([float(v) for v in orientation]) if orientation else None
    return found.lower() if found else None


@dataclass(frozen=True)
class OutputFacts:
    """One dcm2niix output, as far as its sidecar (or postfix) tells."""

    postfix: str = ""
    echo_time: float | None = None  # ms
    echo: int | None = None  # EchoNumber, else the postfix's ``_eN``
    part: str | None = None  # mag | phase | real | imag
    fieldmap_hz: bool = False  # a B0 field map (dcm2niix ``_fieldmaphz``)
    pe_direction: str | None = None  # i, j-, …
    pe_dir: str | None = None  # the BIDS dir- label it means
    orientation: str | None = None  # axial | coronal | sagittal
    image_type: tuple[str, ...] = ()
    modality: str | None = None  # MR, CT, PT … (dcm2niix writes it)
    acquired: str | None = None  # AcquisitionDateTime, else AcquisitionTime, as the sidecar gives it


def output_facts(postfix: str, sidecar: dict | None = None) -> OutputFacts:
    """Facts of the output with this dcm2niix postfix and (optional) sidecar."""
    sidecar = sidecar or {}
    tokens = [t for t in postfix.split("_") if t]
    echo = next((int(m.group(1)) for t in tokens if (m := re.fullmatch(r"e(\d+)", t))), None)
    if isinstance(sidecar.get("EchoNumber"), int):
        echo = sidecar["EchoNumber"]
    image_type = tuple(str(t).upper() for t in sidecar.get("ImageType") or ())
    part = image_part(list(image_type)) if image_type else None
    if part is None:
        part = "phase" if "ph" in tokens else "real" if "real" in tokens else "imag" if {"imaginary", "imag"} & set(tokens) else None
    hz = "fieldmaphz" in tokens or ("FIELDMAP" in image_type and part != "phase")
    echo_time = sidecar.get("EchoTime")
    orientation = sidecar.get("ImageOrientationPatientDICOM")
    return OutputFacts(
        postfix=postfix,
        echo_time=round(float(echo_time) * 1000, 4) if isinstance(echo_time, (int, float)) else None,
        echo=echo,
        part=None if hz else part,
        fieldmap_hz=hz,
        pe_direction=sidecar.get("PhaseEncodingDirection"),
        pe_dir=dir_label(sidecar.get("PhaseEncodingDirection"), orientation),
        orientation=orientation_of(orientation),
        image_type=image_type,
        modality=str(sidecar["Modality"]).upper() if sidecar.get("Modality") else None,
        acquired=str(sidecar.get("AcquisitionDateTime") or sidecar.get("AcquisitionTime") or "") or None,
    )


def kind(facts: OutputFacts) -> str:
    """``fieldmap``, ``phase`` or ``magnitude`` (what a fieldmap output is)."""
    if facts.fieldmap_hz:
        return "fieldmap"
    return "phase" if facts.part == "phase" else "magnitude"
