"""Export one series: the body of the per-series DAG node (:func:`run_job`).

``PART`` is ``nifti`` (dcm2niix; rule ``convert_series``) or ``dicom`` (copies;
rule ``copy_series``): one DAG node each, sharing one spec.

* Converts (dcm2niix) or copies into a scratch folder on the same filesystem, then
  renames each finished file into place, so no partial file is ever visible under a
  final name and a killed job leaves only scratch behind.
* Never writes under the source folder; never writes outside ``OUTPUT_DIR``.
* Always ends by writing the manifest (status ``exported``, ``skipped`` or
  ``failed`` with the reason), so one bad series never stops the others and the
  export report can account for it. The next run marks the job of a failed
  manifest forced (``workflow_support.force_if_stale``), so the series is retried.
* Faults of the machine (full disk, vanished source ...) fail the series in one
  line (:mod:`bidsport.faults`); bidsport's own bugs keep their traceback in the
  series log.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
import traceback
from pathlib import Path

from . import dcm2niix as d2n
from . import bids_schema, faults, images, naming, sidecars, stacks
from .dicom_scan import Scan, absent_message, scan_series, stack_files
from .fsutil import folder_size, write_if_changed

NIFTI_EXTS = (".nii.gz", ".nii")
COMPANION_EXTS = (".json", ".bval", ".bvec")
STATE_DIR = ".bidsport"


class SeriesFailed(RuntimeError):
    pass


class NotExported(RuntimeError):
    """What the images are has no place in the dataset (the report says why)."""


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


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _stat_sig(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------- NIfTI


def collect_outputs(scratch: Path, filename: str = "series") -> dict[str, list[Path]]:
    """dcm2niix outputs grouped by postfix: ``{"_e1": [nii, json], "": [...]}``."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(scratch.iterdir()):
        name = path.name
        if not name.startswith(filename):
            continue
        ext = next((e for e in NIFTI_EXTS + COMPANION_EXTS if name.endswith(e)), None)
        if ext is None:
            continue
        groups.setdefault(name[len(filename) : -len(ext)], []).append(path)
    # Keep only groups that hold an image: a stray sidecar is not an output.
    return {k: v for k, v in groups.items() if any(p.name.endswith(NIFTI_EXTS) for p in v)}


def convert_alone(dcm2niix: str, source: Path, uid: str, out: Path, compress: bool, timeout: float | None):
    """Convert all of ``source`` with outputs named ``series_<SeriesInstanceUID>…``:
    (result, this series' output groups, names of other series' images). Other
    series' outputs are deleted; where none is named by our UID, all are kept.

    dcm2niix's ``%j`` is not always the UID: for Siemens XA classic
    ("interoperability") exports it is the SeriesTime, under which dcm2niix merges
    the series such an export splits a run into. No group is then found, and the
    caller takes the exact path (the series' own files, by header), reusing these
    outputs where the folder turns out to hold only this series
    (:func:`outputs_of_one_series`)."""
    out.mkdir(parents=True)
    prefix = f"series_{uid}"
    result = d2n.convert(dcm2niix, source, out, compress=compress, filename="series_%j", timeout=timeout)
    groups = collect_outputs(out, prefix)
    strangers = sorted(p.name for p in out.iterdir() if p.name.endswith(NIFTI_EXTS) and not _named_for(p.name, prefix))
    if groups:
        for path in out.iterdir():
            if not _named_for(path.name, prefix):
                path.unlink()
    return result, groups, strangers


def outputs_of_one_series(out: Path) -> dict[str, list[Path]]:
    """The output groups of a ``series_%j`` conversion whose images all carry the
    same ``%j`` value (one series, named by something else than its UID); {} if
    they carry several or none."""
    values = set()
    for path in out.iterdir():
        ext = next((e for e in NIFTI_EXTS if path.name.endswith(e)), None)
        if ext and path.name.startswith("series_"):
            values.add(path.name[len("series_") : -len(ext)].split("_", 1)[0])
    return collect_outputs(out, f"series_{values.pop()}") if len(values) == 1 else {}


