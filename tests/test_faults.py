"""Faults of the machine are one line each and fail only their series; bidsport's
own bugs keep their traceback and fail loudly under BIDSPORT_STRICT (set for every
test by conftest.py). Real files, real series jobs (the DICOM copy part)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bidsport import faults
from bidsport.dicom_scan import scan_series
from bidsport.export_series import run_job
from bidsport.synthdicom import make_uid, spec_for, write_series
from bidsport.workflow_support import space_warning, summary
from helpers import small_filesystem

NOBODY = 65534


def test_errno_becomes_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    full = faults.describe(OSError(errno.ENOSPC, "No space left on device", str(out / "x.nii.gz")), out)
    assert full.startswith("disk full: no room left to write to ") and str(out) in full and " free)" in full
    assert faults.describe(OSError(errno.EDQUOT, "Disk quota exceeded"), out).startswith("quota exceeded: ")
    assert faults.describe(OSError(errno.EROFS, "Read-only file system"), out).startswith("output read-only: ")
    gone = faults.describe(FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "src" / "a.dcm")), out)
    assert gone == f"source vanished: {tmp_path / 'src' / 'a.dcm'} no longer exists (removed after planning?)"
    denied = faults.describe(PermissionError(errno.EACCES, "Permission denied", "/data/a.dcm"), out)
    assert denied == "source unreadable: /data/a.dcm (Permission denied)"
    assert faults.describe(FileNotFoundError(errno.ENOENT, "No such file", str(out / "sub-1")), out).startswith("output vanished: ")
    assert faults.describe(OSError(errno.EINVAL, "Invalid argument"), out) is None  # not the machine: a bug


def test_the_summary_says_a_machine_fault_once(tmp_path):
    report = tmp_path / "export_report.tsv"
    reason = "nifti: disk full: no room left to write to /out (1.0 MiB free)"
    rows = [
        {"subject": "P1", "session": "M00", "series_description": f"s{i}", "series_instance_uid": "", "status": "failed", "reason": reason, "warnings": ""}
        for i in range(3)
    ] + [{"subject": "P1", "session": "M00", "series_description": "ok", "series_instance_uid": "", "status": "exported", "reason": "", "warnings": ""}]
    report.write_text("\t".join(rows[0]) + "\n" + "".join("\t".join(r.values()) + "\n" for r in rows))
    text, failed = summary(report)
    assert failed == 3
    assert text.count("no room left") == 1
    assert "bidsport: disk full: no room left to write to /out (1.0 MiB free) — 3 series failed; free space on the output's disk and re-run" in text
    assert "FAILED P1/M00 s0 (disk full)" in text


def _series(root: Path, n: int = 3) -> tuple[Path, str]:
    written = write_series(root / "t1", spec_for("t1w", series_number=2, slices=n), patient_id="F-1",
                           study_uid=make_uid("faults", "F-1"), study_date="20240101", seed=1)  # fmt: skip
    return root / "t1", written.series_instance_uid


def _copy_spec(tmp_path: Path, source: Path, uid: str, **extra) -> Path:
    spec = {
        "key": "s0000000000000001", "stem": "sub-1_T1w", "formats": ["dcm"], "dicom_dir": "sourcedata/dicom/sub-1/T1w",
        "series_instance_uid": uid, "source": str(source), "overwrite": "skip", **extra,
    }  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_listed_source_file_that_vanished_fails_only_its_series(tmp_path):
    source, uid = _series(tmp_path / "in")
    files = sorted(str(p) for p in source.iterdir())
    os.unlink(files[1])  # removed after the plan listed it
    out = tmp_path / "out"
    manifest = run_job(_copy_spec(tmp_path, source, uid, files=files), "dicom", out / "m.json", out, out / "log")
    assert manifest["status"] == "failed"
    assert manifest["message"] == f"source vanished: 1 of the 3 listed DICOM file(s) of this stack are missing: {files[1]}"
    assert "traceback" not in manifest and not (out / "sourcedata").exists()  # nothing partial under a final name


def test_a_source_folder_that_vanished(tmp_path):
    source, uid = _series(tmp_path / "in")
    shutil.rmtree(source)
    out = tmp_path / "out"
    manifest = run_job(_copy_spec(tmp_path, source, uid), "dicom", out / "m.json", out, out / "log")
    assert manifest["message"] == f"source vanished: {source} no longer exists (removed after planning?)"


def as_nobody(work):
    """``work()`` in a forked child running as an unprivileged user (root ignores
    file permissions); returns what it returned (JSON-able)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, work, report, exit without cleanup
        code = 0
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = {"ok": work()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        os.write(write, json.dumps(result).encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result["ok"]


@pytest.fixture
def shared_tmp():
    """A folder an unprivileged user can reach (pytest's own is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a check as another user")
    folder = Path(tempfile.mkdtemp(prefix="bidsport-faults-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_files_and_folders_are_counted_and_a_copy_missing_them_fails(shared_tmp):
    source, uid = _series(shared_tmp / "in", n=4)
    for folder in (shared_tmp, shared_tmp / "in", source):
        folder.chmod(0o755)
    files = sorted(source.iterdir())
    for f in files:
        f.chmod(0o644)
    files[2].chmod(0o000)
    locked = source / "extra"
    locked.mkdir(mode=0o700)  # a folder nobody else may list
    out = shared_tmp / "out"
    out.mkdir()
    os.chown(out, NOBODY, NOBODY)
    spec = _copy_spec(shared_tmp, source, uid)
    spec.chmod(0o644)

    def work():
        scan = scan_series(source, uid)
        manifest = run_job(spec, "dicom", out / "m.json", out, out / "log")
        return {"files": len(scan.files), "unreadable": scan.unreadable, "manifest": manifest}

    result = as_nobody(work)
    assert result["files"] == 3 and sorted(result["unreadable"]) == sorted([str(files[2]), str(locked)])
    manifest = result["manifest"]
    assert manifest["status"] == "failed" and manifest["message"].startswith(f"source unreadable: 2 file(s) or folder(s) under {source} could not be read: ")
    assert str(files[2]) in manifest["message"] and "could not be read" in " ".join(manifest["warnings"])
    assert not (out / "sourcedata").exists()
    # Read as root, every file is there: scan_series reports nothing unreadable.
    assert scan_series(source, uid).unreadable == [] and len(scan_series(source, uid).files) == 4


def test_a_bug_keeps_its_traceback_in_the_series_log_and_fails_loudly_when_strict(tmp_path, monkeypatch):
    source, uid = _series(tmp_path / "in")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"key": "s0000000000000002", "stem": "x", "source": str(source), "series_instance_uid": uid}))  # no formats: a bug
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="bidsport bug in series s0000000000000002 .BIDSPORT_STRICT=1.: KeyError: 'formats'"):
        run_job(spec, "nifti", out / "m.json", out, out / "series.log")
    log = (out / "series.log").read_text()
    assert "failed: KeyError: 'formats'" in log and "Traceback (most recent call last)" in log
    monkeypatch.setenv("BIDSPORT_STRICT", "0")
    manifest = run_job(spec, "nifti", out / "m.json", out, out / "series.log")
    assert manifest["status"] == "failed" and "Traceback" in manifest["traceback"]
    assert "Traceback (most recent call last)" in (out / "series.log").read_text()


def test_space_warning_says_how_much_is_needed(tmp_path):
    source, _ = _series(tmp_path / "in", n=24)
    size = sum(p.stat().st_size for p in source.iterdir())
    plan = tmp_path / "plan.tsv"
    plan.write_text("key\tformats\tsource\n" + "".join(f"s{i:016x}\tnii,dcm\t{source}\n" for i in range(40)))
    assert space_warning(plan, tmp_path / "out" / ".bidsport") is None  # the disk holding tmp has room
    with small_filesystem(tmp_path / "small", faults.RECORD_MARGIN + size * 20) as small:  # 40 series × (nii + dcm) need ~80 × size
        warning = space_warning(plan, small / "out" / ".bidsport")
    needed = faults.human_size(int(40 * size * 2.0) + faults.RECORD_MARGIN)
    assert warning and warning.startswith(f"bidsport: warning: {small / 'out'} has ") and f"needs about {needed} (source sizes × formats)" in warning


def test_a_read_only_output_fails_the_series_in_one_line(tmp_path):
    from bidsport.export_series import export

    source, uid = _series(tmp_path / "in")
    with small_filesystem(tmp_path / "ro", 1 << 20) as folder:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        spec = json.loads(_copy_spec(tmp_path, source, uid).read_text())
        manifest = export(spec, "dicom", folder / "out", dcm2niix=None, copy_method="copy", copy_workers=1, timeout=None)
    assert manifest["status"] == "failed" and "traceback" not in manifest
    assert manifest["message"] == f"output read-only: cannot write to {folder / 'out'} (read-only filesystem)"
