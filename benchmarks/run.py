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
CACHE = HERE / "cache"  # cohorts and work folders (git-ignored); --cache elsewhere
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(HERE))

from bidsport import __version__  # noqa: E402
from bidsport.dcm2niix import find_dcm2niix, version  # noqa: E402
from bidsport.synthdicom import make_uid, spec_for, write_series  # noqa: E402

COLUMNS = ["subject_code", "session_id", "series_instance_uid", "series_number", "series_time", "dicom_path", "directory_type", "base", "task", "phase_encoding_direction"]


# Realistic sizes (issue 14): ~75 MB of DICOM a subject, one slice per file.
REALISTIC = {
    "t1w": dict(slices=176, rows=256, cols=256),  # 176 files, 23 MB
    "bold": dict(volumes=60, slices=36, rows=64, cols=64),  # 2,160 files (mosaic-free), 20 MB
    "dwi": dict(b_values=(0,) + (1000,) * 30, slices=44, rows=112, cols=112),  # 1,364 files, 34 MB
}
SMALL = {  # --quick: the same series as small images
    "t1w": dict(slices=48, rows=64, cols=64),
    "bold": dict(volumes=10, slices=12),
    "dwi": dict(b_values=(0,) + (1000,) * 6, slices=12),
}
TINY = {  # the 10,000-series scale run measures bookkeeping, not conversion
    "t1w": dict(slices=2, rows=16, cols=16),
    "bold": dict(volumes=2, slices=2, rows=16, cols=16),
    "dwi": dict(b_values=(0, 1000), slices=2, rows=16, cols=16),
}


def make_cohort(root: Path, subjects: int, shapes: dict, tiny: bool = False) -> Path:
    """T1w, BOLD and DWI per subject with the given ``shapes``; ``series_table.tsv``
    lists every subject. Cached: written once per root (the table marks completion).

    The first subject is written with pydicom (~10 ms a file); the others are byte
    copies of it with every ``2.25.`` UID, the patient ID and name replaced by values
    of the same length (so no element length changes): 20 realistic subjects in a
    minute instead of a quarter of an hour. Pixel data is the same for every subject,
    which does not matter to a converter's speed.
    """
    table = root / "series_table.tsv"
    if table.exists():
        return table
    series = [
        ("t1w", {"directory_type": "anat", "base": "T1w"}),
        ("bold", {"directory_type": "func", "task": "rest"}),
        ("dwi", {"directory_type": "dwi", "base": "DWI", "phase_encoding_direction": "AP"}),
    ]
    codes = [f"B{s:05d}" if tiny else f"B{s:03d}" for s in range(subjects)]
    first = codes[0]
    study = make_uid("bench", first)
    template = []
    for n, (kind, cols) in enumerate(series, start=1):
        spec = spec_for(kind, series_number=n, series_time=f"1{n}0000", **shapes[kind])
        folder = Path(first) / f"{n:02d}_{kind}"
        written = write_series(root / "dicom" / folder, spec, patient_id=first, study_uid=study, study_date="20240101", seed=n)
        template.append((n, kind, spec, cols, folder, written))
    rows = []
    for code in codes:
        for n, _kind, spec, cols, folder, written in template:
            uid = written.series_instance_uid if code == first else _clone_uid(written.series_instance_uid, code)
            if code != first:
                _clone_series(written.files, root / "dicom" / code / folder.name, first, code)
            rows.append({"subject_code": code, "session_id": "M00", "series_instance_uid": uid,
                         "series_number": n, "series_time": spec.series_time, "dicom_path": f"{code}/{folder.name}", **cols})  # fmt: skip
    _write_table(root / "series_table.tsv.partial", rows).rename(table)  # the table marks a complete cohort
    return table


def _clone_uid(uid: str, code: str) -> str:
    """A UID of the same length as ``uid``, unique per (uid, subject code)."""
    import hashlib

    digits = uid[len("2.25.") :]
    h = int(hashlib.sha256(f"{code}/{uid}".encode()).hexdigest(), 16)
    new = str(h)[: len(digits)].rjust(len(digits), "1")
    return "2.25." + ("1" + new[1:] if new[0] == "0" else new)


