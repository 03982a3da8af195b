"""Small helpers the Snakemake rules call, kept here so the rules stay thin."""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path

from . import dcm2niix as d2n
from . import faults, formats, settings, tsv
from .dataset_ledger import DECLARED_OUTPUTS, ledger_is_current
from .fsutil import folder_size
from .report import read_report
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
    for key, variable in JOB_ENVIRONMENT.items():
        os.environ[variable] = str(cfg[key] if cfg.get(key) is not None else settings.schema_default(key))


# Config key → the variable that carries it to the series jobs (read by job_environment).
JOB_ENVIRONMENT = {"copy_workers": "BIDSPORT_COPY_WORKERS", "dcm_copy_method": "BIDSPORT_COPY_METHOD",
                   "convert_timeout": "BIDSPORT_TIMEOUT"}  # fmt: skip


def job_environment() -> dict:
    """The settings :func:`export_job_environment` gave the series jobs (the config
    schema's defaults where a variable is unset, e.g. a job called directly)."""
    values = {key: os.environ.get(variable) or settings.schema_default(key) for key, variable in JOB_ENVIRONMENT.items()}
    timeout = float(values["convert_timeout"] or 0)
    return {"copy_workers": int(values["copy_workers"]), "copy_method": str(values["dcm_copy_method"]),
            "timeout": timeout or None}  # fmt: skip


def clean_token(cfg: dict) -> str | None:
    """A value that differs at every run in ``clean`` mode (so the plan, which
    does the cleaning, runs every time), and is constant otherwise."""
    if cfg.get("overwrite") != "clean":
        return None
    import time

    return str(time.time_ns())


def _user_tables(cfg: dict, keys: tuple[str, ...]) -> list[str]:
    """The tables of ``keys`` the user gives: a NILS database snapshot is the plan
    job's own output (written by it, and the plan forced when it changes)."""
    from .settings import DATABASE_TABLE_KEYS

    skip = DATABASE_TABLE_KEYS if cfg.get("nils_database_url") else ()
    return [cfg[k] for k in keys if cfg.get(k) and k not in skip]


def table_inputs(cfg: dict) -> list[str]:
    """Tables the planning checkpoint reads (an edit re-plans; specs change only if names do)."""
    keys = ("series_table", "instances_table", "subjects_table", "subject_identifiers_table", "fieldmap_links_table",
            "overrides_table")  # fmt: skip
    return _user_tables(cfg, keys)


def dataset_tables(cfg: dict) -> list[str]:
    """Tables the dataset step reads (an edit re-runs it): participants come from the
    subjects table and, where the series table has ``age_at_study``, from it."""
    return _user_tables(cfg, ("fieldmap_links_table", "sessions_table", "subjects_table", "series_table"))


def dataset_outputs(cfg: dict, out: Path) -> list[str]:
    """Dataset-level files that are declared outputs (for a BIDS NIfTI tree)."""
    if cfg["layout"] != "bids" or not wants_nifti(cfg):
        return []
    return [str(out / n) for n in DECLARED_OUTPUTS]


def _has_nifti(row: dict) -> bool:
    return formats.wants_nifti(row["formats"].split(","))


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
    return tuple(tsv.read(Path(path)))


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


def force(workflow, output: str | os.PathLike) -> bool:
    """Mark the job writing ``output`` forced in the DAG being built (main process only)."""
    dag = getattr(workflow, "dag", None)
    if not workflow.is_main_process or dag is None:
        return False
    dag.forcefiles.add(str(output))
    return True


def force_if_stale(workflow, manifest: str | os.PathLike, output_dir: Path) -> bool:
    """Make Snakemake re-run the job of a manifest whose claim is false (an input
    function calls this while the DAG is built); True if it was marked.

    A failed series, or one whose exported file was deleted, keeps its manifest on
    disk: nothing is deleted while planning a run (a dry run, ``--report``,
    ``--lint`` or ``--unlock`` must leave the dataset as it is). Its job is marked
    *forced* in the DAG instead, so ``-n`` lists exactly the jobs the next run
    redoes, and the real run rewrites the manifest. Only the main process decides:
    a cluster job step runs the jobs it was given.
    """
    if not workflow.is_main_process or not Path(manifest).exists():
        return False
    if manifest_is_current(Path(manifest), Path(output_dir)):
        return False
    return force(workflow, manifest)  # (a missing manifest re-runs anyway: missing output)


