"""bidsport benchmarks: every figure is a ratio against a baseline run in the same
invocation, on the same files, with the same parallelism.

    python benchmarks/run.py            # 20 subjects, 3 repeats (several minutes)
    python benchmarks/run.py --quick    # 2 subjects, 1 repeat (smoke test)

Writes benchmarks/results.md and prints the same table. The synthetic cohort is
cached in benchmarks/cache/ (git-ignored). Not part of the timed test suite.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "scripts"))

from bidsport import __version__  # noqa: E402
from bidsport.dcm2niix import find_dcm2niix, version  # noqa: E402
from bidsport.synthdicom import make_uid, spec_for, write_series  # noqa: E402

COLUMNS = ["subject_code", "session_id", "series_instance_uid", "series_number", "series_time", "dicom_path", "directory_type", "base", "task", "phase_encoding_direction"]


def make_cohort(root: Path, subjects: int, size: int) -> Path:
    """T1w (176 slices), BOLD (40 volumes × 24 slices), DWI (31 volumes) per subject."""
    rows = []
    for s in range(subjects):
        code = f"B{s:03d}"
        study = make_uid("bench", code)
        series = [
            ("t1w", dict(slices=176, rows=size, cols=size), {"directory_type": "anat", "base": "T1w"}),
            ("bold", dict(volumes=40, slices=24), {"directory_type": "func", "task": "rest"}),
            ("dwi", dict(b_values=(0,) + (1000,) * 30, slices=24), {"directory_type": "dwi", "base": "DWI", "phase_encoding_direction": "AP"}),
        ]
        for n, (kind, overrides, cols) in enumerate(series, start=1):
            spec = spec_for(kind, series_number=n, series_time=f"1{n}0000", **overrides)
            folder = Path(code) / f"{n:02d}_{kind}"
            written = write_series(root / "dicom" / folder, spec, patient_id=code, study_uid=study, study_date="20240101", seed=s * 10 + n)
            rows.append({"subject_code": code, "session_id": "M00", "series_instance_uid": written.series_instance_uid,
                         "series_number": n, "series_time": spec.series_time, "dicom_path": str(folder), **cols})  # fmt: skip
    table = root / "series_table.tsv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return table


def timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def snakemake_cmd(work: Path, cfg: Path, cores: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile", str(cfg), "--cores", str(cores), *extra]


def write_cfg(work: Path, **values) -> Path:
    import yaml

    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def bench_nifti(cohort: Path, table: Path, work: Path, cores: int, repeats: int) -> dict:
    dcm2niix = find_dcm2niix()
    folders = [str(cohort / "dicom" / r["dicom_path"]) for r in csv.DictReader(open(table), delimiter="\t")]
    ours, base = [], []
    for i in range(repeats):
        out = work / f"loop{i}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        # Baseline: a plain loop of dcm2niix over the same series, same parallelism.
        script = f'd="{out}/$(basename $(dirname "$1"))_$(basename "$1")"; mkdir -p "$d"; exec "{dcm2niix}" -b y -ba y -z y -f series -o "$d" "$1"'
        base.append(_xargs(folders, script, cores))
        run = work / f"bidsport{i}"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        cfg = write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out")
        ours.append(timed(snakemake_cmd(run, cfg, cores)))
    return {"ours": ours, "base": base}


def _xargs(folders: list[str], script: str, cores: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P", str(cores), "-n", "1", "sh", "-c", script, "_"], input="\n".join(folders).encode(),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def bench_dicom(cohort: Path, table: Path, work: Path, cores: int, repeats: int) -> dict:
    results = {"cp": [], "copy": [], "hardlink": []}
    for i in range(repeats):
        dest = work / f"cp{i}"
        shutil.rmtree(dest, ignore_errors=True)
        results["cp"].append(timed(["cp", "-r", str(cohort / "dicom"), str(dest)]))
        for method in ("copy", "hardlink"):
            run = work / f"dcm-{method}{i}"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            cfg = write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out", output_mode="dcm", dcm_copy_method=method)
            results[method].append(timed(snakemake_cmd(run, cfg, cores)))
    return results


def bench_planning(cohort: Path, table: Path, work: Path, sizes: list[int]) -> dict:
    """Dry run (plan + DAG) for N rows pointing at real folders, and a no-op re-run."""
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    out = {}
    for n in sizes:
        run = work / f"plan{n}"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        big = run / "series.tsv"
        with open(big, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            for i in range(n):
                r = dict(rows[i % len(rows)])
                r["subject_code"] = f"S{i // 3:05d}"
                r["series_instance_uid"] = make_uid("plan", i)
                writer.writerow(r)
        cfg = write_cfg(run, series_table=str(big), dicom_root=str(cohort / "dicom"), output_dir="out")
        # The checkpoint itself (planning) runs once; then the dry run shows every series job.
        plan_s = timed(snakemake_cmd(run, cfg, 1, "--until", "plan"))
        dry_s = timed(snakemake_cmd(run, cfg, 1, "-n"))
        out[n] = {"plan": plan_s, "dry": dry_s}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--subjects", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    subjects = args.subjects or (2 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    size = 64 if args.quick else 128
    sizes = [30, 100] if args.quick else [100, 1000, 10000]
    cache = HERE / "cache" / f"cohort-{subjects}-{size}"
    t0 = time.perf_counter()
    table = make_cohort(cache, subjects, size)
    gen_s = time.perf_counter() - t0
    work = HERE / "cache" / "work"
    nifti = bench_nifti(cache, table, work, args.cores, repeats)
    dicom = bench_dicom(cache, table, work, args.cores, repeats)
    planning = bench_planning(cache, table, work, sizes)
    med = statistics.median
    lines = [
        "# bidsport benchmark results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; Python {platform.python_version()}; "
        f"bidsport {__version__}; dcm2niix {version(find_dcm2niix())}. Load average at start: {os.getloadavg()[0]:.2f}.",
        f"Cohort: {subjects} subjects × (T1w 176×{size}×{size}, BOLD 40×24 slices, DWI 31×24 slices) = {3 * subjects} series "
        f"(generated/cached in {gen_s:.0f} s). {repeats} repeat(s), --cores {args.cores}; median (min–max).",
        "",
        "| figure | bidsport | baseline | ratio (bidsport / baseline) |",
        "|---|---|---|---|",
        f"| NIfTI export vs `xargs -P {args.cores} dcm2niix` | {median_range(nifti['ours'])} | {median_range(nifti['base'])} | **{med(nifti['ours']) / med(nifti['base']):.2f}×** |",
        f"| DICOM export (copy) vs `cp -r` | {median_range(dicom['copy'])} | {median_range(dicom['cp'])} | **{med(dicom['copy']) / med(dicom['cp']):.2f}×** |",
        f"| DICOM export (hardlink) vs `cp -r` | {median_range(dicom['hardlink'])} | {median_range(dicom['cp'])} | **{med(dicom['hardlink']) / med(dicom['cp']):.2f}×** |",
        "",
        "| series in table | planning (checkpoint job) | dry run of every series job |",
        "|---|---|---|",
    ]
    lines += [f"| {n:,} | {v['plan']:.1f} s | {v['dry']:.1f} s |" for n, v in planning.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        (HERE / "results.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