def _named_for(name: str, prefix: str) -> bool:
    """Whether a dcm2niix output is ``prefix`` + postfix (``_e2``, ``_ph``, ``a`` …) +
    extension: a UID that merely starts with ours (``1.2.3`` vs ``1.2.34``) is not."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return not (rest[:1].isdigit() or (rest[:1] == "." and rest[1:2].isdigit()))


def sidecar_facts(groups: dict[str, list[Path]]) -> dict[str, images.OutputFacts]:
    """postfix → what each output is, from its sidecar (its postfix where it has none)."""
    facts = {}
    for postfix, files in groups.items():
        sidecar = next((p for p in files if p.name.endswith(".json")), None)
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar else {}
        except (OSError, ValueError):
            data = {}
        facts[postfix] = images.output_facts(postfix, data)
    return facts


def _matches(output: images.OutputFacts, stack: dict) -> bool:
    """Whether a converted image is what the stack's columns say the stack holds."""
    if "echo_time" in stack and output.echo_time is not None:
        if abs(output.echo_time - float(stack["echo_time"])) > max(stacks.ECHO_TOLERANCE_MS, 0.005 * stack["echo_time"]):
            return False
    wanted = stacks.image_part(stack.get("image_type"))
    if wanted and (output.part or "mag") != wanted:
        return False
    if "image_orientation" in stack and output.orientation:
        if output.orientation != str(stack["image_orientation"]).lower():
            return False
    return True


def select_stack(groups: dict[str, list[Path]], spec: dict, facts: dict[str, images.OutputFacts]) -> dict[str, list[Path]]:
    """For one stack of a multi-stack series, keep the outputs that are that stack:
    matched by what the stack's columns say it holds (echo time, ImageType,
    orientation) against each output's sidecar, never by order."""
    n = int(spec.get("n_stacks") or 1)
    stack = spec.get("stack") or {}
    if n <= 1:
        return groups
    if not stack:
        return _select_by_index(groups, spec)
    chosen = {p: files for p, files in groups.items() if _matches(facts[p], stack)}
    if not chosen:
        raise SeriesFailed(
            f"none of the {len(groups)} image(s) dcm2niix wrote for this series is stack {spec.get('stack_index', 0)} "
            f"({_describe_stack(stack)}): it wrote {'; '.join(_describe_output(facts[p]) for p in sorted(groups))}"
        )
    return chosen


def _describe_stack(stack: dict) -> str:
    shown = [f"echo time {stack['echo_time']:g} ms" if "echo_time" in stack else "",
             f"ImageType {stack['image_type']}" if stack.get("image_type") else "",
             f"orientation {stack['image_orientation']}" if stack.get("image_orientation") else ""]  # fmt: skip
    return ", ".join(x for x in shown if x) or "no stack columns"


def _describe_output(f: images.OutputFacts) -> str:
    echo = f"echo time {f.echo_time:g} ms" if f.echo_time is not None else "no echo time"
    return f"{f.postfix or '(plain)'}: {echo}, {f.part or 'mag'}" + (f", {f.orientation}" if f.orientation else "")


def _select_by_index(groups: dict[str, list[Path]], spec: dict) -> dict[str, list[Path]]:
    """A table without stack columns: echoes (``multi_echo``) or sorted postfixes
    taken in stack order, the plan's warning says so."""
    n = int(spec.get("n_stacks") or 1)
    index = int(spec.get("stack_index") or 0)
    postfixes = sorted(groups)
    if spec.get("stack_key") == "multi_echo":
        echoes = sorted({images.output_facts(p).echo or 0 for p in postfixes})
        if len(echoes) == n:
            wanted = echoes[index]
            return {p: groups[p] for p in postfixes if (images.output_facts(p).echo or 0) == wanted}
    if len(postfixes) == n:
        return {postfixes[index]: groups[postfixes[index]]}
    if len(postfixes) % n == 0:  # e.g. 2 stacks × (mag, phase)
        per = len(postfixes) // n
        chosen = postfixes[index * per : (index + 1) * per]
        return {p: groups[p] for p in chosen}
    raise SeriesFailed(
        f"the table lists {n} stacks for this series but dcm2niix wrote {len(postfixes)} "
        f"outputs ({', '.join(p or '(plain)' for p in postfixes)}); cannot tell which is stack {index} "
        "(give the stack columns stack_echo_time / stack_image_type)"
    )


