"""Exports in the background: one Snakemake process group per export.

The page writes ``<output>/code/bidsport/config.yaml`` (absolute paths) and runs
``python -m snakemake -s <repo>/Snakefile -d <work dir> --configfile <it> --cores N``
in its own session, so closing the browser (or the terminal's Ctrl-C) never reaches
it. Progress is the number of per-series manifests this run's plan expects that are
present and newer than their spec. Cancel sends SIGTERM to Snakemake (graceful: no
new job, the running series finish), then SIGINT to the process group and SIGKILL
if it lingers; files reach their final names only when complete either way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import signal
import sys
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .. import formats, layout, safety
from ..report import read_report as report_rows

from ..settings import workflow_dir
ENDED = ("finished", "failed", "cancelled", "interrupted")
CANCEL_GRACE_SECONDS = (30.0, 10.0)  # after SIGTERM to Snakemake, then after SIGINT to its group


@dataclass
class Export:
    id: str
    output_dir: str
    cohort: str
    config_path: str
    started: str
    parts: list[str]  # "<key>.<part>" of every series job the plan expects
    status: str = "running"
    ended: str | None = None
    returncode: int | None = None
    counts: dict = field(default_factory=dict)
    failed: list[dict] = field(default_factory=list)
    message: str = ""
    qc: bool = False
    pid: int | None = None

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    def progress(self) -> tuple[int, int]:
        """(series jobs done, total) for this export's plan."""
        total = len(self.parts)
        if self.status == "finished":
            return total, total
        state = self.output / safety.STATE_DIR
        done = 0
        for part in self.parts:
            manifest = state / "done" / f"{part}.json"
            spec = state / "specs" / f"{part.split('.')[0]}.json"
            try:
                if manifest.stat().st_mtime_ns >= spec.stat().st_mtime_ns:
                    done += 1
            except FileNotFoundError:
                pass
        return done, total

    def public(self, log_lines: int = 0, server: "Runner | None" = None) -> dict:
        done, total = self.progress()
        data = {k: v for k, v in asdict(self).items() if k not in ("parts", "config_path", "pid")}
        data.update(done=done, total=total, status_text=self.status_text(done, total))
        if log_lines and server:
            data["log"] = server.log_tail(self, log_lines)
        return data

    def status_text(self, done: int, total: int) -> str:
        where = f"Export to {self.output_dir}"
        if self.status == "running":
            return f"{where}: running, {done} of {total} series done."
        if self.status == "cancelling":
            return f"{where}: cancelling, {done} of {total} series done."
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        if self.status == "finished":
            return f"{where} finished: {counts}."
        if self.status == "cancelled":
            return f"{where} cancelled after {done} of {total} series; Start export again to resume."
        if self.status == "interrupted":
            return f"{where} failed: the server stopped during the export."
        detail = f"{len(self.failed)} series failed" if self.failed else (self.message or f"Snakemake exited {self.returncode}")
        return f"{where} failed: {detail}" + (f" ({counts})." if counts else ".")


