"""Small helpers the Snakemake rules call, kept here so the rules stay thin."""

from __future__ import annotations

import csv
import json
import os
import sys
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

from . import dcm2niix as d2n
from .settings import wants_nifti


def prepare_job_environment(basedir: str) -> None:
    """Jobs run ``python -m bidsport...``: make that the interpreter running Snakemake
    (which has bidsport's dependencies) and let it import this package's scripts/."""
    scripts = str(Path(basedir) / "scripts")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != scripts]
    os.environ["PYTHONPATH"] = os.pathsep.join([scripts, *paths])
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def job_cpus(environ: dict | None = None) -> int:
    """The CPUs this cluster job holds, for running its series side by side.

    SLURM says so in ``SLURM_CPUS_PER_TASK`` (set when the job asked for
    ``--cpus-per-task``, as the SLURM executor does) or ``SLURM_CPUS_ON_NODE``;
    elsewhere, the CPUs this process may run on."""
    environ = os.environ if environ is None else environ
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = environ.get(name, "").split("(")[0].split(",")[0]  # e.g. "4" or "4(x2)"
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def one_reevaluation_timer() -> bool:
    """Keep at most one of Snakemake's scheduler re-evaluation timers pending.

    Snakemake's job rate limiter (``--max-jobs-per-timespan``, on by default)
    ends every scheduling round by starting a ``threading.Timer`` that runs another
    round a timespan later, and that round starts another timer: every finished
    job adds a chain of rounds that never ends, so a run of N series ends up doing
    about N rounds a second, and the Snakemake process's CPU grows with the number
    of series times the run's length (see benchmarks/results.md, issue 23). One
    pending timer is enough (a round that finds none starts one), and as a daemon
    thread it never delays the exit. Patches the private method
    ``JobScheduler._schedule_reevalutation`` (snakemake 9.27; upstream PR
    snakemake#3744 discusses the rate limiter's wake-ups). True if patched.
    """
    import threading

    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    current = getattr(JobScheduler, "_schedule_reevalutation", None)
    if current is None or getattr(current, "bidsport_patched", False):
        return False
    lock = threading.Lock()

    def _schedule_reevalutation(self, delay) -> None:
        def fire() -> None:
            with lock:
                self.bidsport_reevaluation = None
            self._open_jobs.release()

        with lock:
            if getattr(self, "bidsport_reevaluation", None) is not None:
                return
            timer = threading.Timer(delay, fire)
            timer.daemon = True
            self.bidsport_reevaluation = timer
        timer.start()

    _schedule_reevalutation.bidsport_patched = True
    JobScheduler._schedule_reevalutation = _schedule_reevalutation
    return True


def check_dcm2niix(cfg: dict) -> tuple[str | None, str]:
    """(binary, version) when NIfTI is wanted, else (None, ""); raises a clear error."""
    if not wants_nifti(cfg):
        return None, ""
    binary = d2n.find_dcm2niix(cfg.get("dcm2niix_path"))
    return binary, d2n.version(binary)


def export_job_environment(cfg: dict, dcm2niix: str | None) -> None:
    """Settings that must not re-run jobs when changed travel by environment."""
    if dcm2niix:
        os.environ[d2n.ENV_VAR] = dcm2niix
    os.environ["BIDSPORT_COPY_WORKERS"] = str(cfg.get("copy_workers", 8))
    os.environ["BIDSPORT_COPY_METHOD"] = str(cfg.get("dcm_copy_method", "copy"))
    os.environ["BIDSPORT_TIMEOUT"] = str(cfg.get("convert_timeout", 0) or 0)


def clean_token(cfg: dict) -> str | None:
    """A value that differs at every run in ``clean`` mode (so the plan, which
    does the cleaning, runs every time), and is constant otherwise."""
    if cfg.get("overwrite") != "clean":
        return None
    import time

    return str(time.time_ns())


def table_inputs(cfg: dict) -> list[str]:
    """Tables the planning checkpoint reads (an edit re-plans; specs change only if names do)."""
    keys = ("series_table", "instances_table", "subjects_table", "subject_identifiers_table", "fieldmap_links_table")
    return [cfg[k] for k in keys if cfg.get(k)]


def dataset_tables(cfg: dict) -> list[str]:
    """Tables the dataset step reads (an edit re-runs it): participants come from the
    subjects table and, where the series table has ``age_at_study``, from it."""
    keys = ("fieldmap_links_table", "sessions_table", "subjects_table", "series_table")
    return [cfg[k] for k in keys if cfg.get(k)]


def dataset_outputs(cfg: dict, out: Path) -> list[str]:
    """Dataset-level files that are declared outputs (for a BIDS NIfTI tree)."""
    if cfg["layout"] != "bids" or not wants_nifti(cfg):
        return []
    return [str(out / n) for n in ("dataset_description.json", "participants.tsv", "participants.json", ".bidsignore")]


def _has_nifti(row: dict) -> bool:
    return any(f in ("nii", "nii.gz") for f in row["formats"].split(","))


def read_plan_parts(plan_tsv: str | os.PathLike) -> list[tuple[str, str]]:
    """(key, part) of every per-series job in the plan."""
    parts = []
    for row in plan_rows(plan_tsv):
        if _has_nifti(row):
            parts.append((row["key"], "nifti"))
        if "dcm" in row["formats"].split(","):
            parts.append((row["key"], "dicom"))
    return parts


