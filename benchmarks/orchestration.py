"""What bidsport's own process costs, apart from dcm2niix and the disk (issue 23).

    python benchmarks/orchestration.py                 # both parts, written to results.md
    python benchmarks/orchestration.py --only wide     # emulated 16-way NIfTI export
    python benchmarks/orchestration.py --only copy     # DICOM copy export vs cp -r
    python benchmarks/orchestration.py --quick         # small and fast (smoke test)

``wide``: the workstation command is ``snakemake --cores 16``; this machine may have
2 cores. A dcm2niix wrapper that sleeps S seconds before converting lets 16
conversions wait side by side, so only the orchestration's CPU shows: 960 tiny
series, ``--cores 16``, ``convert_workers: 16``, against ``xargs -P 16`` of the same
wrapper over the same folders, alternating. Reported: wall ratio and the CPU seconds
of the Snakemake process itself (its threads, not its children: read from
/proc/PID/stat while it runs) per series. ``--profile`` also samples that process
with py-spy (all threads) and prints where its time goes.

``copy``: a ``dcm`` export (DICOM copies) of a realistic cohort against ``cp -r`` of
the same subject folders, alternating, each followed by ``sync`` (not timed), sources
in the page cache; user and system CPU of every process each one started.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (cohort generation, shared helpers)

CLK = os.sysconf("SC_CLK_TCK")


def own_cpu(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of process ``pid`` itself, all threads, no children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) / CLK, int(fields[12]) / CLK  # utime, stime


def run_watched(cmd: list[str], profile: Path | None = None) -> tuple[float, float, float]:
    """(wall seconds, own user and system CPU seconds of the command's process) — sampled every 50 ms;
    the last sample before exit is kept. With ``profile``, py-spy records it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    spy = None
    if profile is not None:
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--threads",
                                "--idle", "--rate", "200", "--format", "raw", "--output", str(profile), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    last = (0.0, 0.0)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        cpu = own_cpu(proc.pid)
        if cpu is not None:
            last = cpu
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    reader.join()
    if spy is not None:
        spy.wait(timeout=60)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, stderr=b"".join(err).decode(errors="replace")[-3000:])
    return wall, *last


def sleepy_dcm2niix(folder: Path, seconds: float) -> Path:
    """dcm2niix that waits ``seconds`` first (not for ``-v``, the version probe)."""
    real = bench.find_dcm2niix()
    path = folder / "sleepy-dcm2niix"
    path.write_text(f'#!/bin/sh\n[ "$1" = "-v" ] || sleep {seconds}\nexec "{real}" "$@"\n')
    path.chmod(0o755)
    return path