def _clone_series(files: list[Path], folder: Path, old_code: str, new_code: str) -> None:
    import re

    folder.mkdir(parents=True, exist_ok=True)
    assert len(old_code) == len(new_code)
    for src in files:
        data = src.read_bytes()
        pixels = data.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data: patch the header only
        head = re.sub(rb"2\.25\.[0-9]+", lambda m: _clone_uid(m.group().decode(), new_code).encode(), data[:pixels])
        head = head.replace(old_code.encode(), new_code.encode())
        (folder / src.name).write_bytes(head + data[pixels:])


def _write_table(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def subset_table(table: Path, subjects: int) -> Path:
    """The cohort's table restricted to its first ``subjects`` subjects (same DICOM root)."""
    rows = list(csv.DictReader(open(table), delimiter="\t"))
    keep = sorted({r["subject_code"] for r in rows})[:subjects]
    target = table.with_name(f"series_table_{subjects}.tsv")
    partial = _write_table(target.with_name(f".{target.name}.{os.getpid()}"), [r for r in rows if r["subject_code"] in keep])
    return partial.replace(target)  # atomic: another benchmark process may be reading it


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
    from bidsport.dicom_copy import reflink as _reflink

    folder.mkdir(parents=True, exist_ok=True)
    src, dst = folder / "reflink-probe.src", folder / "reflink-probe.dst"
    src.write_bytes(b"x" * 4096)
    try:
        return _reflink(src, dst)
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def bench_scale(work: Path, n_series: int, cores: int) -> dict:
    """A real export of ``n_series`` tiny series (2-slice 16×16 images), then the
    no-op re-run and a dry run over the finished dataset; peak memory of Snakemake."""
    cohort = CACHE / f"tiny-{n_series}"
    cached = (cohort / "series_table.tsv").exists()
    t0 = time.perf_counter()
    table = make_cohort(cohort, -(-n_series // 3), TINY, tiny=True)
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


LOADS: list[float] = []  # the 1-minute load average, sampled before every timed run


def measure(fn, *args, **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process it started and waited for).

    CPU time is the steadier figure on a shared machine: other engineers' work
    stretches wall time but not the CPU our processes use."""
    import resource

    LOADS.append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    fn(*args, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def folders_of(cohort: Path, table: Path, subjects: set[str] | None = None) -> list[str]:
    rows = csv.DictReader(open(table), delimiter="\t")
    return [str(cohort / "dicom" / r["dicom_path"]) for r in rows if subjects is None or r["subject_code"] in subjects]


def plain_dcm2niix(folders: list[str], out: Path, cores: int) -> None:
    """The baseline: ``xargs -P cores`` over the series folders, the same dcm2niix
    binary and flags as bidsport (BIDS sidecar, anonymised, gzip)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    dcm2niix = find_dcm2niix()
    script = f'd="{out}/$(basename $(dirname "$1"))_$(basename "$1")"; mkdir -p "$d"; exec "{dcm2niix}" -b y -ba y -z y -f series -o "$d" "$1"'
    _xargs(folders, script, cores)


def run_bidsport(run: Path, table: Path, cohort: Path, cores: int, **settings) -> None:
    """A full ``snakemake`` run from a clean output folder (the table is copied into
    ``run`` so that a re-run can add a subject by editing it, as a user would)."""
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copyfile(table, run / "series_table.tsv")
    cfg = write_cfg(run, series_table=str(run / "series_table.tsv"), dicom_root=str(cohort / "dicom"), output_dir="out", **settings)
    timed(snakemake_cmd(run, cfg, cores))


def rerun_bidsport(run: Path, table: Path, cores: int) -> None:
    """The same export again after the table gained rows (new subject)."""
    shutil.copyfile(table, run / "series_table.tsv")
    timed(snakemake_cmd(run, run / "config.yaml", cores))


def _phases(state: Path, started: float, total: float) -> dict:
    """When each stage of a run ended (seconds from the start), from file times."""
    done = sorted(p.stat().st_mtime for p in (state / "done").glob("*.json"))
    return {
        "planning checkpoint done": (state / "logs" / "plan.log").stat().st_mtime - started,
        "first series done": done[0] - started,
        "last series done": done[-1] - started,
        "dataset files done": (state / "logs" / "dataset_files.log").stat().st_mtime - started,
        "snakemake exited": total,
    }


def _job_seconds(state: Path) -> list[float]:
    import json

    return [json.loads(p.read_text())["seconds"] for p in (state / "done").glob("*.json")]


def bench_nifti(cohort: Path, full_table: Path, work: Path, sizes: list[int], cores: int, repeats: int,
                tools: list[str], qc: bool, on_repeat=None) -> dict:  # fmt: skip
    """NIfTI exports at each cohort size (smallest first), alternating bidsport, plain
    dcm2niix, the other tools and (smallest size only) the QC-on export in a rotating
    order; at the largest size each bidsport run is followed by adding one subject
    and running again. ``on_repeat(partial)`` is called after every repeat, so that a
    run stopped early still leaves its figures."""
    import other_tools

    for name in tools:
        other_tools.ensure_tool(name)  # install (not timed)
    biggest = max(sizes)
    res = {n: {k: [] for k in ("plain", "bidsport", "qc", "rerun", "plain_added", *tools)} for n in sizes}
    partial = {"results": res, "extra": {}, "checks": {}}
    extra, checks = partial["extra"], partial["checks"]
    for n in sorted(sizes):
        table = subset_table(full_table, n)
        for i in range(repeats):
            kinds = ["plain", "bidsport", *tools] + (["qc"] if qc and n == min(sizes) else [])
            kinds = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # alternate who goes first
            for kind in kinds:
                if kind == "plain":
                    out = work / "plain"
                    res[n]["plain"].append(measure(plain_dcm2niix, folders_of(cohort, table), out, cores))
                    shutil.rmtree(out, ignore_errors=True)
                elif kind in ("bidsport", "qc"):
                    run = work / f"{kind}-{n}"
                    started = time.time()
                    res[n][kind].append(measure(run_bidsport, run, table, cohort, cores, **({"qc_snapshots": True} if kind == "qc" else {})))
                    if kind == "bidsport":
                        extra[n] = {"phases": _phases(run / "out" / ".bidsport", started, res[n][kind][-1][0]),
                                    "jobs": _job_seconds(run / "out" / ".bidsport")}  # fmt: skip
                        if n == biggest and len(full_table.read_text().splitlines()) - 1 > 3 * n:
                            bigger = subset_table(full_table, n + 1)
                            res[n]["rerun"].append(measure(rerun_bidsport, run, bigger, cores))
                            added = {r["subject_code"] for r in csv.DictReader(open(bigger), delimiter="\t")} - {
                                r["subject_code"] for r in csv.DictReader(open(table), delimiter="\t")}  # fmt: skip
                            res[n]["plain_added"].append(measure(plain_dcm2niix, folders_of(cohort, bigger, added), work / "plain1", cores))
                            shutil.rmtree(work / "plain1", ignore_errors=True)
                else:
                    out = work / f"{kind}-{n}" / "bids"
                    runner = other_tools.run_dcm2bids if kind == "dcm2bids" else other_tools.run_heudiconv
                    res[n][kind].append(measure(runner, cohort, table, out, cores))
            if n == min(sizes) and i == repeats - 1:  # validator verdicts and names, smallest size
                ours = work / f"bidsport-{n}" / "out"
                checks["bidsport"] = {"errors": other_tools.validator_errors(ours), "names": other_tools.names(ours)}
                for name in tools:
                    out = work / f"{name}-{n}" / "bids"
                    checks[name] = {"errors": other_tools.validator_errors(out), "same_names": _same_names(checks["bidsport"]["names"], other_tools.names(out)),
                                    "issues": other_tools.summarize_issues(other_tools.validator_issues(out) or []),
                                    "version": other_tools.tool_version(name)}  # fmt: skip
            if on_repeat:
                on_repeat(partial)
    return partial


def _same_names(ours: set[str], theirs: set[str]) -> bool:
    """Same files for the same subjects (bidsport's last output also holds the
    subject that the re-run added; the other tools ran without it)."""
    subjects = {t.split("/")[0] for t in theirs}
    return bool(theirs) and theirs == {n for n in ours if n.split("/")[0] in subjects}


def bench_dicom(cohort: Path, table: Path, work: Path, cores: int, repeats: int, methods: list[str]) -> dict:
    """DICOM exports (copy, hardlink) against ``cp -r`` of the same DICOM tree,
    alternating; every output is removed after its run (not timed)."""
    res = {k: [] for k in ("cp", *methods)}
    subjects = sorted({str(cohort / "dicom" / r["subject_code"]) for r in csv.DictReader(open(table), delimiter="\t")})
    for i in range(repeats):
        kinds = ["cp", *methods]
        kinds = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
        for kind in kinds:
            if kind == "cp":  # the same subjects' folders as the table's
                dest = work / "cp"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                res["cp"].append(measure(timed, ["cp", "-r", *subjects, str(dest)]))
                shutil.rmtree(dest, ignore_errors=True)
            else:
                run = work / f"dcm-{kind}"
                res[kind].append(measure(run_bidsport, run, table, cohort, cores, output_mode="dcm", dcm_copy_method=kind))
                shutil.rmtree(run, ignore_errors=True)
    return res


def _med(values: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(v[which] for v in values)


def _fmt(values: list[tuple[float, float]]) -> str:
    walls = [v[0] for v in values]
    return f"{statistics.median(walls):.2f} s ({min(walls):.2f}–{max(walls):.2f})"


def _verdict(wall: float, cpu: float, limit: float, strict: bool = False) -> str:
    """Met only if both the wall-time and the CPU-time ratio meet the target: on a
    loaded machine either one alone can flatter (a baseline slowed by someone
    else's job; a run whose idle core someone else used)."""
    ok = (lambda r: r < limit) if strict else (lambda r: r <= limit)
    if ok(wall) and ok(cpu):
        return "met"
    if ok(wall):
        return f"missed (wall {wall:.2f}× meets it, CPU {cpu:.2f}× does not)"
    if ok(cpu):
        return f"missed (CPU {cpu:.2f}× meets it, wall {wall:.2f}× does not)"
    return "missed"


def _row(figure: str, ours: list, base: list, target: str, limit: float | None, strict: bool = False) -> str:
    if not ours or not base:
        return f"| {figure} | not measured | not measured | — | — | {target} | not measured (run stopped early) |"
    ratio = _med(ours) / _med(base)
    cpu = _med(ours, 1) / _med(base, 1) if _med(base, 1) > 0 else float("nan")
    verdict = "—" if limit is None else _verdict(ratio, cpu, limit, strict)
    return (f"| {figure} | {_fmt(ours)} | {_fmt(base)} | **{ratio:.2f}×** | {cpu:.2f}× "
            f"({_med(ours, 1):.1f} / {_med(base, 1):.1f} s) | {target} | {verdict} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small images, 1 repeat, small tables (smoke test)")
    parser.add_argument("--subjects", type=int, nargs="*", help="cohort sizes (default 8 20; --quick: 2)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tools", default=None, help="comma list of dcm2bids,heudiconv ('none' to skip; default dcm2bids)")
    parser.add_argument("--no-qc", action="store_true", help="skip the QC-on exports")
    parser.add_argument("--no-dicom", action="store_true", help="skip the DICOM copy/hardlink exports")
    parser.add_argument("--only-dicom", action="store_true", help="only the DICOM copy/hardlink exports (own work folder)")
    parser.add_argument("--planning", default=None, help="comma list of table sizes for the planning figures ('none' skips)")
    parser.add_argument("--scale", type=int, default=None, help="series in a real export at scale (default: 0 = skipped)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for cohorts and work (default benchmarks/cache)")
    parser.add_argument("--output", type=Path, default=None, help="results file (default benchmarks/results.md; --quick: none)")
    args = parser.parse_args()
    global CACHE
    CACHE = (args.cache or CACHE).absolute()
    sizes = args.subjects or ([2] if args.quick else [8, 20])
    repeats = args.repeats or (1 if args.quick else 3)
    tools = [t for t in (args.tools or "dcm2bids").split(",") if t and t != "none"]
    planning_sizes = [int(x) for x in (args.planning or ("100" if args.quick else "100,1000,10000")).split(",") if x not in ("", "none")]
    scale = args.scale or 0
    shapes, label = (SMALL, "small") if args.quick else (REALISTIC, "real")
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    # One cohort for every size (smaller sizes use its first subjects), with one more
    # subject than the largest size: the re-run adds it.
    cohort_subjects = max(max(sizes) + 1, 3 if args.quick else 21)
    cache = CACHE / f"cohort-{label}-{cohort_subjects}"
    t0 = time.perf_counter()
    cached = (cache / "series_table.tsv").exists()
    full_table = make_cohort(cache, cohort_subjects, shapes)
    made = "cached from an earlier run" if cached else f"generated in {time.perf_counter() - t0:.0f} s"
    # A smoke test (or a DICOM-only run) may run beside a full run: own work folders.
    work = CACHE / ("work-quick" if args.quick else "work-dicom" if args.only_dicom else "work")

    def progress(name: str, value) -> None:  # a long run shows its figures as they come
        print(f"[bench] {time.strftime('%H:%M:%S')} {name}: {value}", file=sys.stderr, flush=True)

    output = args.output or (None if args.quick else HERE / "results.md")
    state = {"nifti": None, "dicom": None, "floor": None, "planning": {}, "scaled": None}

    def write(final: bool = False) -> str:
        reflink = "supported" if reflink_supported(work) else "not supported on this filesystem (a reflink export is a copy here; not timed separately)"
        text = render(args, sizes, repeats, tools, state["nifti"], state["dicom"], state["floor"], state["planning"], state["scaled"],
                      reflink, made, started_at, load_start, os.getloadavg(), full_table, final)  # fmt: skip
        if output:
            output.write_text(text)
        return text

    def nifti_progress(partial):
        state["nifti"] = partial
        progress("nifti", partial["results"])
        write()

    if not args.only_dicom:
        bench_nifti(cache, full_table, work, sizes, args.cores, repeats, tools, not args.no_qc, on_repeat=nifti_progress)
    if not args.no_dicom:
        state["dicom"] = bench_dicom(cache, subset_table(full_table, max(sizes)), work, args.cores, repeats, ["copy", "hardlink"])
        progress("dicom", state["dicom"])
        write()
    if args.only_dicom:
        print(write(final=True))
        return 0
    state["floor"] = bench_snakemake_floor(work, args.cores, jobs=12 if args.quick else 60)
    progress("floor", state["floor"])
    state["planning"] = bench_planning(cache, full_table, work, planning_sizes) if planning_sizes else {}
    progress("planning", state["planning"])
    state["scaled"] = bench_scale(work, scale, args.cores) if scale else None
    progress("scale", state["scaled"])
    print(write(final=True))
    return 0


def render(args, sizes, repeats, tools, nifti, dicom, floor, planning, scaled, reflink, made, started_at, load_start, load_end, full_table, final=True) -> str:
    med = statistics.median
    nifti = nifti or {"results": {n: {} for n in sizes}, "extra": {}, "checks": {}}
    res, extra, checks = nifti["results"], nifti["extra"], nifti["checks"]
    res = {n: {k: list(res.get(n, {}).get(k, [])) for k in ("plain", "bidsport", "qc", "rerun", "plain_added", *tools)} for n in sizes}
    biggest = max(sizes)
    subject_dirs = [d for d in (full_table.parent / "dicom").iterdir() if d.is_dir()]
    dicom_mb = sum(p.stat().st_size for p in subject_dirs[0].rglob("*") if p.is_file()) / 2**20
    lines = [
        "# bidsport benchmark results",
        "",
        f"Run {started_at}. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB (its load during the run: below); "
        f"Python {platform.python_version()}; bidsport {__version__}; dcm2niix {version(find_dcm2niix())} (`{find_dcm2niix()}`).",
        ("" if final else "**PARTIAL: this file was written while the run was still going; figures not yet measured say so.**\n\n")
        + f"Machine load (1-min load average): {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; sampled before "
        f"each of the {len(LOADS)} timed runs: median {med(LOADS):.2f} (min {min(LOADS):.2f}, max {max(LOADS):.2f}). "
        f"Anything above {args.cores:.0f} means the runs competed for the cores: the CPU-time column is the steadier figure.",
        "",
        "Cohort: per subject a T1w (176 files of 256×256), a BOLD (60 volumes × 36 slices = 2,160 files of 64×64, one "
        "slice a file, no mosaic) and a DWI (31 volumes × 44 slices = 1,364 files of 112×112): 3,700 files, "
        f"{dicom_mb:.0f} MiB of DICOM a subject" if not args.quick else "Cohort (--quick): small images of the same three series.",
        f"({made}; subjects after the first are byte copies with their own UIDs). Cohort sizes {', '.join(map(str, sizes))} "
        f"subjects; {repeats} repeat(s) of every figure, the runs of one repeat in a rotating order (who goes first "
        f"alternates); --cores {args.cores}; median (min–max) of wall time. Every bidsport figure is a full `snakemake` "
        "run from a clean output folder (start-up, planning checkpoint, series jobs, dataset files) with the default "
        "config (qc_snapshots off). CPU = user+system seconds of every process the run started, median.",
        "",
        "| figure | bidsport | baseline | ratio (wall) | ratio (CPU: bidsport / baseline) | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        r = res[n]
        lines.append(_row(f"NIfTI export, {n} subjects ({3 * n} series) vs `xargs -P {args.cores} dcm2niix`", r["bidsport"], r["plain"], "≤ 1.15×", 1.15))
    for n in sizes:
        for name in tools:
            ver = checks.get(name, {}).get("version", "")
            lines.append(_row(f"NIfTI export, {n} subjects vs {name} {ver} (one process per subject, {args.cores} at once)",
                              res[n]["bidsport"], res[n][name], "< 1×", 1.0, strict=True))  # fmt: skip
    if dicom:
        lines.append(_row(f"DICOM export (copy), {biggest} subjects vs `cp -r`", dicom["copy"], dicom["cp"], "≤ 1.3×", 1.3))
        lines.append(_row(f"DICOM export (hardlink), {biggest} subjects vs `cp -r`", dicom["hardlink"], dicom["cp"], "< 0.5×", 0.5, strict=True))
    for n in sizes:
        if res[n]["qc"] or (n == min(sizes) and not args.no_qc):
            lines.append(_row(f"NIfTI export with visual QC (`qc_snapshots: true`), {n} subjects vs without", res[n]["qc"], res[n]["bidsport"], "≤ 1.25×", 1.25))
    rerun, one = res[biggest]["rerun"], res[biggest]["plain_added"]
    if not rerun:
        lines += ["", f"Adding a subject to a {biggest}-subject export: not measured (run stopped early)."]
    else:
        limit = _med(one) + 2
        lines += [
            "",
            f"Adding a subject: after each {biggest}-subject export above, its table gained one more subject "
            "and the same command ran again (only that subject's 3 series, the planning checkpoint and the dataset step run).",
            "",
            "| figure | wall | target | |",
            "|---|---|---|---|",
            f"| re-run after adding one subject to a {biggest}-subject export | {_fmt(rerun)} | ≤ plain conversion of that subject + 2 s = {limit:.2f} s | {'met' if _med(rerun) <= limit else 'missed'} |",
            f"| plain conversion of that subject (`xargs -P {args.cores} dcm2niix`, its 3 folders) | {_fmt(one)} | — | — |",
        ]
    if checks:
        lines += ["", "| tool | BIDS validator errors | same file names as bidsport | first issues |", "|---|---|---|---|"]
        lines.append(f"| bidsport | {checks['bidsport']['errors']} | — | — |")
        for name in tools:
            c = checks[name]
            lines.append(f"| {name} {c['version']} | {c['errors']} | {'yes' if c['same_names'] else 'NO'} | {c['issues'] or '—'} |")
    for n in sizes:
        if n not in extra:
            continue
        jobs = sorted(extra[n]["jobs"])
        lines += [
            "",
            f"Where a NIfTI export's time goes ({n} subjects, last bidsport run; seconds from the start, from file times; "
            f"the {len(jobs)} series jobs took {sum(jobs):.1f} s in all, median {med(jobs):.2f} s, longest {jobs[-1]:.2f} s):",
            "",
            "| stage | ended at |",
            "|---|---|",
            *[f"| {name} | {t:.2f} s |" for name, t in extra[n]["phases"].items()],
        ]
    lines += [
        "",
        "The floor of any one-DAG-node-per-series design: not measured (run stopped early)." if not floor else
        f"The floor of any one-DAG-node-per-series design: Snakemake alone running {floor['jobs']} jobs of "
        f"`sleep {floor['seconds']}` on {args.cores} cores (this workflow's profile) takes {floor['wall']:.2f} s against "
        f"{floor['ideal']:.2f} s of sleeping; start-up (`snakemake --version`) {floor['startup']:.2f} s; that leaves "
        f"**{floor['per_job_ms']:.0f} ms per job** per core of scheduling and bookkeeping, before the job does anything.",
        "",
        f"Reflink: {reflink}.",
    ]
    if planning:
        lines += ["", "| series in table | planning (checkpoint job) | dry run of every series job | peak memory of the dry run |", "|---|---|---|---|"]
        lines += [f"| {n:,} | {v['plan']:.1f} s | {v['dry']:.1f} s | {v['dry_mb']:.0f} MiB |" for n, v in planning.items()]
    if scaled:
        n = scaled["series"]
        lines += [
            "",
            f"Scale: a real NIfTI export of {n:,} tiny series (2-slice 16×16 images; cohort {scaled['generate']}), then the "
            "same command again (no-op), then a dry run. Peak memory is the Snakemake process's own.",
            "",
            "| run | wall time | per series | peak memory | target |",
            "|---|---|---|---|---|",
            f"| first export ({scaled['images']:,} images) | {scaled['export']:.1f} s | {1000 * scaled['export'] / n:.0f} ms | {scaled['export_mb']:.0f} MiB | — |",
            f"| no-op re-run | {scaled['noop']:.1f} s | {1000 * scaled['noop'] / n:.1f} ms | {scaled['noop_mb']:.0f} MiB | ≤ 60 s: {'met' if scaled['noop'] <= 60 else 'missed'} |",
            f"| dry run (`-n`) | {scaled['dry']:.1f} s | {1000 * scaled['dry'] / n:.1f} ms | {scaled['dry_mb']:.0f} MiB | ≤ 60 s: {'met' if scaled['dry'] <= 60 else 'missed'} |",
        ]
    skipped = []
    if "heudiconv" not in tools:
        skipped.append("heudiconv (`--tools dcm2bids,heudiconv`; about 2 minutes a run at 20 realistic subjects)")
    if not scaled:
        skipped.append("the real export of 9,999 tiny series with its no-op re-run (`--scale 10000`; about 12 minutes)")
    if not dicom:
        skipped.append("the DICOM exports (`--no-dicom` was given)")
    if skipped:
        lines += ["", "Not measured in this run (to keep it within its time on a shared machine): " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