def plan_rows(plan_tsv: str | os.PathLike) -> tuple[dict, ...]:
    """plan.tsv as dicts, read once per version (input functions call this per job)."""
    path = Path(plan_tsv)
    return _plan_rows(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _plan_rows(path: str, _version: int) -> tuple[dict, ...]:
    with open(path, encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh, delimiter="\t"))


def nifti_rows_by_subject(plan_tsv: str | os.PathLike) -> dict[str, list[dict]]:
    """Subject label -> plan rows of its series that have a NIfTI part (QC jobs)."""
    path = Path(plan_tsv)
    return _nifti_rows_by_subject(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _nifti_rows_by_subject(path: str, version: int) -> dict[str, list[dict]]:
    by_subject: dict[str, list[dict]] = {}
    for row in _plan_rows(path, version):
        if _has_nifti(row):
            by_subject.setdefault(row["subject"], []).append(row)
    return by_subject


def manifest_is_current(path: Path, output_dir: Path) -> bool:
    """A manifest stands only for a success whose files are all still there."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("status") == "failed":
        return False
    return all((output_dir / f["path"]).exists() for f in data.get("files", []))


def manifest_paths(plan_tsv: str | os.PathLike, state: Path) -> list[str]:
    """The per-series manifests the dataset step needs (input function)."""
    return [str(Path(state) / "done" / f"{key}.{part}.json") for key, part in read_plan_parts(plan_tsv)]


def withdraw_stale_manifests(plan_tsv: Path, state: Path, dependents: list) -> int:
    """Delete manifests whose claim is false, before Snakemake builds its DAG.

    A failed series, or one whose exported file was deleted, loses its manifest so
    that Snakemake re-runs exactly that series (retry failures, restore deletions).
    Every manifest is checked, not only the last plan's: a series that left the
    table, lost its files and came back must be exported again (the plan that
    brings it back is made after this check). Snakemake does not re-make a missing
    intermediate file while the files made from it are present, so the dataset
    step's own outputs (``dependents``) go too whenever a manifest is missing or
    withdrawn. This must run before the DAG is built: Snakemake caches which files
    exist. Returns the number of manifests withdrawn.
    """
    done = Path(state) / "done"
    output_dir = Path(state).parent
    withdrawn = 0
    with os.scandir(done) if done.is_dir() else nullcontext([]) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not manifest_is_current(Path(entry.path), output_dir):
                Path(entry.path).unlink(missing_ok=True)
                withdrawn += 1
    missing = Path(plan_tsv).exists() and any(not Path(p).exists() for p in manifest_paths(plan_tsv, state))
    if withdrawn or missing:
        for dependent in dependents:
            Path(dependent).unlink(missing_ok=True)
    return withdrawn


def series_logs(key: str, log_dir: Path | None) -> list[str]:
    """The series' own job logs (one a part) that exist in ``log_dir``."""
    if log_dir is None or not key:
        return []
    return [str(p) for part in ("nifti", "dicom") if (p := Path(log_dir) / f"{key}.{part}.log").exists()]


def summary(report: Path, log_dir: Path | None = None) -> tuple[str, int]:
    """The end-of-run summary of an export report, and how many series failed;
    each failed series names its own log (in ``log_dir``)."""
    with open(report, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    failed = [r for r in rows if r["status"] == "failed"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = ["bidsport: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (report: {report})"]
    warned = sum(1 for r in rows if r.get("warnings"))
    if warned:
        lines.append(f"  {warned} series have warnings (missing sidecar keys, kept files ...): see the report")
    for r in failed:
        logs = series_logs(r.get("key", ""), log_dir)
        where = f" (log: {', '.join(logs)})" if logs else ""
        lines.append(f"  FAILED {r['subject']}/{r['session']} {r['series_description'] or r['series_instance_uid']}: {r['reason']}{where}")
    if failed:
        lines.append(f"bidsport: {len(failed)} series failed; fix them and re-run (only those will be retried).")
    return "\n".join(lines), len(failed)


def print_summary(report: Path, log_dir: Path | None = None) -> None:
    """For Snakemake's onsuccess/onerror: say how the export went, if it got that far."""
    if Path(report).exists():
        print(summary(Path(report), log_dir)[0], file=sys.stderr)


def cancel_pending_timers() -> int:
    """Cancel the re-scheduling timers left when the run is over.

    Snakemake's job rate limiter (``--max-jobs-per-timespan``, at least 1 s, cannot
    be turned off) starts a non-daemon ``threading.Timer`` after each scheduling
    round; the interpreter then waits up to a second for the last one before it
    exits. Called from onsuccess/onerror, when no scheduling round can follow.
    """
    import threading

    pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for timer in pending:
        timer.cancel()
    return len(pending)


class SeriesFailures(RuntimeError):
    """Raised from onsuccess so that the run exits non-zero while any series failed."""


def finish_run(report: Path, log_dir: Path | None = None) -> None:
    """onsuccess: print the summary; fail the run if the report lists failed series.

    The series jobs themselves succeed (failure isolation: one bad series never
    stops the others), so the verdict comes from the report the dataset step wrote.
    Raising here makes Snakemake print the message and exit 1 after releasing its
    locks; the failed series' manifests are withdrawn at the next run, so only they
    are retried. (This replaces a separate ``export_status`` job: one job less.)
    """
    if not Path(report).exists():
        return
    text, failed = summary(Path(report), log_dir)
    print(text, file=sys.stderr)
    if failed:
        raise SeriesFailures(f"{failed} series failed (see {report})")
