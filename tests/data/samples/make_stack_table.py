#!/usr/bin/env python3
"""Write series_table_stacks.tsv: the real samples as the NILS classifier tables them.

NILS (NILS_DATABASE.md) splits every series into *stacks*: each instance gets a
signature (echo time rounded to 0.01 ms, inversion time, echo numbers, repetition time,
flip angle, orientation, ImageType), instances with equal signatures form one stack,
and ``stack_index`` numbers the stacks in the order they were first met while reading
the files. This script does the same from the headers (pydicom), one row per stack,
with the ``stack_*`` columns; the classification per series is hand-written below, as
NILS's rules would give it (its provenance is a *branch*: raw BOLD is ``BOLDRecon``,
raw DTI acquisitions ``DTIRecon``, raw ASL ``ASLRecon``).

    python make_stack_table.py [--root DIR]   # writes series_table_stacks.tsv beside this file
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_table import DEFAULT_ROOT, XA, dicom_files, fmt_date, series_time  # noqa: E402

HERE = Path(__file__).resolve().parent
STACK_COLUMNS = [
    "stack_key", "stack_modality", "stack_echo_time", "stack_inversion_time", "stack_echo_numbers",
    "stack_image_type", "stack_image_orientation", "stack_n_instances",
]  # fmt: skip
COLUMNS = [
    "subject_code", "session_id", "study_date", "series_instance_uid", "stack_index", "series_number",
    "series_time", "series_description", "dicom_path", "directory_type", "base", "modifier_csv",
    "construct_csv", "technique", "provenance", "task", *STACK_COLUMNS,
]  # fmt: skip
XAI = "dcm_qa_xa30i/In/"
SERIES: dict[str, dict] = {
    # "read": "reverse" lists a series' files backwards (see rows_of).
# Siemens XA30 enhanced: the fieldmap magnitude series holds two echoes (one file each)
    XA + "5_anat-T1w_acq-tfl": dict(subject_code="XA30", directory_type="anat", base="T1w", technique="MPRAGE"),
    XA + "7_func-bold_task-fa_run-1": dict(subject_code="XA30", directory_type="func", technique="BOLD", provenance="BOLDRecon", task="fa"),
    XA + "8_gre_field_mapping": dict(subject_code="XA30", directory_type="fmap", construct_csv="Magnitude", technique="GRE", read="reverse"),
    XA + "9_gre_field_mapping": dict(subject_code="XA30", directory_type="fmap", construct_csv="Phase", technique="GRE"),
    XA + "17_DWI_dir80_AP": dict(subject_code="XA30", directory_type="dwi", base="DWI", technique="DWI-EPI"),
    XA + "19_DWI_dir80_AP": dict(subject_code="XA30", directory_type="dwi", base="DWI", construct_csv="ADC", provenance="DTIRecon"),
    XA + "25_asl_2d_tra": dict(subject_code="XA30", directory_type="perf", base="PWI", technique="ASL", provenance="ASLRecon"),
    # Philips dual echo, magnitude and phase in ONE series (4 stacks), shared folder
    "dcm_qa_table/In/Ph/1301_Dual-echo_iso": dict(subject_code="Ph_1301", session_id="baseline", directory_type="fmap", construct_csv="Magnitude,Phase", technique="GRE", read="reverse"),
    # GE: 3-plane localizer (3 stacks by orientation), raw DTI acquisition
    "dcm_qa_table/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF": dict(subject_code="GE-1486", session_id="baseline", directory_type="localizer", provenance="Localizer"),
    "dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9": dict(subject_code="GE-1486", session_id="baseline", directory_type="func", technique="BOLD", provenance="BOLDRecon", task="rest"),
    "dcm_qa_ge/In/01_Ax_DWI_TENSOR_R2": dict(subject_code="GE-Pioneer", directory_type="dwi", base="DWI", technique="DWI-EPI", provenance="DTIRecon"),
    # GE epi_pepolar: both polarities in one series; the table has no direction
    "dcm_qa_polar/In/8_FM_cv12_3_3mm": dict(subject_code="GE-UHP", session_id="M00", directory_type="fmap", technique="SE-EPI"),
    # UIH raw DTI pair (NILS: keyword "dti" → DTIRecon)
    "dcm_qa_uih/In/DTI_134434/dti_tra_dir16_AP_SaveBySlc__140028": dict(subject_code="UIH", directory_type="dwi", base="DWI", technique="DWI-EPI", provenance="DTIRecon"),
    "dcm_qa_uih/In/DTI_134434/dti_tra_dir16_PA_SaveBySlc__135612": dict(subject_code="UIH", directory_type="dwi", base="DWI", technique="DWI-EPI", provenance="DTIRecon"),
    # Philips raw BOLD
    "dcm_qa_philips/In/Magdeburg_2014/fmri": dict(subject_code="Magdeburg", directory_type="func", technique="BOLD", provenance="BOLDRecon", task="rest"),
    # Siemens XA30 interoperability (classic) export: a phase difference alone and a PASL run
    # stored as one series per volume
    XAI + "10001_gre_field_mapping": dict(subject_code="XA30i", session_id="M00", directory_type="fmap", construct_csv="Phase", technique="GRE"),
    **{XAI + f"1800{i}_asl_2d_tra": dict(subject_code="XA30i", session_id="M00", directory_type="perf", technique="ASL", provenance="ASLRecon") for i in range(1, 8)},
    # Siemens E11 mosaic 2D PASL
    "dcm_qa_asl/In/PASL2D/3_pasl_2d": dict(subject_code="PASL", session_id="M00", directory_type="perf", technique="ASL", provenance="ASLRecon"),
}  # fmt: skip


def _first_frame(ds, keyword):
    """A value from the enhanced file's shared or first per-frame functional groups."""
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(seq_name, [])[:1]:
            for item in group:
                if item.VR == "SQ":
                    for sub in item.value[:1]:
                        if keyword in sub:
                            return sub.get(keyword)
    return None


