#!/usr/bin/env python3
"""Regenerate the sample series table (and, with --outputs, expected_outputs.json).

Everything that comes from the scanner (SeriesInstanceUID, SeriesNumber, times,
StudyDate, SeriesDescription) is read from the DICOM headers with pydicom; only the
classification below (``SERIES``) is hand-written, one entry per series folder/file,
as a human expert would classify it.

    python make_table.py                      # writes series_table.tsv next to this file
    python make_table.py --outputs            # also runs dcm2niix per series and writes
                                              # expected_outputs.json (needs nibabel)
    python make_table.py --root DIR --dcm2niix BIN

dicom_path values are relative to the dicom_root (default: $BIDSPORT_SAMPLES, else
../shared/dicom-samples beside the repository, as in tests/helpers.py).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pydicom

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = os.environ.get("BIDSPORT_SAMPLES") or str(HERE.parents[3] / "shared" / "dicom-samples")

COLUMNS = [
    "subject_code", "session_id", "study_date", "series_instance_uid", "stack_index",
    "series_number", "series_time", "series_description", "dicom_path", "directory_type",
    "base", "modifier_csv", "construct_csv", "technique", "provenance", "post_contrast",
    "task", "phase_encoding_direction",
]  # fmt: skip

# Classification per series (dicom_path relative to the root). Keys of each entry are
# series-table columns; "ref" (not a column) names the upstream reference output stem
# in <repo>/Ref/ (dcm2niix postfixes are appended to it), None if there is none.
XA = "dcm_qa_xa30/In/"
SERIES: dict[str, dict] = {
    # --- XA30: Siemens XA30 enhanced, one study; session from study_date only
    XA + "5_anat-T1w_acq-tfl": dict(subject_code="XA30", directory_type="anat", base="T1w", technique="MPRAGE", ref="5_anat-T1w_acq-tfl"),
    XA + "7_func-bold_task-fa_run-1": dict(subject_code="XA30", directory_type="func", technique="EPI", task="fa", ref="7_func-bold_task-fa_run-1"),
    XA + "8_gre_field_mapping": dict(subject_code="XA30", directory_type="fmap", construct_csv="Magnitude", technique="GRE", ref="8_gre_field_mapping"),
    XA + "9_gre_field_mapping": dict(subject_code="XA30", directory_type="fmap", construct_csv="Phase", technique="GRE", ref="9_gre_field_mapping"),
    XA + "17_DWI_dir80_AP": dict(subject_code="XA30", directory_type="dwi", base="DWI", technique="EPI", phase_encoding_direction="AP", ref="17_DWI_dir80_AP"),
    XA + "19_DWI_dir80_AP": dict(subject_code="XA30", directory_type="dwi", base="DWI", construct_csv="ADC", technique="EPI", provenance="DTIRecon", phase_encoding_direction="AP", ref="19_DWI_dir80_AP"),
    XA + "21_DWI_dir80_AP": dict(subject_code="XA30", directory_type="dwi", base="DWI", construct_csv="FA", technique="EPI", provenance="DTIRecon", phase_encoding_direction="AP", ref="21_DWI_dir80_AP"),
    XA + "25_asl_2d_tra": dict(subject_code="XA30", directory_type="perf", base="PWI", technique="ASL", ref="25_asl_2d_tra"),
    # --- ENH: two enhanced multi-frame series (different scanners and dates) -> two
    #     date sessions; the Philips one is given as a single FILE, not a folder
    "dcm_qa_enh/In/Siemens/XA10": dict(subject_code="ENH", directory_type="func", technique="EPI", task="rest", ref="Siemens_REST1_w_SMS_PF7-8_6"),
    "dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm": dict(subject_code="ENH", directory_type="fmap", construct_csv="B0map", technique="GRE", ref="Philips_WIP_B0_NS_801"),
    # --- NIH: Siemens Skyra mosaic GRE-EPI, reversed-PE pair (2 volumes each)
    "dcm_qa_nih/In/20180918Si/mr_0003": dict(subject_code="NIH", directory_type="func", technique="EPI", task="rest", phase_encoding_direction="AP", ref="EPI_PE=AP_3"),
    "dcm_qa_nih/In/20180918Si/mr_0004": dict(subject_code="NIH", directory_type="func", technique="EPI", task="rest", phase_encoding_direction="PA", ref="EPI_PE=PA_4"),
    # --- QA-Prisma: Siemens Prisma SE-EPI b0 pair + a scout from another Prisma study;
    #     session_id given explicitly (the two StudyDates differ)
    "dcm_qa/In/TotalReadoutTime/PF_PAT_POS_PFOV_PEres_INTERP_test2/NOPF_NOPAT_NOPOS_PERES100_ES0P59_BW2222_AP_0008": dict(subject_code="QA-Prisma", session_id="pilot", directory_type="fmap", technique="SE-EPI", phase_encoding_direction="AP", ref="noPF_noPAT_noPOS_PEres100_ES0p59_BW2222_AP_8"),
    "dcm_qa/In/TotalReadoutTime/PF_PAT_POS_PFOV_PEres_INTERP_test2/NOPF_NOPAT_NOPOS_PERES100_ES0P59_BW2222_PA_0009": dict(subject_code="QA-Prisma", session_id="pilot", directory_type="fmap", technique="SE-EPI", phase_encoding_direction="PA", ref="noPF_noPAT_noPOS_PEres100_ES0p59_BW2222_PA_9"),
    "heudiconv/heudiconv/tests/data/01-anat-scout": dict(subject_code="QA-Prisma", session_id="pilot", directory_type="localizer", technique="GRE", provenance="Localizer", ref=None),
    # --- GE-1486: GE SIGNA Premier exam (localizer + fMRI); explicit session_id
    "dcm_qa_table/In/GE/Exam1486_Laser794mm/01_3_Plane_Localizer_FF": dict(subject_code="GE-1486", session_id="baseline", directory_type="localizer", technique="GRE", provenance="Localizer", ref=None),
    "dcm_qa_table/In/GE/Exam1486_Laser794mm/02_Ax_fMRI_FF_I11.1_S15.9": dict(subject_code="GE-1486", session_id="baseline", directory_type="func", technique="EPI", task="rest", ref="GE_1486_2_Ax_fMRI"),
    # --- Ph_1301: Philips dual-echo GRE, magnitude + phase in ONE series
    "dcm_qa_table/In/Ph/1301_Dual-echo_iso": dict(subject_code="Ph_1301", session_id="baseline", directory_type="fmap", construct_csv="Magnitude,Phase", technique="GRE", ref="Ph_727468159_1301_Dual-echo_iso"),
    # --- single-series subjects
    "dcm_qa_ge/In/01_Ax_DWI_TENSOR_R2": dict(subject_code="GE-Pioneer", directory_type="dwi", base="DWI", technique="EPI", ref="Ax_DWI_TENSOR_R2_1"),
    # StudyDate is the anonymisation placeholder 19700101 -> session_id given explicitly
    "dcm_qa_fmap/In/GE/6_CV_Neuro": dict(subject_code="GE-Architect", session_id="M00", directory_type="fmap", construct_csv="B0map", technique="GRE", ref="GE_6_CV_Neuro_HH_Adv"),
    "dcm_qa_philips/In/Magdeburg_2014/fmri": dict(subject_code="Magdeburg", directory_type="func", technique="EPI", task="rest", ref="EPI_asc_CLEAR_201"),
    "dcm_qa_cs_dl/In/Philips/501_T1W_FFE_Sno_CS4": dict(subject_code="CS-DL", directory_type="anat", base="T1w", technique="GRE", ref="Ph_501_T1W_FFE_Sno_CS4"),
    # --- UIH: StudyDate is '***' (anonymised) -> no study_date, no session_id -> no session level
    "dcm_qa_uih/In/DTI_134434/dti_tra_dir16_AP_SaveBySlc__140028": dict(subject_code="UIH", directory_type="dwi", base="DWI", technique="EPI", phase_encoding_direction="AP", ref="dti_tra_dir16_AP_9_134431"),
    "dcm_qa_uih/In/DTI_134434/dti_tra_dir16_PA_SaveBySlc__135612": dict(subject_code="UIH", directory_type="dwi", base="DWI", technique="EPI", phase_encoding_direction="PA", ref="dti_tra_dir16_PA_6_134431"),
}  # fmt: skip


def dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def read_series(path: Path) -> dict:
    """Header values of the single series stored at ``path`` (folder or file)."""
    found: dict[str, pydicom.Dataset] = {}
    for f in dicom_files(path):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            uid = str(ds.SeriesInstanceUID)
        except Exception:  # README-Series.txt, notes.txt, .csv, .xlsx ...
            continue
        found.setdefault(uid, ds)
    if len(found) != 1:
        raise SystemExit(f"{path}: expected exactly one series, found {len(found)}")
    (uid, ds), = found.items()
    return {"uid": uid, "ds": ds}


def fmt_date(value) -> str:
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date().isoformat()
    except ValueError:
        return ""  # e.g. UIH '***'


def series_time(ds) -> str:
    for key in ("SeriesTime", "AcquisitionTime", "ContentTime"):
        text = str(ds.get(key, "") or "").strip()
        if text:
            return text
    return ""


def build_rows(root: Path) -> list[dict]:
    rows = []
    for rel, cls in SERIES.items():
        info = read_series(root / rel)
        ds = info["ds"]
        row = {c: "" for c in COLUMNS}
        row.update({k: v for k, v in cls.items() if k in COLUMNS})
        row.update(
            series_instance_uid=info["uid"],
            stack_index="0",
            series_number=str(ds.get("SeriesNumber", "") or ""),
            series_time=series_time(ds),
            study_date=fmt_date(ds.get("StudyDate")),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            dicom_path=rel,
        )
        rows.append(row)
    keys = [(r["series_instance_uid"], r["stack_index"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (series_instance_uid, stack_index)"
    rows.sort(key=lambda r: (r["subject_code"], r["session_id"], r["study_date"], r["series_time"]))
    return rows


def write_tsv(rows: list[dict], out: Path) -> None:
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


# ------------------------------------------------------------------ expected outputs

def crc(uid: str) -> int:
    return zlib.crc32(uid.encode())


def run_dcm2niix(binary: str, src: Path, ids: list[str] | None, outdir: Path, extra=()) -> list[str]:
    cmd = [binary, "-b", "y", "-z", "y", "-f", "out", "-o", str(outdir), *extra]
    for i in ids or []:
        cmd += ["-n", str(i)]
    subprocess.run(cmd + [str(src)], check=True, capture_output=True)
    return sorted(os.listdir(outdir))


def listed_ids(binary: str, src: Path, uid: str, scratch: Path) -> list[str]:
    """The ids dcm2niix itself gives the outputs of this series (``-n -1`` = list only).

    dcm2niix lists one line per output stack, ``<TAB><id><TAB><stem>``; the id is the
    CRC for echo 1 and ``CRC.<k>`` for other echoes (``.2`` Siemens/Philips classic,
    ``.1`` for echo 2 of the Philips enhanced B0 map), so ``-n CRC`` alone misses them.
    """
    p = subprocess.run([binary, "-n", "-1", "-o", str(scratch), str(src)], capture_output=True, text=True)
    ids = []
    for line in p.stdout.splitlines():
        if line.startswith("\t"):
            value = line.split("\t")[1]
            if int(float(value)) == crc(uid) and value not in ids:
                ids.append(value)
    return ids


def postfix_of(name: str) -> tuple[str, str]:
    base, ext = (name[:-7], ".nii.gz") if name.endswith(".nii.gz") else os.path.splitext(name)
    return base[len("out"):], ext


def compare_ref(ours: Path, ref: Path) -> dict:
    import nibabel as nib
    import numpy as np

    a, b = nib.load(str(ours)), nib.load(str(ref))
    res = {"ref": str(ref), "shape_match": a.shape == b.shape}
    res["affine_match"] = bool(np.allclose(a.affine, b.affine, atol=1e-4))
    if res["shape_match"]:
        da, db = np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)
        res["data_match"] = bool(da.dtype == db.dtype and np.array_equal(da, db))
    else:
        res["data_match"] = False
    return res


def expected_outputs(root: Path, rows: list[dict], binary: str) -> dict:
    import nibabel as nib

    result = {}
    work = Path(tempfile.mkdtemp(prefix="bidsport-samples-"))

    def fresh(tag: str) -> Path:
        d = work / f"{len(result):02d}_{tag}"
        d.mkdir()
        return d

    try:
        for row in rows:
            uid, rel = row["series_instance_uid"], row["dicom_path"]
            src = root / rel
            repo = rel.split("/")[0]
            # Reference: the leaf path holds this series only (checked by read_series),
            # so a plain conversion without -n gives every output of the series.
            full = fresh("full")
            # (-s y for a single-file dicom_path: without it dcm2niix converts the file's
            # whole folder, i.e. also any other series stored next to it)
            files = run_dcm2niix(binary, src, None, full, extra=("-s", "y") if src.is_file() else ())
            # 1) -n CRC on the leaf path (the documented trick)
            files_n = run_dcm2niix(binary, src, [crc(uid)], fresh("n"))
            # 2) the same from the repository's whole In/ folder (all its series)
            wide_src = root / repo / "In" if (root / repo / "In").is_dir() else src
            files_n_wide = run_dcm2niix(binary, wide_src, [crc(uid)], fresh("nwide"))
            # 3) every id dcm2niix lists for this series (-n -1), from the wide folder
            ids = listed_ids(binary, wide_src, uid, work)
            files_ids_wide = run_dcm2niix(binary, wide_src, ids, fresh("idswide"))
            # 4) a text file listing the series' DICOM files, with -s y
            lst = work / f"{len(result):02d}_files.txt"
            lst.write_text("".join(f"{f}\n" for f in dicom_files(src) if _is_series_file(f, uid)))
            files_list = run_dcm2niix(binary, lst, None, fresh("list"), extra=("-s", "y"))
            outputs = []
            for f in files:
                post, ext = postfix_of(f)
                if ext != ".nii.gz":
                    continue
                img = nib.load(str(full / f))
                entry = {
                    "postfix": post,
                    "nifti": f,
                    "shape": list(img.shape),
                    "json": f"out{post}.json" in files,
                    "bval": f"out{post}.bval" in files,
                    "bvec": f"out{post}.bvec" in files,
                }
                cls = SERIES[rel]
                if cls.get("ref"):
                    for ref in (root / repo / "Ref" / f"{cls['ref']}{post}.nii",
                                root / repo / "Ref" / f"{cls['ref']}{post}.nii.gz"):
                        if ref.exists():
                            entry["ref_check"] = compare_ref(full / f, ref)
                            entry["ref_check"]["ref"] = str(ref.relative_to(root))
                            break
                    else:
                        entry["ref_check"] = None  # reference NIfTI not available upstream
                    for kind in ("bval", "bvec"):
                        ref = root / repo / "Ref" / f"{cls['ref']}{post}.{kind}"
                        if entry[kind] and ref.exists():
                            entry[f"ref_{kind}_match"] = _same_numbers(full / f"out{post}.{kind}", ref)
                else:
                    entry["ref_check"] = None  # no reference output at all (localizer)
                outputs.append(entry)
            result[uid] = {
                "dicom_path": rel,
                "crc": crc(uid),
                "dcm2niix_ids": ids,
                "files": files,
                "postfixes": [o["postfix"] for o in outputs],
                "outputs": outputs,
                "n_crc_complete": files_n == files,
                "n_crc_files": files_n,
                "n_crc_from_repo_In_same_as_leaf": files_n_wide == files_n,
                "n_all_ids_from_repo_In_complete": files_ids_wide == files,
                "s_filelist_complete": files_list == files,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _same_numbers(a: Path, b: Path) -> bool:
    import numpy as np

    x, y = np.loadtxt(a, ndmin=2), np.loadtxt(b, ndmin=2)
    return bool(x.shape == y.shape and np.allclose(x, y, atol=1e-4))


def _is_series_file(path: Path, uid: str) -> bool:
    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID) == uid
    except Exception:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=DEFAULT_ROOT, help="dicom_root (default %(default)s)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: this folder)")
    ap.add_argument("--outputs", action="store_true", help="also write expected_outputs.json")
    ap.add_argument("--dcm2niix", default=shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix"))
    args = ap.parse_args(argv)
    root, out = Path(args.root), Path(args.out)
    rows = build_rows(root)
    write_tsv(rows, out / "series_table.tsv")
    print(f"wrote {out / 'series_table.tsv'} ({len(rows)} rows)")
    if args.outputs:
        data = expected_outputs(root, rows, args.dcm2niix)
        with open(out / "expected_outputs.json", "w") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        print(f"wrote {out / 'expected_outputs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