def plan_nifti_files(spec: dict, groups: dict[str, list[Path]], facts: dict[str, images.OutputFacts] | None = None) -> list[tuple[Path, str]]:
    """(scratch file, destination relative to output_dir) for every output file."""
    series_name = naming.SeriesName(
        datatype=spec["datatype"],
        suffix=spec["suffix"],
        entities=tuple(tuple(e) for e in spec["entities"]),
        subfolder=spec.get("subfolder"),
        tail=spec.get("tail", ""),
        role=spec.get("role", "image"),
        kind=spec.get("kind", "raw"),
        multi_suffix=spec.get("multi_suffix", ""),
    )
    facts = facts if facts is not None else sidecar_facts(groups)
    names = naming.name_outputs(series_name, {p: facts[p] for p in groups})
    moves: list[tuple[Path, str]] = []
    for postfix, files in groups.items():
        out = names[postfix]
        stem = naming.stem(spec["subject"], spec.get("session"), out.entities, out.suffix, out.tail, spec.get("run"))
        for path in files:
            ext = next(e for e in NIFTI_EXTS + COMPANION_EXTS if path.name.endswith(e))
            moves.append((path, "/".join(p for p in (spec["nifti_dir"], stem + ext) if p)))
    return moves


def _modality(path: str) -> str | None:
    """The file's DICOM Modality (one header read), or None if it does not say."""
    try:
        import pydicom

        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality")
    except Exception:  # noqa: BLE001 - unreadable here: dcm2niix or the copy will say
        return None
    return str(value).upper() if value else None


def _without_extension(rel: str) -> str:
    ext = next((e for e in NIFTI_EXTS + COMPANION_EXTS if rel.endswith(e)), "")
    return rel[: len(rel) - len(ext)]


def direction_warnings(spec: dict, moves: list[tuple[Path, str]]) -> list[str]:
    """Say so where the planned ``dir-`` and the image's phase encoding disagree."""
    planned = dict(map(tuple, spec.get("entities", []))).get("dir")
    if not planned or any(f"_dir-{planned}_" not in Path(rel).name for _, rel in moves):
        return []  # no planned direction, or outputs named by their own directions
    for src, rel in moves:
        if not rel.endswith(".json"):
            continue
        try:
            data = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = images.dir_label(data.get("PhaseEncodingDirection"), data.get("ImageOrientationPatientDICOM"))
        if found and found != planned:
            return [f"named dir-{planned} (as planned), but the image encodes {found} "
                    f"(PhaseEncodingDirection {data['PhaseEncodingDirection']}): check the table"]  # fmt: skip
        return []
    return []


# --------------------------------------------------------------------------- DICOM


def _symlink_folder(files: list[str], folder: Path) -> Path:
    """A folder of links to just this series' files, for dcm2niix to convert."""
    folder.mkdir(parents=True)
    for i, path in enumerate(files):
        os.symlink(os.path.abspath(path), folder / f"{i:06d}_{os.path.basename(path)}")
    return folder


def listed_files(spec: dict) -> Scan:
    """The stack's exact files (spec ``files``); every one must exist: a listed file
    that is missing fails the series (naming it) rather than exporting part of it."""
    files = [str(f) for f in spec["files"]]
    if not files:
        raise SeriesFailed(f"no file is listed for series {spec['series_instance_uid']} stack {spec.get('stack_index', 0)} (instances table)")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise faults.MachineFault(f"source vanished: {len(missing)} of the {len(files)} listed DICOM file(s) of this stack are missing: {missing[0]}{more}")
    return Scan(files=files, pure=False)