def _value(ds, keyword, frame_keyword=None):
    value = ds.get(keyword)
    if value in (None, ""):
        value = _first_frame(ds, frame_keyword or keyword)
    return value


def orientation(iop) -> str:
    if not iop or len(iop) != 6:
        return ""
    r, c = [float(v) for v in iop[:3]], [float(v) for v in iop[3:]]
    n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
    return ("Sagittal", "Coronal", "Axial")[max(range(3), key=lambda a: abs(n[a]))]


def signature(ds) -> dict:
    echo = _value(ds, "EchoTime", "EffectiveEchoTime")
    ti = _value(ds, "InversionTime")
    numbers = ds.get("EchoNumbers")
    image_type = ds.get("ImageType") or []
    return {
        "stack_modality": str(ds.get("Modality", "")),
        "stack_echo_time": f"{round(float(echo), 2):g}" if echo not in (None, "") else "",
        "stack_inversion_time": f"{float(ti):g}" if ti not in (None, "") else "",
        "stack_echo_numbers": "\\".join(str(n) for n in numbers) if isinstance(numbers, (list, pydicom.multival.MultiValue)) else str(numbers or ""),
        "stack_image_type": "\\".join(str(t) for t in image_type) if not isinstance(image_type, str) else image_type,
        "stack_image_orientation": orientation(_value(ds, "ImageOrientationPatient")),
    }


def stack_key(signatures: list[dict]) -> str:
    differs = lambda key: len({s[key] for s in signatures}) > 1  # noqa: E731
    if differs("stack_echo_time") or differs("stack_echo_numbers"):
        return "multi_echo"
    if differs("stack_inversion_time"):
        return "multi_ti"
    if differs("stack_image_orientation"):
        return "multi_orientation"
    return "image_type_variation" if differs("stack_image_type") else ""


def rows_of(root: Path, rel: str, cls: dict) -> list[dict]:
    stacks: dict[tuple, dict] = {}
    first = None
    files = dicom_files(root / rel)
    # NILS numbers stacks in the order it meets them; "reverse" reads the files backwards,
    # so that stack_index 0 is the *last* echo / the phase image: names must not follow it.
    for path in reversed(files) if cls.get("read") == "reverse" else files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uid = str(ds.SeriesInstanceUID)
        except Exception:  # notes, csv …
            continue
        first = first or ds
        sig = signature(ds)
        entry = stacks.setdefault(tuple(sig.items()), {"sig": sig, "n": 0, "uid": uid})
        entry["n"] += 1
    key = stack_key([s["sig"] for s in stacks.values()]) if len(stacks) > 1 else ""
    rows = []
    for index, entry in enumerate(stacks.values()):
        row = {c: "" for c in COLUMNS}
        row.update({k: v for k, v in cls.items() if k in COLUMNS})
        row.update(entry["sig"])
        row.update(
            series_instance_uid=entry["uid"], stack_index=str(index), stack_key=key, stack_n_instances=str(entry["n"]),
            series_number=str(first.get("SeriesNumber", "") or ""), series_time=series_time(first),
            study_date=fmt_date(first.get("StudyDate")), series_description=str(first.get("SeriesDescription", "") or ""),
            dicom_path=rel,
        )  # fmt: skip
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=DEFAULT_ROOT)
    args = parser.parse_args()
    root = Path(args.root)
    rows = [row for rel, cls in SERIES.items() for row in rows_of(root, rel, cls)]
    with open(HERE / "series_table_stacks.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} stack rows from {len(SERIES)} series")


if __name__ == "__main__":
    main()