class Runner:
    """Every export of this server, running or past (history kept in state_dir)."""

    def __init__(self, state_dir: Path, cores: int):
        self.state_dir = Path(state_dir)
        self.cores = cores
        self.exports: dict[str, Export] = {}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._lock = threading.Lock()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._load_history()

    # ------------------------------------------------------------------ history
    @property
    def history_file(self) -> Path:
        return self.state_dir / "history.jsonl"

    def _load_history(self) -> None:
        if not self.history_file.exists():
            return
        for line in self.history_file.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
                export = Export(**data)
            except (ValueError, TypeError):
                continue
            if export.status not in ENDED:
                export.status = "interrupted"
            self.exports[export.id] = export

    def _save_history(self) -> None:
        lines = [json.dumps(asdict(e)) for e in self.exports.values()]
        tmp = self.history_file.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, self.history_file)

    def history(self) -> list[Export]:
        return sorted(self.exports.values(), key=lambda e: e.started, reverse=True)

    def running(self) -> list[Export]:
        return [e for e in self.history() if e.status not in ENDED]

    # ------------------------------------------------------------------ paths
    def export_dir(self, export: Export) -> Path:
        return self.state_dir / "exports" / export.id

    def log_file(self, export: Export) -> Path:
        return self.export_dir(export) / "snakemake.log"

    def workdir(self, output: Path) -> Path:
        """Snakemake's working directory for one output folder: outside the dataset,
        so that ``overwrite: clean`` never empties Snakemake's own metadata."""
        digest = hashlib.sha1(str(output).encode()).hexdigest()[:12]
        return self.state_dir / "work" / digest

    def snakemake_command(self, export: Export, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "snakemake", "-s", str(workflow_dir() / "Snakefile"), "-d", str(self.workdir(export.output)),
            "--configfile", export.config_path, "--cores", str(self.cores), *extra,
        ]  # fmt: skip

    def log_tail(self, export: Export, lines: int) -> list[str]:
        path = self.log_file(export)
        if not path.exists():
            return []
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
        return text.splitlines()[-lines:]

    # ------------------------------------------------------------------ running
    def busy(self, output: Path) -> Export | None:
        return next((e for e in self.running() if e.output == output), None)

    async def start(self, config: dict, cohort: str, parts: list[str]) -> Export:
        output = Path(config["output_dir"])
        with self._lock:
            if self.busy(output):
                raise RuntimeError(f"an export to {output} is already running; wait for it or cancel it")
            export = Export(
                id=dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
                output_dir=str(output),
                cohort=cohort,
                config_path=str(layout.code(output) / layout.PAGE_CONFIG),
                started=dt.datetime.now().isoformat(timespec="seconds"),
                parts=parts,
                qc=bool(config.get("qc_snapshots")) and config_wants_nifti(config),
            )
            self.exports[export.id] = export
        write_config(export, config)
        self.export_dir(export).mkdir(parents=True, exist_ok=True)
        workdir = self.workdir(output)
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file(export), "ab")
        await self._unlock_if_needed(export, log)
        proc = await asyncio.create_subprocess_exec(
            *self.snakemake_command(export), stdout=log, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        export.pid = proc.pid
        self._procs[export.id] = proc
        self._save_history()
        asyncio.get_running_loop().create_task(self._watch(export, proc, config))
        return export

    async def _unlock_if_needed(self, export: Export, log) -> None:
        """A killed Snakemake leaves its lock behind; no run of ours is using this
        work dir now (one export per output folder), so it is safe to release."""
        locks = self.workdir(export.output) / ".snakemake" / "locks"
        if locks.is_dir() and any(locks.iterdir()):
            log.write(b"bidsport-web: releasing a stale Snakemake lock (snakemake --unlock)\n")
            log.flush()
            proc = await asyncio.create_subprocess_exec(
                *self.snakemake_command(export, "--unlock"), stdout=log, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            await proc.wait()

    async def _watch(self, export: Export, proc, config: dict) -> None:
        code = await proc.wait()
        self._procs.pop(export.id, None)
        export.returncode = code
        export.ended = dt.datetime.now().isoformat(timespec="seconds")
        # overwrite: clean empties the output folder, config included: put it back.
        if not Path(export.config_path).exists():
            write_config(export, config)
        # The report counts only if this run wrote it (a cancelled run may not have).
        report = layout.report(export.output)
        if report.exists() and report.stat().st_mtime >= dt.datetime.fromisoformat(export.started).timestamp() - 1:
            export.counts, export.failed = read_report(export.output)
        if export.status == "cancelling":
            export.status = "cancelled"
        elif code == 0:
            export.status = "finished"
        else:
            export.status = "failed"
            if not export.failed:
                export.message = last_error(self.log_tail(export, 60))
        self._save_history()

    async def cancel(self, export_id: str) -> Export:
        export = self.exports[export_id]
        proc = self._procs.get(export_id)
        if proc is None or export.status in ENDED:
            return export
        export.status = "cancelling"
        self._save_history()
        asyncio.get_running_loop().create_task(self._stop(proc))
        return export

    async def _stop(self, proc) -> None:
        """SIGTERM to Snakemake alone: it starts no new job and lets the running ones
        finish, so no series is left half-installed. If that takes too long (a hung
        conversion), SIGINT to the whole process group, then SIGKILL."""
        steps = ((os.kill, signal.SIGTERM, CANCEL_GRACE_SECONDS[0]), (os.killpg, signal.SIGINT, CANCEL_GRACE_SECONDS[1]),
                 (os.killpg, signal.SIGKILL, None))  # fmt: skip
        for send, sig, grace in steps:
            try:
                send(proc.pid, sig)
            except ProcessLookupError:
                return
            if grace is None:
                return
            try:
                await asyncio.wait_for(proc.wait(), grace)
                return
            except asyncio.TimeoutError:
                continue

    async def stop_all(self) -> None:
        """Server shutdown: cancel running exports cleanly rather than orphan them."""
        running = [e for e in self.running() if e.id in self._procs]
        for export in running:
            await self.cancel(export.id)
        for export in running:
            proc = self._procs.get(export.id)
            if proc:
                try:
                    await asyncio.wait_for(proc.wait(), sum(CANCEL_GRACE_SECONDS) + 5)
                except asyncio.TimeoutError:
                    pass
        await asyncio.sleep(0.1)  # let the watchers record the outcome

    async def run_target(self, export: Export, *args: str) -> int:
        """A short Snakemake run on an export's config (validate, --report)."""
        if self.busy(export.output):
            raise RuntimeError(f"an export to {export.output} is running; wait for it to end")
        log = open(self.export_dir(export) / "tools.log", "ab")
        await self._unlock_if_needed(export, log)
        proc = await asyncio.create_subprocess_exec(
            *self.snakemake_command(export, *args), stdout=log, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        return await proc.wait()


def config_wants_nifti(config: dict) -> bool:
    return formats.wants_nifti(formats.listed(config.get("output_mode", "nii.gz")))


def write_config(export: Export, config: dict) -> None:
    """The run's config in the dataset (absolute paths: reproducible from anywhere).
    ``.bidsport/`` marks the folder as a bidsport export, which ``clean`` requires."""
    path = Path(export.config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (export.output / safety.STATE_DIR).mkdir(parents=True, exist_ok=True)
    header = "# Written by bidsport-web; reproduce with:\n# snakemake -s {} --configfile {} --cores N\n".format(workflow_dir() / "Snakefile", path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def read_report(output: Path) -> tuple[dict, list[dict]]:
    """Counts by status and the failed series, from code/bidsport/export_report.tsv."""
    path = layout.report(output)
    if not path.exists():
        return {}, []
    rows = report_rows(path)
    counts = {k: 0 for k in ("exported", "skipped", "failed", "excluded")}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    failed = [
        {"subject": r.get("subject", ""), "session": r.get("session", ""),
         "series": r.get("series_description") or r.get("series_instance_uid", ""), "reason": r.get("reason", "")}
        for r in rows if r["status"] == "failed"
    ]  # fmt: skip
    return counts, failed


def last_error(lines: list[str]) -> str:
    """The most telling line of a failed run's log (the workflow's own message)."""
    for marker in ("No series to export", "another bidsport run", "refused", "problem", "Error", "error"):
        for line in reversed(lines):
            if marker in line:
                return line.strip()
    return lines[-1].strip() if lines else ""