def force_if_changed(workflow, ledger: str | os.PathLike, output_dir: Path, output: str | os.PathLike) -> bool:
    """Make Snakemake re-run the dataset step (the job writing ``output``) when a
    file it wrote was deleted or changed since (``dataset_ledger.ledger_is_current``)."""
    if not workflow.is_main_process or not Path(output).exists() or ledger_is_current(Path(ledger), Path(output_dir)):
        return False
    return force(workflow, output)


# Bytes written per source byte, by format (a DICOM copy is the same size; NIfTI
# drops the headers, gzip about halves it): an estimate, to warn, never to refuse.
BYTES_PER_SOURCE_BYTE = {"nii.gz": 0.6, "nii": 1.0, "dcm": 1.0}


def space_needed(plan_tsv: str | os.PathLike, state: Path, copy_method: str = "copy") -> int:
    """Estimated bytes the series jobs still to run will write (source sizes × formats)."""
    output_dir = Path(state).parent
    sizes: dict[str, int] = {}
    needed = 0.0
    for row in plan_rows(plan_tsv):
        formats = [f for f in row["formats"].split(",") if f]
        todo = []
        for fmt in formats:
            part = "dicom" if fmt == "dcm" else "nifti"
            if not manifest_is_current(Path(state) / "done" / f"{row['key']}.{part}.json", output_dir):
                todo.append(fmt)
        if copy_method == "hardlink":  # links take no space (where they work)
            todo = [f for f in todo if f != "dcm"]
        if todo:
            if row["source"] not in sizes:
                sizes[row["source"]] = folder_size(row["source"])
            needed += sizes[row["source"]] * sum(BYTES_PER_SOURCE_BYTE.get(f, 1.0) for f in todo)
    return int(needed)


def space_warning(plan_tsv: str | os.PathLike, state: Path, copy_method: str = "copy") -> str | None:
    """A one-line warning when the output's filesystem has clearly too little room."""
    if not Path(plan_tsv).exists():
        return None
    needed = space_needed(plan_tsv, state, copy_method)
    if needed:  # the series jobs keep this much free for the run's records
        needed += faults.RECORD_MARGIN
    free = faults.free_space(Path(state).parent)
    if free is None or needed <= free:
        return None
    return (f"bidsport: warning: {Path(state).parent} has {faults.human_size(free)} free, but this export needs about "
            f"{faults.human_size(needed)} (source sizes × formats): free space first, or series will fail with 'disk full'")  # fmt: skip


def will_run(workflow, rule: str) -> bool:
    """Whether this run's DAG holds a job of ``rule`` still to run."""
    dag = getattr(workflow, "dag", None)
    return dag is not None and any(job.rule.name == rule for job in dag.needrun_jobs())


def warn_about_space(plan_tsv: Path, state: Path, cfg: dict) -> None:
    """Print :func:`space_warning`, if any, before the series jobs: from onstart when
    the plan stands, from the plan job when it is remade."""
    warning = space_warning(plan_tsv, state, str(cfg.get("dcm_copy_method", "copy")))
    if warning:
        print(warning, file=sys.stderr)


def series_logs(key: str, log_dir: Path | None) -> list[str]:
    """The series' own job logs (one a part) that exist in ``log_dir``."""
    if log_dir is None or not key:
        return []
    return [str(p) for part in ("nifti", "dicom") if (p := Path(log_dir) / f"{key}.{part}.log").exists()]


def summary(report: Path, log_dir: Path | None = None) -> tuple[str, int]:
    """The end-of-run summary of an export report, and how many series failed;
    each failed series names its own log (in ``log_dir``)."""
    rows = read_report(report)
    failed = [r for r in rows if r["status"] == "failed"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = ["bidsport: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (report: {report})"]
    warned = sum(1 for r in rows if r.get("warnings"))
    if warned:
        lines.append(f"  {warned} series have warnings (missing sidecar keys, kept files ...): see the report")
    lines += faults.summary_lines([r["reason"] for r in failed])  # a full disk: said once
    for r in failed:
        kind = faults.kind_of(r["reason"])  # already said once, above
        reason = f" ({kind})" if kind else f": {r['reason']}"
        logs = series_logs(r.get("key", ""), log_dir)
        where = f" (log: {', '.join(logs)})" if logs else ""
        lines.append(f"  FAILED {r['subject']}/{r['session']} {r['series_description'] or r['series_instance_uid']}{reason}{where}")
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
    locks; the next run marks the failed series' jobs forced, so only they are
    retried. (This replaces a separate ``export_status`` job: one job less.)
    """
    if not Path(report).exists():
        return
    text, failed = summary(Path(report), log_dir)
    print(text, file=sys.stderr)
    if failed:
        raise SeriesFailures(f"{failed} series failed (see {report})")