def stack_copy(spec: dict, files: list[str], warnings: list[str]) -> list[str]:
    """The files of this row's stack, where the series has several and the table
    says what this one holds (``spec["stack"]``): a DICOM copy holds only its own
    stack. Multi-frame files that hold several stacks are copied with a warning."""
    stack = spec.get("stack")
    if int(spec.get("n_stacks") or 1) <= 1 or not stack:
        return files
    try:
        picked = stack_files(files, stack)
    except ValueError as exc:
        raise SeriesFailed(f"stack {spec.get('stack_index', 0)}: {exc}") from None
    if not picked.files and not picked.undecidable:
        raise SeriesFailed(f"stack {spec.get('stack_index', 0)} of series {spec['series_instance_uid']}: {picked.note}")
    if picked.note:
        warnings.append(f"DICOM copy of stack {spec.get('stack_index', 0)}: {picked.note}" + (" (copied whole)" if picked.undecidable else ""))
    keep = set(picked.files + picked.undecidable)
    return [f for f in files if f in keep]


def _is_split(spec: dict) -> bool:
    """One stack of several, which the table describes (its columns pick its images)."""
    return int(spec.get("n_stacks") or 1) > 1 and bool(spec.get("stack"))


def _own_stack_files(spec: dict, files: list[str]) -> list[str] | None:
    """This stack's files, where the headers tell them apart cleanly, so that dcm2niix
    converts only them; None (convert the whole series, then pick the stack's outputs
    by their sidecars) where they do not: multi-frame files, or no file matches."""
    if not _is_split(spec):
        return None
    try:
        picked = stack_files(files, spec["stack"])
    except ValueError:
        return None  # select_stack gives the clear error on the outputs
    return picked.files if picked.files and not picked.undecidable else None


def _file_list(files: list[str], scratch: Path) -> Path:
    """dcm2niix input restricted to ``files``: a text file listing them (read with
    ``-s y``, which dcm2niix.convert adds for a file); same output as the folder."""
    if any("\n" in str(f) for f in files):  # a name a list cannot hold
        return _symlink_folder(files, scratch / "src")
    listing = scratch / "files.txt"
    listing.write_text("".join(f"{os.path.abspath(f)}\n" for f in files), encoding="utf-8")
    return listing


def copy_files(files: list[str], dest: Path, method: str, workers: int) -> None:
    """Copy (or hardlink/reflink, falling back to a copy) ``files`` flat into ``dest``.

    One ``cp`` process per batch of files (coreutils: copy_file_range/FICLONE, no
    Python loop per file): a 2,160-file series is copied or linked in one process.
    Only when two files share a name (nested source folders) does the per-file
    loop below run, to give the later ones an index prefix.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if len({os.path.basename(src) for src in files}) == len(files) and _cp_files(files, dest, method):
        return
    _copy_each(files, dest, method, workers)


# cp flags per method: links and clones fall back to a byte copy where refused.
# No --preserve: cp gives each copy its source's mode bits (less the umask), as
# `cp -r` does; preserving also copies ACLs, an fgetxattr + fsetxattr per file.
_CP_FLAGS = {"copy": ["--reflink=never"], "reflink": ["--reflink=auto"], "hardlink": ["--link"]}
_ARGV_BUDGET = 96 * 1024  # bytes of file names per cp call (far below ARG_MAX)


def cp_flags(method: str, dest: Path) -> list[str]:
    """A ``copy`` into a filesystem that cannot clone files lets cp copy in the
    kernel (copy_file_range: no read/write through a buffer, about a third less
    system CPU); where clones are possible, copy_file_range may clone, so a
    ``copy`` stays a byte copy (--reflink=never), as the method promises."""
    if method == "copy" and not can_clone(dest):
        return ["--reflink=auto"]
    return _CP_FLAGS.get(method, _CP_FLAGS["copy"])


_CLONE_CAPABLE: dict[int, bool] = {}


def can_clone(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` clones files (FICLONE), probed once per
    device in ``folder`` (which must exist and be writable)."""
    device = os.stat(folder).st_dev
    if device not in _CLONE_CAPABLE:
        probe_src = folder / f".clone-probe-{os.getpid()}-{threading.get_ident()}"
        probe_dst = probe_src.with_suffix(".dst")
        try:
            probe_src.write_bytes(b"\0" * 4096)
            _CLONE_CAPABLE[device] = _reflink(probe_src, probe_dst)
        except OSError:
            _CLONE_CAPABLE[device] = True  # unknown: keep the byte copy
        finally:
            probe_src.unlink(missing_ok=True)
            probe_dst.unlink(missing_ok=True)
    return _CLONE_CAPABLE[device]


