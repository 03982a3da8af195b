"""The bundled demo: a small synthetic cohort and its tables.

``python -m bidsport.demo_data OUT_DIR [--subjects N]`` writes ``OUT_DIR/dicom``
(pydicom-made series), ``series_table.tsv``, ``subjects.tsv`` and
``subject_identifiers.tsv``. Deterministic: running it again changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import tsv
from .synthdicom import make_uid, spec_for, write_series

# (folder, kind, table columns); series in one folder share it (swi mag + phase).
SESSION_SERIES = [
    ("01_localizer", "localizer", {"directory_type": "localizer", "provenance": "Localizer"}),
    ("02_t1_mprage", "t1w", {"directory_type": "anat", "base": "T1w", "technique": "MPRAGE"}),
    ("03_t2_tse", "t2w", {"directory_type": "anat", "base": "T2w", "technique": "TSE"}),
    ("04_t2_flair", "flair", {"directory_type": "anat", "base": "T2w", "modifier_csv": "FLAIR", "technique": "TSE"}),
    ("05_dwi", "dwi", {"directory_type": "dwi", "base": "DWI", "technique": "EPI", "phase_encoding_direction": "AP"}),
    ("06_dwi_adc", "adc", {"directory_type": "dwi", "base": "DWI", "construct_csv": "ADC", "provenance": "DTIRecon"}),
    ("07_fieldmap_mag", "fmap_magnitude", {"directory_type": "fmap", "construct_csv": "Magnitude", "technique": "GRE"}),
    ("08_fieldmap_phase", "fmap_phasediff", {"directory_type": "fmap", "construct_csv": "Phase", "technique": "GRE"}),
    ("09_bold_rest", "bold", {"directory_type": "func", "task": "rest", "technique": "EPI"}),
    ("11_swi", "swi_mag", {"directory_type": "anat", "base": "SWI", "construct_csv": "Magnitude", "provenance": "SWIRecon"}),
    ("11_swi", "swi_phase", {"directory_type": "anat", "base": "SWI", "construct_csv": "Phase", "provenance": "SWIRecon"}),
    ("13_symri_t1", "synthetic", {"directory_type": "anat", "base": "T1w", "construct_csv": "SyntheticT1w", "provenance": "SyMRI"}),
    ("14_symri_t2", "synthetic", {"directory_type": "anat", "base": "T2w", "construct_csv": "SyntheticT2w", "provenance": "SyMRI"}),
    ("15_symri_flair", "synthetic", {"directory_type": "anat", "base": "T2w", "construct_csv": "SyntheticFLAIR", "provenance": "SyMRI"}),
]
COLUMNS = [
    "subject_code", "session_id", "study_date", "series_instance_uid", "series_number", "series_time",
    "series_description", "dicom_path", "directory_type", "base", "modifier_csv", "construct_csv",
    "technique", "provenance", "task", "phase_encoding_direction",
]  # fmt: skip


def make_demo(root: Path, n_subjects: int = 3) -> Path:
    """Write the demo cohort under ``root``; return the series table's path."""
    root = Path(root)
    rows = []
    subjects = [f"P-{i:03d}" for i in range(1, n_subjects + 1)]
    for s_index, subject in enumerate(subjects):
        sessions = [("M00", "20240115")] + ([("M12", "20250120")] if s_index == 0 else [])
        for ses, date in sessions:
            study_uid = make_uid("demo", subject, ses)
            plan = list(SESSION_SERIES)
            if s_index == 0 and ses == "M00":  # a second rest run, acquired later: run-01/run-02
                plan.append(("10_bold_rest_repeat", "bold", SESSION_SERIES[8][2]))
            for number, (folder, kind, columns) in enumerate(plan, start=1):
                minutes = 9 * 60 + number * 4
                series_time = f"{minutes // 60:02d}{minutes % 60:02d}00"
                spec = spec_for(kind, series_number=number, series_time=series_time)
                spec.description = f"{spec.description}_{folder}"
                path = Path(subject) / ses / folder
                written = write_series(
                    root / "dicom" / path, spec, patient_id=subject, study_uid=study_uid,
                    study_date=date, seed=s_index * 100 + number, file_prefix=kind + "_",
                )  # fmt: skip
                rows.append(
                    {
                        "subject_code": subject,
                        "session_id": ses,
                        "study_date": f"{date[:4]}-{date[4:6]}-{date[6:]}",
                        "series_instance_uid": written.series_instance_uid,
                        "series_number": number,
                        "series_time": series_time,
                        "series_description": spec.description,
                        "dicom_path": str(path),
                        **columns,
                    }
                )
    tsv.write(root / "series_table.tsv", rows, COLUMNS)
    sexes, ages, groups = ["F", "M", "F", "M"], [34, 41, 29, 52], ["patient", "control", "patient", "control"]
    tsv.write(
        root / "subjects.tsv",
        [{"subject_code": s, "sex": sexes[i % 4], "age": ages[i % 4], "group": groups[i % 4]} for i, s in enumerate(subjects)],
        ["subject_code", "sex", "age", "group"],
    )
    ids = [{"subject_code": s, "id_type": "STUDY_ID", "other_identifier": f"STUDY-{100 + i}"} for i, s in enumerate(subjects[:-1])]
    tsv.write(root / "subject_identifiers.tsv", ids, ["subject_code", "id_type", "other_identifier"])
    return root / "series_table.tsv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--subjects", type=int, default=3)
    args = parser.parse_args(argv)
    table = make_demo(args.out_dir, args.subjects)
    print(f"demo written: {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
