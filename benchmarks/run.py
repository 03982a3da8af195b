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
sys.path.insert(0, str(HERE))

from bidsport import __version__  # noqa: E402
from bidsport.dcm2niix import find_dcm2niix, version  # noqa: E402
from bidsport.synthdicom import make_uid, spec_for, write_series  # noqa: E402

COLUMNS = ["subject_code", "session_id", "series_instance_uid", "series_number", "series_time", "dicom_path", "directory_type", "base", "task", "phase_encoding_direction"]


def make_cohort(root: Path, subjects: int, size: int, tiny: bool = False) -> Path:
    """T1w (176 slices), BOLD (40 volumes × 24 slices), DWI (31 volumes) per subject.

    ``tiny``: the same three series as 2-slice 16×16 images (the 10,000-series scale
    run measures bookkeeping, not conversion). Cached: written once per root.
    """
    table = root / "series_table.tsv"
    if table.exists():
        return table
    rows = []
    for s in range(subjects):
        code = f"B{s:05d}" if tiny else f"B{s:03d}"
        study = make_uid("bench", code)
        if tiny:
            shapes = [dict(slices=2, rows=16, cols=16), dict(volumes=2, slices=2, rows=16, cols=16),
                      dict(b_values=(0, 1000), slices=2, rows=16, cols=16)]  # fmt: skip
        else:
            shapes = [dict(slices=176, rows=size, cols=size), dict(volumes=40, slices=24), dict(b_values=(0,) + (1000,) * 30, slices=24)]
        series = [
            ("t1w", shapes[0], {"directory_type": "anat", "base": "T1w"}),
            ("bold", shapes[1], {"directory_type": "func", "task": "rest"}),
            ("dwi", shapes[2], {"directory_type": "dwi", "base": "DWI", "phase_encoding_direction": "AP"}),
        ]
        for n, (kind, overrides, cols) in enumerate(series, start=1):
            spec = spec_for(kind, series_number=n, series_time=f"1{n}0000", **overrides)
            folder = Path(code) / f"{n:02d}_{kind}"
            written = write_series(root / "dicom" / folder, spec, patient_id=code, study_uid=study, study_date="20240101", seed=s * 10 + n)
            rows.append({"subject_code": code, "session_id": "M00", "series_instance_uid": written.series_instance_uid,
                         "series_number": n, "series_time": spec.series_time, "dicom_path": str(folder), **cols})  # fmt: skip
    partial = root / "series_table.tsv.partial"
    with open(partial, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    partial.rename(table)  # the table marks a complete cohort
    return table


def timed(cmd: list[str], **kw) -> float:
    return timed_rss(cmd, **kw)[0]


def timed_rss(cmd: list[str], **kw) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of the command's own process."""
    import tempfile

    with tempfile.TemporaryFile() as err:  # a pipe could fill up and stall the run
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise subprocess.CalledProcessError(code, cmd, stderr=tail)
    return elapsed, usage.ru_maxrss / 1024


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
        t0 = time.time()
        ours.append(timed(snakemake_cmd(run, cfg, cores)))
        phases = _phases(run / "out" / ".bidsport", t0, ours[-1])
    return {"ours": ours, "base": base, "phases": phases}


def _phases(state: Path, t0: float, total: float) -> dict:
    """When each stage of a run ended (seconds from the start), from file times."""
    done = sorted(p.stat().st_mtime for p in (state / "done").glob("*.json"))
    return {
        "planning checkpoint done": (state / "logs" / "plan.log").stat().st_mtime - t0,
        "first series done": done[0] - t0,
        "last series done": done[-1] - t0,
        "dataset files done": (state / "logs" / "dataset_files.log").stat().st_mtime - t0,
        "snakemake exited": total,
    }


def bench_snakemake_floor(work: Path, cores: int, jobs: int = 60, seconds: float = 0.25) -> dict:
    """Snakemake alone: ``jobs`` independent jobs of ``sleep`` on ``cores`` cores, with
    this workflow's profile settings: what any one-node-per-series design pays."""
    run = work / "floor"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    (run / "Snakefile").write_text(
        f"rule all:\n    input: expand('out/{{i}}.txt', i=range({jobs}))\n\n"
        f"rule job:\n    output: 'out/{{i}}.txt'\n    log: 'logs/{{i}}.log'\n"
        f"    shell: 'sleep {seconds}; echo {{wildcards.i}} > {{output}} 2> {{log}}'\n\n"
        # the same early exit as bidsport's onsuccess (workflow_support.cancel_pending_timers)
        "onsuccess:\n    import threading\n    [t.cancel() for t in threading.enumerate() if isinstance(t, threading.Timer)]\n"
    )
    cmd = [sys.executable, "-m", "snakemake", "-s", str(run / "Snakefile"), "-d", str(run), "--cores", str(cores),
           "--workflow-profile", str(REPO / "profiles" / "default")]  # fmt: skip
    wall = timed(cmd)
    ideal = jobs * seconds / cores
    start = timed([sys.executable, "-m", "snakemake", "--version"])
    return {"jobs": jobs, "seconds": seconds, "wall": wall, "ideal": ideal, "startup": start,
            "per_job_ms": 1000 * (wall - ideal - start) * cores / jobs}  # fmt: skip


def _xargs(folders: list[str], script: str, cores: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P", str(cores), "-n", "1", "sh", "-c", script, "_"], input="\n".join(folders).encode(),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def reflink_supported(folder: Path) -> bool:
    """Whether this filesystem can clone files (FICLONE), probed in ``folder``."""
    from bidsport.export_series import _reflink

    folder.mkdir(parents=True, exist_ok=True)
    src, dst = folder / "reflink-probe.src", folder / "reflink-probe.dst"
    src.write_bytes(b"x" * 4096)
    try:
        return _reflink(src, dst)
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def bench_dicom(cohort: Path, table: Path, work: Path, cores: int, repeats: int) -> dict:
    results = {"cp": [], "copy": [], "hardlink": [], "reflink": []}
    for i in range(repeats):
        dest = work / f"cp{i}"
        shutil.rmtree(dest, ignore_errors=True)
        results["cp"].append(timed(["cp", "-r", str(cohort / "dicom"), str(dest)]))
        for method in ("copy", "hardlink", "reflink"):
            run = work / f"dcm-{method}{i}"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            cfg = write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out", output_mode="dcm", dcm_copy_method=method)
            results[method].append(timed(snakemake_cmd(run, cfg, cores)))
    return results


def bench_qc(cohort: Path, table: Path, work: Path, cores: int) -> float:
    """The same NIfTI export with the visual QC (qc_snapshots: true)."""
    run = work / "bidsport-qc"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cfg = write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out", qc_snapshots=True)
    return timed(snakemake_cmd(run, cfg, cores))


def bench_tools(cohort: Path, table: Path, work: Path, cores: int, repeats: int, bidsport_out: Path) -> dict:
    """heudiconv and dcm2bids on the same cohort, one process per subject, ``cores`` at
    once: wall time, same names as bidsport, validator errors."""
    import other_tools

    results = {"bidsport": {"errors": other_tools.validator_errors(bidsport_out), "names": other_tools.names(bidsport_out)}}
    expected = results["bidsport"]["names"]
    for name, runner in (("heudiconv", other_tools.run_heudiconv), ("dcm2bids", other_tools.run_dcm2bids)):
        t0 = time.perf_counter()
        other_tools.ensure_tool(name)
        install_s = time.perf_counter() - t0
        times = []
        for i in range(repeats):
            out = work / f"{name}{i}" / "bids"
            times.append(runner(cohort, table, out, cores))
        found = other_tools.names(out)
        results[name] = {"times": times, "install": install_s, "version": other_tools.tool_version(name),
                         "errors": other_tools.validator_errors(out), "same_names": found == expected,
                         "issues": other_tools.summarize_issues(other_tools.validator_issues(out) or [])}  # fmt: skip
    return results


def bench_scale(work: Path, n_series: int, cores: int) -> dict:
    """A real export of ``n_series`` tiny series (2-slice 16×16 images), then the
    no-op re-run and a dry run over the finished dataset; peak memory of Snakemake."""
    cohort = HERE / "cache" / f"tiny-{n_series}"
    cached = (cohort / "series_table.tsv").exists()
    t0 = time.perf_counter()
    table = make_cohort(cohort, -(-n_series // 3), 16, tiny=True)
    generate = "cached" if cached else f"made in {time.perf_counter() - t0:.0f} s"
    n_series = sum(1 for _ in open(table)) - 1
    run = work / f"scale{n_series}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    cfg = write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out")
    export_s, export_mb = timed_rss(snakemake_cmd(run, cfg, cores))
    noop_s, noop_mb = timed_rss(snakemake_cmd(run, cfg, cores))
    dry_s, dry_mb = timed_rss(snakemake_cmd(run, cfg, cores, "-n"))
    exported = sum(1 for _ in (run / "out").glob("sub-*/ses-*/*/*.nii.gz"))
    return {"series": n_series, "generate": generate, "export": export_s, "export_mb": export_mb, "noop": noop_s,
            "noop_mb": noop_mb, "dry": dry_s, "dry_mb": dry_mb, "images": exported}  # fmt: skip


def bench_planning(cohort: Path, table: Path, work: Path, sizes: list[int]) -> dict:
    """Planning (the checkpoint job) and a dry run for N rows pointing at real folders."""
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
        dry_s, dry_mb = timed_rss(snakemake_cmd(run, cfg, 1, "-n"))
        out[n] = {"plan": plan_s, "dry": dry_s, "dry_mb": dry_mb}
    return out


def _ratio_row(figure: str, ours: list[float], base: list[float], target: str, met: bool) -> str:
    ratio = statistics.median(ours) / statistics.median(base)
    return f"| {figure} | {median_range(ours)} | {median_range(base)} | **{ratio:.2f}×** | {target} | {'met' if met else 'missed'} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 subjects, 1 repeat, small tables (smoke test)")
    parser.add_argument("--subjects", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tools", default=None, help="comma list of heudiconv,dcm2bids ('none' to skip)")
    parser.add_argument("--scale", type=int, default=None, help="series in the real export at scale (0 skips)")
    args = parser.parse_args()
    subjects = args.subjects or (2 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    size = 64 if args.quick else 128
    sizes = [30, 100] if args.quick else [100, 1000, 10000]
    tools = (args.tools or ("dcm2bids" if args.quick else "heudiconv,dcm2bids")).split(",")
    tools = [t for t in tools if t and t != "none"]
    scale = args.scale if args.scale is not None else (30 if args.quick else 10000)
    load = os.getloadavg()[0]
    cache = HERE / "cache" / f"cohort-{subjects}-{size}"
    t0 = time.perf_counter()
    cached = (cache / "series_table.tsv").exists()
    table = make_cohort(cache, subjects, size)
    gen_s = time.perf_counter() - t0
    made = "cached from an earlier run" if cached else f"generated in {gen_s:.0f} s"
    work = HERE / "cache" / "work"
    def progress(name: str, value) -> None:  # a long run shows its figures as they come
        print(f"[bench] {name}: {value}", file=sys.stderr, flush=True)

    nifti = bench_nifti(cache, table, work, args.cores, repeats)
    progress("nifti", nifti)
    qc_s = bench_qc(cache, table, work, args.cores)
    progress("qc", qc_s)
    dicom = bench_dicom(cache, table, work, args.cores, repeats)
    progress("dicom", dicom)
    compared = bench_tools(cache, table, work, args.cores, repeats, work / f"bidsport{repeats - 1}" / "out") if tools else {}
    progress("tools", {k: v.get("times") for k, v in compared.items()})
    floor = bench_snakemake_floor(work, args.cores)
    progress("floor", floor)
    planning = bench_planning(cache, table, work, sizes)
    progress("planning", planning)
    scaled = bench_scale(work, scale, args.cores) if scale else None
    progress("scale", scaled)
    med = statistics.median
    reflink = "supported" if reflink_supported(work) else "not supported on this filesystem: falls back to a copy"
    lines = [
        "# bidsport benchmark results",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; Python {platform.python_version()}; "
        f"bidsport {__version__}; dcm2niix {version(find_dcm2niix())} (`{find_dcm2niix()}`). Load average at start: {load:.2f}.",
        f"Cohort: {subjects} subjects × (T1w 176×{size}×{size}, BOLD 40×24 slices, DWI 31×24 slices) = {3 * subjects} series "
        f"({made}). {repeats} repeat(s), --cores {args.cores}; median (min–max). "
        "Every bidsport figure is a full `snakemake` run from a clean output folder (start-up, planning "
        "checkpoint, series jobs, dataset files), with the default config (qc_snapshots off).",
        "",
        "| figure | bidsport | baseline | ratio (bidsport / baseline) | target | |",
        "|---|---|---|---|---|---|",
        _ratio_row(f"NIfTI export vs `xargs -P {args.cores} dcm2niix`", nifti["ours"], nifti["base"], "≤ 1.15×",
                   med(nifti["ours"]) <= 1.15 * med(nifti["base"])),  # fmt: skip
        _ratio_row("DICOM export (copy) vs `cp -r`", dicom["copy"], dicom["cp"], "≤ 1.1×", med(dicom["copy"]) <= 1.1 * med(dicom["cp"])),
        _ratio_row("DICOM export (hardlink) vs `cp -r`", dicom["hardlink"], dicom["cp"], "≤ 0.1× (10× faster)",
                   med(dicom["hardlink"]) <= 0.1 * med(dicom["cp"])),  # fmt: skip
        _ratio_row(f"DICOM export (reflink: {reflink}) vs `cp -r`", dicom["reflink"], dicom["cp"], "—", True).replace("| met |", "| — |"),
        f"| NIfTI export with visual QC (`qc_snapshots: true`) vs without | {qc_s:.2f} s | {med(nifti['ours']):.2f} s | "
        f"**{qc_s / med(nifti['ours']):.2f}×** | — | — |",
    ]
    for name in tools:
        r = compared[name]
        lines.append(_ratio_row(f"NIfTI export vs {name} {r['version']} (one process per subject, {args.cores} at once)",
                                nifti["ours"], r["times"], "< 1× (faster)", med(nifti["ours"]) < med(r["times"])))  # fmt: skip
    if compared:
        lines += ["", "| tool | BIDS validator errors | same file names as bidsport | first issues | install (not timed) |", "|---|---|---|---|---|"]
        lines.append(f"| bidsport | {compared['bidsport']['errors']} | — | — | — |")
        for name in tools:
            r = compared[name]
            install = "cached" if r["install"] < 1 else f"{r['install']:.0f} s"
            lines.append(f"| {name} {r['version']} | {r['errors']} | {'yes' if r['same_names'] else 'NO'} | {r['issues'] or '—'} | {install} |")
    lines += [
        "",
        "Where a NIfTI export's time goes (last bidsport run above; seconds from the start, from file times):",
        "",
        "| stage | ended at |",
        "|---|---|",
        *[f"| {name} | {t:.2f} s |" for name, t in nifti["phases"].items()],
        "",
        f"The floor of any one-DAG-node-per-series design: Snakemake alone running {floor['jobs']} jobs of "
        f"`sleep {floor['seconds']}` on {args.cores} cores (this workflow's profile) takes {floor['wall']:.2f} s against "
        f"{floor['ideal']:.2f} s of sleeping; start-up (`snakemake --version`) {floor['startup']:.2f} s; that leaves "
        f"**{floor['per_job_ms']:.0f} ms per job** per core of scheduling and bookkeeping, before the job does anything.",
    ]
    lines += [
        "",
        "| series in table | planning (checkpoint job) | dry run of every series job | peak memory of the dry run |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n:,} | {v['plan']:.1f} s | {v['dry']:.1f} s | {v['dry_mb']:.0f} MiB |" for n, v in planning.items()]
    if scaled:
        n = scaled["series"]
        lines += [
            "",
            f"Scale: a real NIfTI export of {n:,} tiny series (2-slice 16×16 images, {n // 3:,} subjects; cohort "
            f"{scaled['generate']}), then the same command again (no-op), then a dry run. Peak memory is the Snakemake "
            "process's own (its jobs are separate processes).",
            "",
            "| run | wall time | per series | peak memory | target |",
            "|---|---|---|---|---|",
            f"| first export ({scaled['images']:,} images) | {scaled['export']:.1f} s | {1000 * scaled['export'] / n:.0f} ms | {scaled['export_mb']:.0f} MiB | — |",
            f"| no-op re-run | {scaled['noop']:.1f} s | {1000 * scaled['noop'] / n:.1f} ms | {scaled['noop_mb']:.0f} MiB | ≤ 60 s: {'met' if scaled['noop'] <= 60 else 'missed'} |",
            f"| dry run (`-n`) | {scaled['dry']:.1f} s | {1000 * scaled['dry'] / n:.1f} ms | {scaled['dry_mb']:.0f} MiB | ≤ 60 s: {'met' if scaled['dry'] <= 60 else 'missed'} |",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        (HERE / "results.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
