"""A real single-node SLURM cluster for tests (Debian slurm-wlm + munge).

Usage::

    from slurm_cluster import LocalSlurm, SlurmUnavailable

    try:
        cluster = LocalSlurm().start()      # or: with LocalSlurm() as cluster:
    except SlurmUnavailable as exc:
        pytest.skip(f"no local SLURM: {exc}")
    try:
        mark = cluster.mark()
        subprocess.run([...snakemake..., "--executor", "slurm", *cluster.snakemake_args()],
                       env={**os.environ, **cluster.env})
        n = cluster.count_submitted(since=mark)
    finally:
        cluster.stop()

What it does: installs ``slurmctld slurmd slurm-client munge`` with apt-get if they
are missing (only as root); writes a slurm.conf into a temporary directory (CPUs and
RealMemory from this machine, free TCP ports); starts munged (unless one already
answers), slurmctld and slurmd in the foreground as its own children; waits until
``sinfo`` shows the node idle; on ``stop()`` cancels leftover jobs and stops every
daemon it started, by PID. Anything that makes a cluster impossible raises
``SlurmUnavailable`` (a reason to skip); a cluster that should work but does not
come up raises ``SlurmStartError`` with the daemons' log tails (a failure).

The job-step plugin of Snakemake's SLURM executor drops ``SLURM_CONF`` before its
inner ``srun``; so ``env["PATH"]`` starts with a directory holding an ``srun``
wrapper that sets it again, and the config is also copied to
``/etc/slurm/slurm.conf`` when that path is free (or was written by this module).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MARKER = "# written by bidsport tests/slurm_cluster.py (LocalSlurm); safe to delete"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
SBIN = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here (not installed and not installable, not root...)."""


