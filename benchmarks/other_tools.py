"""Run heudiconv and dcm2bids on the benchmark cohort, for comparison with bidsport.

    python benchmarks/other_tools.py --subjects 2 --jobs 2

Each tool lives in its own virtualenv under benchmarks/cache/venv-<tool> (created on
demand; install time is reported separately and never counted in the timings), and
both call the same dcm2niix binary as bidsport (the PyPI wheel's, or whatever
``bidsport.dcm2niix.find_dcm2niix`` resolves), put first on their PATH.

Each tool is run the way it is normally run on a cohort: one tool process per
subject, ``jobs`` subjects at a time, all writing into one BIDS folder. The mapping
(heudiconv_heuristic.py, dcm2bids_config.json) yields exactly bidsport's names:

    sub-<s>/ses-M00/anat/sub-<s>_ses-M00_T1w.nii.gz
    sub-<s>/ses-M00/func/sub-<s>_ses-M00_task-rest_bold.nii.gz
    sub-<s>/ses-M00/dwi/sub-<s>_ses-M00_dir-AP_dwi.nii.gz
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / "cache"
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(HERE))

HEURISTIC = HERE / "heudiconv_heuristic.py"
DCM2BIDS_CONFIG = HERE / "dcm2bids_config.json"
SESSION = "M00"

# Pinned versions (the newest on PyPI when this was written). console script per tool.
TOOLS = {
    "heudiconv": {"pins": ["heudiconv==1.5.1"], "exe": "heudiconv"},
    "dcm2bids": {"pins": ["dcm2bids==3.3.1"], "exe": "dcm2bids"},
}
INSTALL_SECONDS: dict[str, float] = {}  # filled by ensure_tool when it had to install


class ToolError(RuntimeError):
    pass


# --------------------------------------------------------------------------- install


def venv_dir(name: str) -> Path:
    return CACHE / f"venv-{name}"


def ensure_tool(name: str) -> Path:
    """The tool's executable inside its own venv, installing it on first use."""
    spec = TOOLS[name]
    venv = venv_dir(name)
    exe = venv / "bin" / spec["exe"]
    marker = venv / "bidsport-pins.txt"
    wanted = "\n".join(spec["pins"]) + "\n"
    if exe.exists() and marker.exists() and marker.read_text().startswith(wanted):
        return exe
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python3 = shutil.which("python3") or sys.executable
    t0 = time.perf_counter()
    _check([python3, "-m", "venv", str(venv)], f"creating the {name} venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _check([*pip, "install", *spec["pins"]], f"pip install {' '.join(spec['pins'])}")
    INSTALL_SECONDS[name] = time.perf_counter() - t0
    if not exe.exists():
        raise ToolError(f"{name}: {exe} missing after installation")
    freeze = subprocess.run([*pip, "freeze"], capture_output=True, text=True).stdout
    marker.write_text(wanted + f"# installed in {INSTALL_SECONDS[name]:.1f} s\n# pip freeze:\n" + freeze)
    return exe


def tool_version(name: str) -> str:
    """Version of the installed package (from its venv)."""
    py = venv_dir(name) / "bin" / "python"
    proc = subprocess.run([str(py), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"], capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{what} failed (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}")


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --------------------------------------------------------------------------- running


def tool_env(name: str) -> dict[str, str]:
    """PATH: a folder holding only bidsport's dcm2niix, then the tool's venv, then the rest."""
    from bidsport.dcm2niix import find_dcm2niix

    shim = CACHE / "bin-dcm2niix"
    shim.mkdir(parents=True, exist_ok=True)
    link = shim / "dcm2niix"
    target = find_dcm2niix()
    if not (link.is_symlink() and os.readlink(link) == target):
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join([str(shim), str(venv_dir(name) / "bin"), env.get("PATH", "")])
    env["NO_ET"] = "1"  # heudiconv/etelemetry: no online version check (no internet here)
    return env


class _Runner:
    """Runs commands, ``jobs`` at a time, each in its own process group; on any failure
    or interrupt every still-running group is killed (no stray dcm2niix left behind)."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env, self.logdir = env, logdir
        self.live: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, label: str, cmd: list[str], cwd: Path | None = None) -> None:
        log = self.logdir / f"{label}.log"
        with open(log, "w") as fh:
            with self.lock:
                if self.stopping:
                    return
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=cwd, start_new_session=True)
                self.live.add(proc)
            try:
                rc = proc.wait()
            finally:
                with self.lock:
                    self.live.discard(proc)
        if rc != 0 and not self.stopping:
            raise ToolError(f"{label} failed (exit {rc}): {' '.join(cmd)}\n--- log tail ({log}) ---\n{_tail(log.read_text(errors='replace'))}")

    def kill_all(self) -> None:
        with self.lock:
            self.stopping = True
            procs = list(self.live)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def map(self, jobs: dict[str, list[str]], parallel: int, cwd: Path | None = None) -> None:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = [pool.submit(self.run, label, cmd, cwd) for label, cmd in jobs.items()]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
                for f in futures:
                    if f.done() and f.exception():
                        raise f.exception()
            except BaseException:
                for f in futures:
                    f.cancel()
                self.kill_all()
                raise


def subjects_of(table: Path) -> list[str]:
    with open(table, newline="") as fh:
        return sorted({row["subject_code"] for row in csv.DictReader(fh, delimiter="\t")})


def _fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    logs = out.parent / f"{out.name}-logs"  # logs outside the BIDS folder
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    return logs


def heudiconv_cmds(cohort_root: Path, table: Path, out: Path) -> dict[str, list[str]]:
    exe = str(ensure_tool("heudiconv"))
    template = str(cohort_root / "dicom" / "{subject}" / "*" / "*.dcm")
    return {
        f"heudiconv-{s}": [exe, "-d", template, "-s", s, "-ss", SESSION, "-f", str(HEURISTIC), "-c", "dcm2niix", "-b", "--overwrite", "-o", str(out)]
        for s in subjects_of(table)
    }


def run_heudiconv(cohort_root: Path, table: Path, out: Path, jobs: int) -> float:
    """heudiconv, one process per subject, ``jobs`` at once, into ``out`` (emptied first).
    Returns wall seconds (installation excluded)."""
    cmds = heudiconv_cmds(cohort_root, table, out)
    logs = _fresh(out)
    runner = _Runner(tool_env("heudiconv"), logs)
    t0 = time.perf_counter()
    runner.map(cmds, jobs)
    return time.perf_counter() - t0


def dcm2bids_cmds(cohort_root: Path, table: Path, out: Path) -> dict[str, list[str]]:
    exe = str(ensure_tool("dcm2bids"))
    return {
        f"dcm2bids-{s}": [exe, "-d", str(cohort_root / "dicom" / s), "-p", s, "-s", SESSION, "-c", str(DCM2BIDS_CONFIG), "-o", str(out), "--clobber", "--force_dcm2bids"]
        for s in subjects_of(table)
    }


def run_dcm2bids(cohort_root: Path, table: Path, out: Path, jobs: int) -> float:
    """dcm2bids_scaffold (README, dataset_description.json, .bidsignore, ...), then
    dcm2bids, one process per subject, ``jobs`` at once. Returns wall seconds."""
    cmds = dcm2bids_cmds(cohort_root, table, out)
    scaffold = str(venv_dir("dcm2bids") / "bin" / "dcm2bids_scaffold")
    logs = _fresh(out)
    runner = _Runner(tool_env("dcm2bids"), logs)
    t0 = time.perf_counter()
    runner.map({"dcm2bids_scaffold": [scaffold, "-o", str(out), "--force"]}, 1)
    runner.map(cmds, jobs, cwd=logs)  # dcm2bids writes nothing into cwd, but be safe
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- checking


def names(out: Path) -> set[str]:
    """Relative paths of the subject NIfTI files (sourcedata/derivatives/tmp excluded)."""
    return {p.relative_to(out).as_posix() for p in out.glob("sub-*/**/*.nii*") if p.is_file()}


def expected_names(table: Path) -> set[str]:
    """bidsport's names for the benchmark cohort."""
    result = set()
    for s in subjects_of(table):
        d, e = f"sub-{s}/ses-{SESSION}", f"sub-{s}_ses-{SESSION}"
        result |= {f"{d}/anat/{e}_T1w.nii.gz", f"{d}/func/{e}_task-rest_bold.nii.gz", f"{d}/dwi/{e}_dir-AP_dwi.nii.gz"}
    return result


def validator_report(out: Path) -> dict | None:
    """The official validator's JSON result, or None if bids-validator-deno is missing."""
    from bidsport import validate

    try:
        validate.validator_binary()
    except SystemExit:
        return None
    return validate.run_validator(out)


def validator_issues(out: Path, severity: str = "error") -> list[dict] | None:
    from bidsport import validate

    result = validator_report(out)
    return None if result is None else validate.issues(result, severity)


def validator_errors(out: Path) -> int | None:
    """Number of BIDS validator errors (None: validator not available)."""
    errors = validator_issues(out, "error")
    return None if errors is None else len(errors)


def fill_empty_readme(out: Path) -> bool:
    """dcm2bids_scaffold writes an empty README, which the validator rejects (EMPTY_FILE);
    one line of text is enough. Returns whether it changed anything."""
    readme = out / "README"
    if readme.exists() and readme.stat().st_size == 0:
        readme.write_text("Synthetic benchmark cohort (bidsport benchmarks/other_tools.py).\n")
        return True
    return False


def summarize_issues(issues: list[dict], limit: int = 6) -> str:
    codes: dict[str, list[str]] = {}
    for i in issues:
        codes.setdefault(i.get("code", "?"), []).append(i.get("location", ""))
    return "; ".join(f"{c} ×{len(locs)} (e.g. {locs[0]})" for c, locs in list(codes.items())[:limit]) or "-"


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="T1w matrix (run.py: 64 with --quick, else 128)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tools", nargs="+", choices=sorted(TOOLS), default=sorted(TOOLS, reverse=True))
    args = parser.parse_args()
    # A SIGTERM becomes SystemExit, so the runner kills the tool process groups it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from run import make_cohort

    for name in args.tools:
        ensure_tool(name)
        how = f"installed in {INSTALL_SECONDS[name]:.1f} s" if name in INSTALL_SECONDS else "already installed"
        print(f"{name} {tool_version(name)} ({how}; venv {venv_dir(name)})")
    cohort = CACHE / f"cohort-{args.subjects}-{args.size}"
    table = make_cohort(cohort, args.subjects, args.size)
    want = expected_names(table)
    runners = {"heudiconv": run_heudiconv, "dcm2bids": run_dcm2bids}
    ok = True
    for name in args.tools:
        out = CACHE / "work" / f"{name}-out"
        seconds = runners[name](cohort, table, out, args.jobs)
        got = names(out)
        match = got == want
        errors = validator_issues(out, "error")
        warnings = validator_issues(out, "warning")
        print(f"\n== {name}: {args.subjects} subjects, {args.jobs} jobs: {seconds:.2f} s wall; output {out}")
        for n in sorted(got):
            print(f"   {n}")
        print(f"   names match bidsport: {match}" + ("" if match else f" (missing {sorted(want - got)}, extra {sorted(got - want)})"))
        if errors is None:
            print("   BIDS validator: not available")
        else:
            print(f"   BIDS validator: {len(errors)} error(s), {len(warnings)} warning(s)")
            print(f"     errors:   {summarize_issues(errors)}")
            print(f"     warnings: {summarize_issues(warnings)}")
        if errors and fill_empty_readme(out):
            fixed = validator_issues(out, "error")
            print(f"   after writing a one-line README (untimed): {len(fixed)} error(s): {summarize_issues(fixed)}")
        ok = ok and match and errors == []
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