def xargs_wrapper(folders: list[str], out: Path, wrapper: Path, cores: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = f'd="{out}/$(basename $(dirname "$1"))_$(basename "$1")"; mkdir -p "$d"; exec "{wrapper}" -b y -ba y -z y -f series -o "$d" "$1"'
    return bench._xargs(folders, script, cores)


def bench_wide(work: Path, n_series: int, seconds: float, cores: int, repeats: int, profile: bool, extra: list[str] = ()) -> dict:
    cohort = HERE / "cache" / f"tiny-{n_series}"
    table = bench.make_cohort(cohort, -(-n_series // 3), bench.TINY, tiny=True)
    n = sum(1 for _ in open(table)) - 1
    folders = bench.folders_of(cohort, table)
    wrapper = sleepy_dcm2niix(work, seconds)
    res = {"ours": [], "xargs": [], "series": n, "seconds": seconds, "cores": cores}
    for i in range(repeats):
        for kind in (["ours", "xargs"] if i % 2 == 0 else ["xargs", "ours"]):
            if kind == "xargs":
                res["xargs"].append(xargs_wrapper(folders, work / "xargs-out", wrapper, cores))
                continue
            # A new folder each run (ext4 scans past inodes freed in the last 30 s:
            # writing where the last run was just deleted adds system CPU).
            for old in work.glob("wide-*"):
                shutil.rmtree(old, ignore_errors=True)
            run = work / f"wide-{i}-{time.monotonic_ns()}"
            run.mkdir(parents=True)
            cfg = bench.write_cfg(run, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out",
                                  convert_workers=cores, dcm2niix_path=str(wrapper))  # fmt: skip
            spy = work / "wide-profile.txt" if profile and i == repeats - 1 else None
            res["ours"].append(run_watched(bench.snakemake_cmd(run, cfg, cores, *extra), spy))
            exported = sum(1 for _ in (run / "out").glob("sub-*/ses-*/*/*.nii.gz"))
            assert exported >= n, f"{exported} images for {n} series"
    if profile:
        res["profile"] = summarize_profile(work / "wide-profile.txt")
    return res


def summarize_profile(raw: Path, top: int = 25) -> list[tuple[str, float]]:
    """Share of the non-idle samples of the Snakemake process per innermost frame of
    interest (py-spy raw format: ``frame;frame;... count``)."""
    totals: dict[str, int] = {}
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in ("wait (threading", "select (", "sleep", "acquire", "poll (", "_wait_for_tstate_lock")):
            continue
        busy += int(count)
        # attribute to the outermost snakemake/bidsport frame below the thread's entry
        key = next((f for f in frames if "bidsport/" in f), None) or next((f for f in reversed(frames) if "snakemake" in f), frames[-1])
        totals[key] = totals.get(key, 0) + int(count)
    return [(k, v / busy) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:top]] if busy else []


def bench_copy(work: Path, subjects: int, repeats: int, cores: int, quick: bool = False) -> dict:
    cohort = HERE / "cache" / ("small" if quick else "realistic")
    full = bench.make_cohort(cohort, max(subjects, 2 if quick else 8), bench.SMALL if quick else bench.REALISTIC)
    table = bench.subset_table(full, subjects)
    roots = sorted({str(cohort / "dicom" / r.split("\t")[0]) for r in list(open(table))[1:]})
    files = sum(len(fs) for root in roots for _, _, fs in os.walk(root))
    size = sum(os.path.getsize(os.path.join(d, f)) for root in roots for d, _, fs in os.walk(root) for f in fs)
    for root in roots:  # sources in the page cache
        for d, _, fs in os.walk(root):
            for f in fs:
                with open(os.path.join(d, f), "rb") as fh:
                    fh.read()
    res = {"cp": [], "ours": [], "files": files, "mb": size / 1e6, "subjects": subjects, "cores": cores}
    for i in range(repeats):
        for kind in (["cp", "ours"] if i % 2 == 0 else ["ours", "cp"]):
            # A new folder each run: ext4 skips inodes freed in the last 30 s and
            # scans for others (perf: recently_deleted), so writing where the last
            # run's files were just deleted costs either side seconds of system CPU.
            dest = work / f"copy-{kind}-{i}-{time.monotonic_ns()}"
            dest.mkdir(parents=True)
            subprocess.run(["sync"], check=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            if kind == "cp":
                subprocess.run(["cp", "-r", *roots, str(dest)], check=True)
            else:
                cfg = bench.write_cfg(dest, series_table=str(table), dicom_root=str(cohort / "dicom"), output_dir="out", output_mode="dcm")
                bench.timed(bench.snakemake_cmd(dest, cfg, cores))
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(["sync"], check=True)
            res[kind].append((wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
            shutil.rmtree(dest, ignore_errors=True)
    return res


def render_wide(r: dict) -> str:
    ours_wall = statistics.median(w for w, _, _ in r["ours"])
    base = statistics.median(r["xargs"])
    cpu = statistics.median(u + s for _, u, s in r["ours"])
    user = statistics.median(u for _, u, _ in r["ours"])
    system = statistics.median(s for _, _, s in r["ours"])
    per = 1000 * cpu / r["series"]
    lines = [
        f"### Emulated `--cores {r['cores']}`: {r['series']} tiny series, dcm2niix wrapper sleeping {r['seconds']:g} s",
        "",
        "| run | wall (median of %d) | Snakemake process CPU |" % len(r["ours"]),
        "|---|---|---|",
        f"| bidsport `--cores {r['cores']}`, convert_workers {r['cores']} | {ours_wall:.1f} s "
        f"({min(w for w, _, _ in r['ours']):.1f}–{max(w for w, _, _ in r['ours']):.1f}) | {cpu:.1f} s (user {user:.1f}, "
        f"system {system:.1f}) = **{per:.1f} ms a series** |",
        f"| `xargs -P {r['cores']}` of the same wrapper | {base:.1f} s ({min(r['xargs']):.1f}–{max(r['xargs']):.1f}) | — |",
        "",
        f"Ratio **{ours_wall / base:.2f}×** xargs (target ≤ 1.08×); {per:.1f} ms of Snakemake-process CPU a series (target ≤ 20 ms).",
    ]
    if r.get("profile"):
        lines += ["", "Where the Snakemake process's busy samples go (py-spy, all threads, outermost bidsport frame, else innermost Snakemake frame):", "",
                  "| share | frame |", "|---|---|"]  # fmt: skip
        lines += [f"| {share * 100:.1f} % | `{frame}` |" for frame, share in r["profile"][:15]]
    return "\n".join(lines)


def render_copy(r: dict) -> str:
    def med(kind, i):
        return statistics.median(v[i] for v in r[kind])

    lines = [
        f"### DICOM copies: {r['subjects']} realistic subjects, {r['files']:,} files, {r['mb']:.0f} MB (sources cached, `sync` after each run)",
        "",
        f"| run | wall (median of {len(r['cp'])}) | user CPU | system CPU |",
        "|---|---|---|---|",
    ]
    for kind, label in (("ours", f"bidsport `output_mode: dcm` (copy), `--cores {r['cores']}`"), ("cp", "`cp -r` of the subject folders")):
        lines.append(f"| {label} | {med(kind, 0):.2f} s | {med(kind, 1):.2f} s | {med(kind, 2):.2f} s |")
    lines += ["", f"System CPU **{med('ours', 2) / med('cp', 2):.2f}×** `cp -r`'s (target ≤ 1.3×); "
              f"user CPU {med('ours', 1):.2f} s vs {med('cp', 1):.2f} s (Snakemake start-up, planning and the dataset step included)."]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["wide", "copy"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--series", type=int, default=960)
    p.add_argument("--sleep", type=float, default=1.0)
    p.add_argument("--cores", type=int, default=16, help="emulated parallelism of the wide run")
    p.add_argument("--subjects", type=int, default=8, help="realistic subjects of the copy run")
    p.add_argument("--copy-cores", type=int, default=1, help="--cores of the copy export (cp -r is one process)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="py-spy the last wide run")
    p.add_argument("--work", type=Path, default=HERE / "cache" / "orchestration-work")
    p.add_argument("--extra", default="", help="extra snakemake arguments for the wide run (experiments)")
    p.add_argument("--output", type=Path, default=None, help="append the results here (default: print only)")
    args = p.parse_args()
    if args.quick:
        args.series, args.sleep, args.subjects, args.repeats = 48, 0.2, 1, 1
    args.work.mkdir(parents=True, exist_ok=True)
    parts = [f"## Orchestration and copy cost (issue 23), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"`python benchmarks/orchestration.py {' '.join(sys.argv[1:])}` on {os.cpu_count()} CPUs, "
             f"load average {os.getloadavg()[0]:.1f} at start."]  # fmt: skip
    if args.only in (None, "wide"):
        parts.append(render_wide(bench_wide(args.work, args.series, args.sleep, args.cores, args.repeats, args.profile, args.extra.split())))
    if args.only in (None, "copy"):
        parts.append(render_copy(bench_copy(args.work, args.subjects, args.repeats, args.copy_cores, args.quick)))
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