class SlurmStartError(RuntimeError):
    """SLURM is installed but the cluster did not come up (includes log tails)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"  (no log: {exc})"
    return "\n".join("  " + line for line in text[-lines:]) or "  (empty)"


def _die_with_parent() -> None:
    """preexec_fn: the daemon gets SIGTERM if the test process dies abruptly."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def machine_resources() -> tuple[int, int]:
    """(CPUs, usable memory in MB) from nproc and /proc/meminfo."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    # slurmd drains a node that has less memory than configured: stay below it.
    return cpus, max(256, int(mem_kb / 1024 * 0.9))


class LocalSlurm:
    """A single-node SLURM cluster on this machine, for the duration of a test."""

    def __init__(self, partition: str = "debug", *, install: bool = True, start_timeout: float = 60,
                 base_dir: str | os.PathLike | None = None, keep_dir: bool = False):
        self.partition = partition
        self.install = install
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir
        self._base_dir = base_dir
        self.dir: Path | None = None
        self.conf: Path | None = None
        self.env: dict[str, str] = {}
        self.cpus, self.mem_mb = machine_resources()
        self._procs: dict[str, subprocess.Popen] = {}
        self._wrote_system_conf = False
        self._started = False

    # -- context manager ---------------------------------------------------------
    def __enter__(self) -> "LocalSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- public helpers ----------------------------------------------------------
    @property
    def slurmctld_log(self) -> Path:
        return self.dir / "slurmctld.log"

    @property
    def slurmd_log(self) -> Path:
        return self.dir / "slurmd.log"

    def snakemake_args(self, init_seconds: int = 1, status_interval: int = 1) -> list[str]:
        """Options that make Snakemake's SLURM executor (plugin 2.x) work and poll fast here."""
        return [
            "--slurm-no-account",
            "--slurm-status-command", "squeue",  # no accounting: sacct would hang
            "--slurm-init-seconds-before-status-checks", str(init_seconds),
            "--seconds-between-status-checks", str(status_interval),
            "--default-resources", f"slurm_partition={self.partition}", "runtime=10", "mem_mb=500",
        ]

    def submitted_job_ids(self) -> list[int]:
        """JobIds of every batch job submitted to this cluster (from the slurmctld log)."""
        try:
            text = self.slurmctld_log.read_text(errors="replace")
        except OSError:
            return []
        return [int(m) for m in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)]

    def mark(self) -> int:
        """A point to count submissions from: ``count_submitted(since=mark)``."""
        return len(self.submitted_job_ids())

    def count_submitted(self, since: int = 0) -> int:
        return len(self.submitted_job_ids()[since:])

    def jobs(self) -> list[dict[str, str]]:
        """``scontrol show job`` records (finished jobs stay for MinJobAge=300 s)."""
        out = self.run("scontrol", "-o", "show", "job", check=False).stdout
        records = []
        for line in out.splitlines():
            if "JobId=" in line:
                records.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
        return records

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=timeout)

    # -- start -------------------------------------------------------------------
    def start(self) -> "LocalSlurm":
        if self._started:
            return self
        self._ensure_installed()
        self._started = True
        atexit.register(self.stop)
        try:
            self._write_config()
            self._start_munge()
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
            self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", "localhost"])
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _ensure_installed(self) -> None:
        def missing() -> list[str]:
            need = ["slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "munged", "munge"]
            return [n for n in need if not _which(n)]

        if os.geteuid() != 0:
            raise SlurmUnavailable("the local SLURM cluster needs root (slurmd runs jobs as root here)")
        if not missing():
            return
        if not self.install:
            raise SlurmUnavailable(f"not installed: {', '.join(missing())}")
        if not shutil.which("apt-get"):
            raise SlurmUnavailable(f"not installed ({', '.join(missing())}) and no apt-get to install "
                                   f"{' '.join(PACKAGES)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = [["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                  "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", *PACKAGES]]
        for step in steps:
            try:
                proc = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SlurmUnavailable(f"`{' '.join(step)}` failed: {exc}") from exc
            if proc.returncode != 0:
                raise SlurmUnavailable(f"`{' '.join(step)}` failed ({proc.returncode}): "
                                       f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        if missing():
            raise SlurmUnavailable(f"installed {' '.join(PACKAGES)} but still missing: {', '.join(missing())}")

    def _write_config(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bidsport-slurm-", dir=self._base_dir))
        d = self.dir
        for sub in ("state", "spool", "bin"):
            (d / sub).mkdir()
        self.conf = d / "slurm.conf"
        self.conf.write_text(f"""{MARKER}
ClusterName=bidsporttest
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue as the status command needs finished jobs kept >= 3x the first status interval
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        # The job-step plugin drops SLURM_CONF before `srun`: an srun wrapper puts it back ...
        real_srun = _which("srun")
        wrapper = d / "bin" / "srun"
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}"\nexport SLURM_CONF\nexec "{real_srun}" "$@"\n')
        wrapper.chmod(0o755)
        # ... and the default location serves any other tool that loses it.
        try:
            if not SYSTEM_CONF.exists() or MARKER in SYSTEM_CONF.read_text(errors="replace"):
                SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.conf, SYSTEM_CONF)
                self._wrote_system_conf = True
        except OSError:
            pass
        self.env = {"SLURM_CONF": str(self.conf), "PATH": f"{d / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}

    def _munge_ok(self) -> bool:
        munge = _which("munge")
        try:
            return subprocess.run([munge, "-n"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_munge(self) -> None:
        if self._munge_ok():
            return  # a munged is already running: use it, leave it alone
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            raise SlurmUnavailable(f"munge is installed but {key} is missing")
        rundir = Path("/run/munge")
        rundir.mkdir(parents=True, exist_ok=True)
        shutil.chown(rundir, "munge", "munge")
        # a stale socket/pidfile from a killed munged makes it refuse to start
        for stale in rundir.glob("munged.pid"):
            stale.unlink(missing_ok=True)
        self._spawn("munged", [_which("munged"), "-F", "--force"], user="munge", group="munge")
        deadline = time.monotonic() + 15
        while not self._munge_ok():
            if self._procs["munged"].poll() is not None or time.monotonic() > deadline:
                raise SlurmStartError("munged did not start:\n" + _tail(self.dir / "munged.out"))
            time.sleep(0.2)

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        out = open(self.dir / f"{name}.out", "wb")
        try:
            self._procs[name] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "SLURM_CONF": str(self.conf)},
                start_new_session=True, preexec_fn=_die_with_parent, **kw)
        finally:
            out.close()

    def _logs(self) -> str:
        parts = []
        for name, proc in self._procs.items():
            parts.append(f"--- {name} (pid {proc.pid}, exit {proc.poll()}) stdout/stderr:\n{_tail(self.dir / f'{name}.out', 10)}")
        parts.append(f"--- slurmctld.log:\n{_tail(self.slurmctld_log)}")
        parts.append(f"--- slurmd.log:\n{_tail(self.slurmd_log)}")
        return "\n".join(parts)

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = "?"
        while time.monotonic() < deadline:
            for name in ("slurmctld", "slurmd"):
                if self._procs[name].poll() is not None:
                    raise SlurmStartError(f"{name} exited ({self._procs[name].returncode}) during start-up\n{self._logs()}")
            proc = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%t", check=False, timeout=10)
            state = (proc.stdout.strip() or proc.stderr.strip() or "?").splitlines()[0]
            if state == "idle":
                return
            if proc.returncode == 0 and any(s in state for s in ("drain", "drng", "inval", "fail")):
                reason = self.run("scontrol", "show", "node", "localhost", check=False).stdout
                raise SlurmStartError(f"node is {state!r}:\n{reason}\n{self._logs()}")
            time.sleep(0.3)
        raise SlurmStartError(f"node not idle after {self.start_timeout:.0f}s (last sinfo: {state!r})\n{self._logs()}")

    # -- stop --------------------------------------------------------------------
    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass
        ctld = self._procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None and "slurmd" in self._procs:
            # let slurmd end leftover jobs (a failed test) before the daemons go
            try:
                self.run("scancel", "--full", "--partition", self.partition, check=False, timeout=10)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    q = self.run("squeue", "-h", "-o", "%i", check=False, timeout=10)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.5)
            except Exception:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._wrote_system_conf:
            try:
                if MARKER in SYSTEM_CONF.read_text(errors="replace"):
                    SYSTEM_CONF.unlink()
            except OSError:
                pass
            self._wrote_system_conf = False
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # manual check: python tests/slurm_cluster.py
    t0 = time.monotonic()
    with LocalSlurm() as c:
        print(f"up in {time.monotonic() - t0:.1f}s; conf {c.conf}")
        print(c.run("sinfo").stdout)
        print(c.run("sbatch", "--wrap", "hostname", "-o", str(c.dir / "out.txt")).stdout)
        time.sleep(3)
        print("submitted:", c.submitted_job_ids(), c.jobs()[0].get("JobState") if c.jobs() else None)
    print(f"total {time.monotonic() - t0:.1f}s")
