"""Guards that keep sources and unrelated files safe.

* The output folder may never be inside ``dicom_root`` (bidsport never writes
  under the sources), nor contain it when ``overwrite: clean`` empties it.
* ``clean`` refuses a filesystem root, a home directory, and a folder holding
  anything that does not look like a previous bidsport export; it then deletes
  only inside the output folder.
* One run at a time per output folder: an exclusive lock held by the main
  Snakemake process (different working directories share no Snakemake lock).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from .layout import STATE_DIR
# Top-level names a bidsport export (BIDS or flat) may hold.
EXPORT_NAMES = {
    "dataset_description.json", "participants.tsv", "participants.json", "sessions.json", "README", "README.md",
    "CHANGES", ".bidsignore", STATE_DIR, "code", "sourcedata",
}  # fmt: skip


class SafetyError(RuntimeError):
    pass


def _within(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def check_output_location(output_dir: Path, dicom_root: Path) -> None:
    if _within(output_dir, dicom_root):
        raise SafetyError(
            f"output_dir {output_dir} is inside dicom_root {dicom_root}: bidsport never writes "
            "under the sources; choose an output folder outside it"
        )


def clean_refusal(output_dir: Path, dicom_root: Path) -> str | None:
    """Why ``clean`` must not empty ``output_dir`` (None when it may)."""
    out = output_dir.resolve()
    if out == Path(out.anchor):
        return f"{out} is a filesystem root"
    home = Path.home().resolve()
    if out == home or out.parent == Path("/home") or out == Path("/root"):
        return f"{out} is a home directory"
    if _within(dicom_root, out):
        return f"{out} contains dicom_root {dicom_root}"
    if not out.exists():
        return None
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return None
    foreign = [n for n in entries if n not in EXPORT_NAMES and not n.startswith("sub-")]
    if not (out / STATE_DIR).is_dir():
        return f"{out} is not empty and holds no previous bidsport export ({STATE_DIR}/ is missing)"
    if foreign:
        return f"{out} holds files that are not part of a bidsport export: {', '.join(foreign[:10])}"
    return None


def clean_output(output_dir: Path, dicom_root: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Empty ``output_dir`` (except ``keep``, relative paths); refuse unsafe targets."""
    reason = clean_refusal(output_dir, dicom_root)
    if reason:
        raise SafetyError(f"overwrite: clean refused, nothing was deleted: {reason}")
    removed = []
    if not output_dir.exists():
        return removed
    keep_paths = {(output_dir / k).resolve() for k in keep}
    for entry in sorted(output_dir.iterdir()):
        if entry.resolve() in keep_paths:
            continue
        if entry.is_dir() and not entry.is_symlink():
            if any(k.is_relative_to(entry.resolve()) for k in keep_paths):
                clean_output_children(entry, keep_paths)
                continue
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def clean_output_children(folder: Path, keep_paths: set[Path]) -> None:
    for entry in folder.iterdir():
        if entry.resolve() in keep_paths or any(k.is_relative_to(entry.resolve()) for k in keep_paths):
            if entry.is_dir() and entry.resolve() not in keep_paths:
                clean_output_children(entry, keep_paths)
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def check_output_writable(output_dir: Path) -> None:
    """Fail at once, without writing anything, if ``output_dir`` cannot be written:
    a file in its place, or a folder (or nearest existing parent) not writable."""
    for folder in (output_dir, *output_dir.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise SafetyError(f"cannot write to output_dir {output_dir}: Not a directory ({folder} is a file)")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise SafetyError(f"cannot write to output_dir {output_dir}: Permission denied ({folder})")
            return


_held: list = []  # open lock files, kept for the life of the process


def lock_output(output_dir: Path) -> Path:
    """Take the output folder's lock or fail at once with a clear message."""
    state = output_dir / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        path = state / "lock"
        handle = open(path, "a+")
    except OSError as exc:
        raise SafetyError(f"cannot write to output_dir {output_dir}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise SafetyError(
            f"another bidsport run is exporting to {output_dir} ({holder}); wait for it to finish"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    handle.flush()
    _held.append(handle)
    return path
