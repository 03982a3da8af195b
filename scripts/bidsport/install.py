"""Installing a series' finished files into the dataset, and the ledger of what it wrote.

Files are renamed from scratch into place (atomic on one filesystem), honouring
``overwrite`` (skip / overwrite; clean empties the output before planning). The
ledger names what a series' job wrote last time, so that a re-run recognises its own
files (and a job killed half-way, which announced them first).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .fsutil import write_if_changed
from .outcomes import SeriesFailed


from .layout import STATE_DIR

def inside(root: Path, relative: str) -> Path:
    """``root/relative``, refusing anything that would leave ``root``."""
    if "\x00" in relative or relative.startswith(("/", "\\")):
        raise SeriesFailed(f"unsafe destination {relative!r}")
    target = (root / relative).resolve()
    base = root.resolve()
    if target != base and base not in target.parents:
        raise SeriesFailed(f"destination {relative!r} would leave the output folder")
    return target

def ledger_path(output_dir: Path, key: str, part: str) -> Path:
    """What a series' job wrote last time (persists while the manifest is rebuilt)."""
    return output_dir / STATE_DIR / "ledger" / f"{key}.{part}.json"

def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None

def stat_sig(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]

def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                chunk = fa.read(1 << 20)
                if chunk != fb.read(1 << 20):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False

class Installer:
    """Moves finished files from scratch into the dataset, honouring ``overwrite``."""

    def __init__(self, output_dir: Path, mode: str, previous: dict | None):
        self.output_dir = output_dir
        self.mode = mode
        self.previous = {f["path"]: f.get("sig") for f in (previous or {}).get("files", [])}
        self.installed: list[dict] = []
        self.skipped: list[str] = []

    def _ours(self, rel: str) -> bool:
        """Written by this series last time (the dataset step may have edited a
        sidecar since, e.g. fieldmap links, so the content may differ)."""
        return rel in self.previous

    def _keeps_foreign(self, target: Path, rel: str) -> bool:
        """``overwrite: skip`` keeps a file this series did not write (and says so)."""
        if target.exists() and self.mode == "skip" and not self._ours(rel):
            self.skipped.append(rel)
            self.installed.append({"path": rel, "status": "skipped", "sig": None})
            return True
        return False

    def install_file(self, src: Path, rel: str) -> None:
        target = inside(self.output_dir, rel)
        if self._keeps_foreign(target, rel):
            return
        if self.mode != "overwrite" and _same_content(src, target):
            # Re-running a series (e.g. to restore a deleted file) leaves its
            # identical files alone: same bytes, same mtime.
            self.installed.append({"path": rel, "status": "exported", "sig": stat_sig(target)})
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, target)  # atomic on one filesystem
        self.installed.append({"path": rel, "status": "exported", "sig": stat_sig(target)})

    def install_dir(self, src: Path, rel: str) -> None:
        target = inside(self.output_dir, rel)
        if self._keeps_foreign(target, rel):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            trash = src.parent / f"old-{target.name}"
            os.replace(target, trash)
            os.replace(src, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(src, target)
        self.installed.append({"path": rel, "status": "exported", "sig": stat_sig(target)})

    def remove_stale(self) -> list[str]:
        """Files this series wrote before under names it no longer uses."""
        now = {f["path"] for f in self.installed}
        removed = []
        for rel, sig in self.previous.items():
            if rel in now or sig is None:
                continue
            try:
                target = inside(self.output_dir, rel)
            except SeriesFailed:
                continue
            if stat_sig(target) == sig:  # still ours: nobody replaced it since
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
                removed.append(rel)
        return removed

def announce(output_dir: Path, key: str, part: str, previous: dict | None, paths: list[str]) -> None:
    files = list((previous or {}).get("files", []))
    known = {f["path"] for f in files}
    files += [{"path": rel, "status": "exported", "sig": None} for rel in paths if rel not in known]
    write_if_changed(ledger_path(output_dir, key, part), json.dumps({"key": key, "files": files}, indent=1) + "\n")

def kept_files(previous: dict | None, installer: Installer) -> list[dict]:
    """Previous files of ours that a skip left in place stay in the ledger."""
    exported = {f["path"] for f in installer.installed if f["status"] == "exported"}
    return [f for f in (previous or {}).get("files", []) if f["path"] in installer.skipped and f["path"] not in exported]