def _cp_files(files: list[str], dest: Path, method: str) -> bool:
    """``cp`` the files into ``dest`` in batches; False (dest emptied) if cp refused,
    e.g. a hardlink across filesystems, so that the caller copies file by file."""
    import subprocess

    flags = cp_flags(method, dest)
    batch: list[str] = []
    size = 0
    batches = []
    for src in files:
        name = str(src)
        if batch and size + len(name) > _ARGV_BUDGET:
            batches.append(batch)
            batch, size = [], 0
        batch.append(name)
        size += len(name) + 1
    if batch:
        batches.append(batch)
    for names in batches:
        proc = subprocess.run(["cp", *flags, "-t", str(dest), "--", *names], capture_output=True)
        if proc.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            return False
    return True


def _copy_each(files: list[str], dest: Path, method: str, workers: int) -> None:
    used: set[str] = set()
    jobs = []
    for i, src in enumerate(files):
        base = os.path.basename(src)
        name = base if base not in used else f"{i:05d}_{base}"
        used.add(name)
        jobs.append((src, dest / name))

    def one(pair):
        src, dst = pair
        if method == "hardlink":
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        elif method == "reflink" and _reflink(src, dst):
            return
        shutil.copyfile(src, dst)
        shutil.copymode(src, dst)

    # Threads help real copies (I/O waits); links and clones are metadata-only.
    if workers > 1 and len(jobs) > 8 and method == "copy":
        from concurrent.futures import ThreadPoolExecutor  # only copies need threads

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, jobs))
    else:
        for pair in jobs:
            one(pair)


def _reflink(src: Path, dst: Path) -> bool:
    """Copy-on-write clone (FICLONE) where the filesystem supports it."""
    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), 0x40049409, fin.fileno())  # FICLONE
        return True
    except (OSError, ImportError):
        try:
            os.unlink(dst)
        except FileNotFoundError:
            pass
        return False


