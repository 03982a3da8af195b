"""Faults of the machine, not of the data: a full disk, an exceeded quota, a
read-only or vanished output folder, a source file that vanished or cannot be
read. Each becomes one line that says so (the series' ``failed`` reason), never a
traceback; bidsport's own bugs keep theirs (see :func:`strict`).

The reason of a machine fault starts with one of ``KINDS``' labels, so that the
end-of-run summary can say it once for all the series it hit.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

KINDS = {
    "disk full": "free space on the output's disk and re-run",
    "quota exceeded": "free space within your quota (or raise it) and re-run",
    "output read-only": "make the output folder writable and re-run",
    "output vanished": "check the output folder (deleted? unmounted?) and re-run",
    "source vanished": "restore the source files (or update the table) and re-run",
    "source unreadable": "make the source files readable and re-run",
}
STRICT_ENV = "BIDSPORT_STRICT"
# A series is installed only while this much stays free on the output's disk: the
# room every other series needs to record its outcome (manifest, log) and the
# dataset step its report, so a full disk fails series one by one, in one line
# each, and never stops the run.
RECORD_MARGIN = 2 << 20


class MachineFault(RuntimeError):
    """A fault of the machine; ``str()`` is the one-line reason."""


def strict() -> bool:
    """Whether bidsport's own exceptions must propagate (``BIDSPORT_STRICT=1``, set by
    the tests), rather than fail only their series."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def free_space(path: Path) -> int | None:
    """Free bytes of the filesystem holding ``path`` (or its nearest existing parent)."""
    for folder in (Path(path), *Path(path).parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def check_room(scratch: Path, output_dir: Path) -> None:
    """Raise the disk-full fault when the output's disk is down to its last
    ``RECORD_MARGIN`` (called with the series ready in scratch, before installing)."""
    free = free_space(scratch)
    if free is not None and free < RECORD_MARGIN:
        raise MachineFault(disk_full(output_dir, free))


def disk_full(output_dir: Path, free: int | None = None, quota: bool = False) -> str:
    free = free_space(output_dir) if free is None else free
    shown = "unknown" if free is None else human_size(free)
    label = "quota exceeded" if quota else "disk full"
    return f"{label}: no room left to write to {output_dir} ({shown} free)"


def _within(path: str | None, root: Path) -> bool:
    if not path:
        return False
    try:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))
    except (TypeError, ValueError):
        return False


def describe(exc: OSError, output_dir: Path) -> str | None:
    """The one-line reason for an OSError that is a machine fault, else None.

    Output-side faults are told by errno (ENOSPC, EDQUOT, EROFS) or by the path
    being inside ``output_dir``; any other missing or unreadable path is a source.
    """
    code = exc.errno
    if code == errno.ENOSPC:
        return disk_full(output_dir)
    if code == errno.EDQUOT:
        return disk_full(output_dir, quota=True)
    if code == errno.EROFS:
        return f"output read-only: cannot write to {output_dir} (read-only filesystem)"
    name = exc.filename if isinstance(exc.filename, str) else None
    other = exc.filename2 if isinstance(exc.filename2, str) else None
    on_output = _within(name, output_dir) and not (other and not _within(other, output_dir))
    if code == errno.ENOENT:
        if on_output or not Path(output_dir).is_dir():
            return f"output vanished: {name or output_dir} no longer exists (folder deleted or unmounted?)"
        return f"source vanished: {name} no longer exists (removed after planning?)"
    if code in (errno.EACCES, errno.EPERM):
        if on_output:
            return f"output read-only: cannot write {name} ({exc.strerror})"
        return f"source unreadable: {name} ({exc.strerror})"
    if code == errno.EIO:
        side = "output" if on_output else "source"
        return f"{side} unreadable: {name} (I/O error)" if side == "source" else f"output vanished: {name} (I/O error)"
    return None


def kind_of(reason: str) -> str | None:
    """The machine fault a report reason names (a ``KINDS`` label), if any; a
    series' reasons are ``part: reason`` joined by ``; `` (report.merge_manifests)."""
    for piece in reason.split("; "):
        for head in piece.split(": ", 2)[:2]:
            if head.strip() in KINDS:
                return head.strip()
    return None


def summary_lines(reasons: list[str]) -> list[str]:
    """One line per machine fault hit in this run, with how many series it failed."""
    seen: dict[str, list[str]] = {}
    for reason in reasons:
        kind = kind_of(reason)
        if kind:
            seen.setdefault(kind, []).append(reason[reason.index(kind):].split("; ")[0])
    return [f"bidsport: {hits[0]} — {len(hits)} series failed; {KINDS[kind]}" for kind, hits in seen.items()]
