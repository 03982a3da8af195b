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
from . import bids_schema, faults, formats, sidecars
from .bids_files import split_extension
from .dicom_copy import copy_files
from .dicom_scan import absent_message, scan_series
from .fsutil import folder_size, write_if_changed
from .install import STATE_DIR, Installer, announce, kept_files, ledger_path, read_json
from .nifti_outputs import (
    collect_outputs,
    convert_alone,
    direction_warnings,
    outputs_of_one_series,
    plan_nifti_files,
    select_stack,
    sidecar_facts,
)
from .outcomes import NotExported, SeriesFailed
from .series_files import file_list, is_split, listed_files, own_stack_files, stack_copy, symlink_folder
from .workflow_support import job_environment

def _modality(path: str) -> str | None:
    """The file's DICOM Modality (one header read), or None if it does not say."""
    try:
        import pydicom

        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality")
    except Exception:  # noqa: BLE001 - unreadable here: dcm2niix or the copy will say
        return None
    return str(value).upper() if value else None

def export(spec: dict, part: str, output_dir: Path, *, dcm2niix: str | None, copy_method: str, copy_workers: int, timeout: float | None) -> dict:
    key = spec["key"]
    # pid and thread: jobs run as threads of one Snakemake process, or as processes
    scratch = output_dir / STATE_DIR / "tmp" / f"{key}.{part}.{os.getpid()}.{threading.get_ident()}"
    shutil.rmtree(scratch, ignore_errors=True)
    previous = read_json(ledger_path(output_dir, key, part))
    installer = Installer(output_dir, spec.get("overwrite", "skip"), previous)
    manifest = {"key": key, "part": part, "status": "failed", "files": [], "message": "", "warnings": [], "seconds": 0.0}
    started = time.monotonic()
    source = Path(spec["source"])
    listed = "files" in spec  # exact files from the instances table / NILS database
    try:
        scratch.mkdir(parents=True)  # a read-only or full output fails here: the series, in one line
        if not listed and not source.exists():  # it did when the plan was made
            raise faults.MachineFault(f"source vanished: {source} no longer exists (removed after planning?)")
        nifti = formats.nifti_of(spec["formats"]) if part == "nifti" else None
        copy_dicom = part == "dicom" and bool(spec.get("dicom_dir"))
        if part == "nifti" and not nifti or part == "dicom" and not copy_dicom:
            raise SeriesFailed(f"the plan has no {part} output for this series")
        if nifti and not dcm2niix:
            raise SeriesFailed("no dcm2niix binary was given")
        uid = spec["series_instance_uid"]
        result = groups = alone = None
        if nifti and spec.get("source_alone") and not is_split(spec):
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
            # The NIfTI part learns the Modality from dcm2niix's sidecars; a copy reads one header.
            modality = _modality(scan.files[0]) if not nifti else None
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
                    convert_from = file_list(scan.files, scratch)
                else:
                    own = own_stack_files(spec, scan.files)  # None: convert the whole series
                    pure = scan.pure and own is None
                    convert_from = source if pure else symlink_folder(own or scan.files, scratch / "src")
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
        announce(output_dir, key, part, previous, about_to_install)
        if nifti:
            for src, rel in moves:
                installer.install_file(src, rel)
                if split_extension(rel)[0] in incomplete:
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
        ledger = {"key": key, "files": [f for f in installer.installed if f["status"] == "exported"] + kept_files(previous, installer)}
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
        **job_environment(),
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