# --------------------------------------------------------------------------- install


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

    def install_file(self, src: Path, rel: str) -> None:
        target = inside(self.output_dir, rel)
        if target.exists() and self.mode == "skip" and not self._ours(rel):
            self.skipped.append(rel)
            self.installed.append({"path": rel, "status": "skipped", "sig": None})
            return
        if self.mode != "overwrite" and _same_content(src, target):
            # Re-running a series (e.g. to restore a deleted file) leaves its
            # identical files alone: same bytes, same mtime.
            self.installed.append({"path": rel, "status": "exported", "sig": _stat_sig(target)})
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, target)  # atomic on one filesystem
        self.installed.append({"path": rel, "status": "exported", "sig": _stat_sig(target)})

    def install_dir(self, src: Path, rel: str) -> None:
        target = inside(self.output_dir, rel)
        if target.exists() and self.mode == "skip" and not self._ours(rel):
            self.skipped.append(rel)
            self.installed.append({"path": rel, "status": "skipped", "sig": None})
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            trash = src.parent / f"old-{target.name}"
            os.replace(target, trash)
            os.replace(src, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(src, target)
        self.installed.append({"path": rel, "status": "exported", "sig": _stat_sig(target)})

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
            if _stat_sig(target) == sig:  # still ours: nobody replaced it since
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
                removed.append(rel)
        return removed


def export(spec: dict, part: str, output_dir: Path, *, dcm2niix: str | None, copy_method: str, copy_workers: int, timeout: float | None) -> dict:
    key = spec["key"]
    # pid and thread: jobs run as threads of one Snakemake process, or as processes
    scratch = output_dir / STATE_DIR / "tmp" / f"{key}.{part}.{os.getpid()}.{threading.get_ident()}"
    shutil.rmtree(scratch, ignore_errors=True)
    previous = _read_json(ledger_path(output_dir, key, part))
    installer = Installer(output_dir, spec.get("overwrite", "skip"), previous)
    manifest = {"key": key, "part": part, "status": "failed", "files": [], "message": "", "warnings": [], "seconds": 0.0}
    started = time.monotonic()
    source = Path(spec["source"])
    listed = "files" in spec  # exact files from the instances table / NILS database
    try:
        scratch.mkdir(parents=True)  # a read-only or full output fails here: the series, in one line
        if not listed and not source.exists():  # it did when the plan was made
            raise faults.MachineFault(f"source vanished: {source} no longer exists (removed after planning?)")
        nifti = next((f for f in spec["formats"] if f in ("nii", "nii.gz")), None) if part == "nifti" else None
        copy_dicom = part == "dicom" and bool(spec.get("dicom_dir"))
        if part == "nifti" and not nifti or part == "dicom" and not copy_dicom:
            raise SeriesFailed(f"the plan has no {part} output for this series")
        if nifti and not dcm2niix:
            raise SeriesFailed("no dcm2niix binary was given")
        uid = spec["series_instance_uid"]
        result = groups = alone = None
        if nifti and spec.get("source_alone") and not _is_split(spec):
            # No other series of the table is in or under source: convert it without
            # reading every header first. dcm2niix names each output by its series
            # UID (%j), so a series the table does not list is told apart and left out.
            result, groups, strangers = convert_alone(dcm2niix, source, uid, scratch / "nii-alone", nifti == "nii.gz", timeout)
            if groups and strangers:
                manifest["warnings"].append(f"{source} also holds {len(strangers)} image(s) of series not in the table: left out")
            elif not groups and result.returncode is not None:  # none named by our UID: take the exact path
                alone, result = result, None
        scan = None
        if result is None:
            # Also the fallback when dcm2niix named no output by our UID (convert_alone).
            scan = listed_files(spec) if listed else scan_series(source, uid)
            if scan.unreadable:
                manifest["warnings"].append(unreadable_text(scan.unreadable, source))
                if copy_dicom:  # a copy without them would pass for the whole series
                    raise faults.MachineFault(f"source unreadable: {unreadable_text(scan.unreadable, source)}")
            if not scan.files:
                raise SeriesFailed(absent_message(scan, uid, source))
            modality = _modality(scan.files[0])
            if modality and modality != "MR":
                raise NotExported(f"not an MR image (Modality {modality}): never exported into an MRI dataset")
        if nifti:
            if result is None and alone is not None and scan.pure:
                # The folder holds only this series: the first conversion's outputs
                # are all its own, whatever dcm2niix named them by.
                groups = outputs_of_one_series(scratch / "nii-alone")
                result = alone if groups else None
            elif alone is not None and scan.others:
                manifest["warnings"].append(f"{source} also holds {sum(scan.others.values())} file(s) of series not in the table: left out")
            if result is None:
                out = scratch / "nii"
                out.mkdir()
                if listed:
                    convert_from = _file_list(scan.files, scratch)
                else:
                    own = _own_stack_files(spec, scan.files)  # None: convert the whole series
                    pure = scan.pure and own is None
                    convert_from = source if pure else _symlink_folder(own or scan.files, scratch / "src")
                result = d2n.convert(dcm2niix, convert_from, out, compress=(nifti == "nii.gz"), timeout=timeout)
                groups = collect_outputs(out)
            manifest["dcm2niix_output"] = result.output[-4000:]
            if result.returncode is None:
                raise SeriesFailed(f"dcm2niix timed out after {timeout:g} s")
            if not groups:
                if result.returncode != 0 and _short_of_space(scratch, source):
                    raise faults.MachineFault(faults.disk_full(output_dir))
                raise SeriesFailed(f"dcm2niix wrote no image for this series (exit {result.returncode}): {result.message}")
            if result.returncode not in (0,):
                # dcm2niix exits non-zero for partial problems too; its images still count,
                # but the message goes to the report.
                manifest["warnings"].append(f"dcm2niix exit {result.returncode}: {result.message}")
            facts = sidecar_facts(groups)
            not_mr = sorted({f.modality for f in facts.values() if f.modality and f.modality != "MR"})
            if not_mr:
                raise NotExported(f"not an MR image (Modality {', '.join(not_mr)}): never exported into an MRI dataset")
            if not listed:  # listed files are this stack's own: every output is its
                groups = select_stack(groups, spec, facts)
            moves = plan_nifti_files(spec, groups, facts)
            manifest["acquired"] = next((facts[p].acquired for p in sorted(groups) if facts[p].acquired), None)
            sidecar_warnings, incomplete = sidecars.fix_sidecars(spec, moves)
            manifest["warnings"] += sidecar_warnings + direction_warnings(spec, moves)
        if copy_dicom:
            dcm_scratch = scratch / "dcm"
            copy = scan.files if listed else stack_copy(spec, scan.files, manifest["warnings"])
            copy_files(copy, dcm_scratch, copy_method, copy_workers)
        # Everything is ready in scratch: now, and only now, touch the dataset. The
        # ledger names what is about to be installed first, so that a job killed
        # half-way recognises these files as its own next time (not as foreign
        # files that `overwrite: skip` must keep).
        faults.check_room(scratch, output_dir)  # else the full disk would stop the series still to run
        about_to_install = ([rel for _, rel in moves] if nifti else []) + ([spec["dicom_dir"]] if copy_dicom else [])
        _announce(output_dir, key, part, previous, about_to_install)
        if nifti:
            for src, rel in moves:
                installer.install_file(src, rel)
                if _without_extension(rel) in incomplete:
                    installer.installed[-1]["incomplete"] = True  # → .bidsignore
        if copy_dicom:
            installer.install_dir(dcm_scratch, spec["dicom_dir"])
        manifest["removed"] = installer.remove_stale()
        manifest["status"] = "skipped" if installer.skipped and len(installer.skipped) == len(installer.installed) else "exported"
        if installer.skipped:
            manifest["warnings"].append(f"kept {len(installer.skipped)} existing file(s) (overwrite: skip)")
    except NotExported as exc:
        manifest["status"] = "excluded"
        manifest["message"] = str(exc)
    except (SeriesFailed, faults.MachineFault) as exc:
        manifest["message"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one series must never stop the others
        fault = faults.describe(exc, output_dir) if isinstance(exc, OSError) else None
        if fault:  # the machine's fault: one line, no traceback
            manifest["message"] = fault
        else:  # bidsport's own: the traceback goes to the series log (run_job)
            manifest["message"] = f"{type(exc).__name__}: {exc}"
            manifest["traceback"] = traceback.format_exc()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    manifest["files"] = installer.installed
    manifest["seconds"] = round(time.monotonic() - started, 3)
    if installer.installed or manifest["status"] != "failed":
        ledger = {"key": key, "files": [f for f in installer.installed if f["status"] == "exported"] + _kept(previous, installer)}
        try:
            write_if_changed(ledger_path(output_dir, key, part), json.dumps(ledger, indent=1) + "\n")
        except OSError as exc:  # the files are in place; the next run re-checks them
            manifest["status"], manifest["message"] = "failed", faults.describe(exc, output_dir) or str(exc)
    return manifest


def _short_of_space(scratch: Path, source: Path) -> bool:
    """Whether a failed conversion is best explained by a full disk: less room left
    than the series' sources take (dcm2niix deletes what it could not finish)."""
    free = faults.free_space(scratch)
    return free is not None and free < max(folder_size(source), faults.RECORD_MARGIN)


def unreadable_text(paths: list[str], source: Path) -> str:
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{len(paths)} file(s) or folder(s) under {source} could not be read: {', '.join(paths[:3])}{more}"


def _announce(output_dir: Path, key: str, part: str, previous: dict | None, paths: list[str]) -> None:
    files = list((previous or {}).get("files", []))
    known = {f["path"] for f in files}
    files += [{"path": rel, "status": "exported", "sig": None} for rel in paths if rel not in known]
    write_if_changed(ledger_path(output_dir, key, part), json.dumps({"key": key, "files": files}, indent=1) + "\n")


def _kept(previous: dict | None, installer: Installer) -> list[dict]:
    """Previous files of ours that a skip left in place stay in the ledger."""
    exported = {f["path"] for f in installer.installed if f["status"] == "exported"}
    return [f for f in (previous or {}).get("files", []) if f["path"] in installer.skipped and f["path"] not in exported]


RECORD_ATTEMPTS = 6


def _record(manifest: dict, manifest_path: Path, line: str, log_path: Path) -> None:
    """Write the manifest atomically, then the series log."""
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(f".{manifest_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, manifest_path)
    finally:
        tmp.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(line + "\n", encoding="utf-8")


def run_job(spec_path: Path, part: str, manifest_path: Path, output_dir: Path, log_path: Path) -> dict:
    """One series job: export, then write its manifest atomically and its log.

    Called in a thread of the Snakemake process (rules ``convert_series`` and
    ``copy_series``: no Python start-up per series). Settings
    that must not re-run finished series come from the environment
    (``workflow_support.export_job_environment``)."""
    spec_path, manifest_path, output_dir = Path(spec_path), Path(manifest_path), Path(output_dir)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    bids_schema.use_facts(output_dir / STATE_DIR / bids_schema.FACTS_FILE)  # else: load the schema
    manifest = export(
        spec,
        part,
        output_dir,
        dcm2niix=os.environ.get(d2n.ENV_VAR) or None,
        copy_method=os.environ.get("BIDSPORT_COPY_METHOD", "copy"),
        copy_workers=int(os.environ.get("BIDSPORT_COPY_WORKERS", "4")),
        timeout=float(os.environ.get("BIDSPORT_TIMEOUT", "0")) or None,
    )
    line = f"{spec['key']} {spec['stem']}: {manifest['status']}"
    if manifest["message"]:
        line += f": {manifest['message']}"
    if manifest.get("traceback"):  # a bug of bidsport: kept here until the series succeeds
        line += "\n" + manifest["traceback"]
    if manifest.get("dcm2niix_output"):
        line += "\n" + manifest["dcm2niix_output"]
    for attempt in range(RECORD_ATTEMPTS):
        try:
            _record(manifest, manifest_path, line, Path(log_path))
            break
        except OSError as exc:
            # A full disk: other jobs free their scratch as they fail; else say why in one line.
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or attempt == RECORD_ATTEMPTS - 1:
                raise faults.MachineFault(faults.describe(exc, output_dir) or f"cannot record series {spec['key']}: {exc}") from None
            time.sleep(0.2 * (attempt + 1))
    if manifest.get("traceback") and faults.strict():
        raise RuntimeError(f"bidsport bug in series {spec['key']} ({faults.STRICT_ENV}=1): {manifest['message']}\n{manifest['traceback']}")
    return manifest
