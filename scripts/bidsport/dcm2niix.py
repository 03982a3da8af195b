"""Find, check and run dcm2niix.

Resolution order (the export page's ``dcm2niix_path``, default auto-detect): the
configured path, else ``dcm2niix`` on ``PATH``, else the binary inside the PyPI
``dcm2niix`` wheel. A missing or broken binary is one clear error, raised before any
job runs. dcm2niix is always called with an argument list, never through a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "BIDSPORT_DCM2NIIX"


class Dcm2niixError(RuntimeError):
    pass


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def find_dcm2niix(configured: str | None = None) -> str:
    """Absolute path of a working dcm2niix, or :class:`Dcm2niixError`."""
    candidates: list[tuple[str, str]] = []
    if configured and str(configured).lower() not in ("auto", ""):
        path = shutil.which(str(configured)) or str(configured)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise Dcm2niixError(f"dcm2niix_path {configured!r} is not an executable file")
        return os.path.abspath(path)
    on_path = shutil.which("dcm2niix")
    try:
        import dcm2niix as wheel  # the PyPI wheel ships the binary

        wheel_bin = str(wheel.bin)
    except Exception:  # noqa: BLE001 - a broken wheel is just one candidate less
        wheel_bin = None
    # The wheel's console script on PATH is a Python wrapper that execs the binary:
    # calling the binary itself saves one Python start-up per series.
    if on_path and not (wheel_bin and _is_script(on_path)):
        candidates.append(("PATH", on_path))
    if wheel_bin:
        candidates.append(("the dcm2niix Python package", wheel_bin))
    for _, path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise Dcm2niixError(
        "dcm2niix not found: set dcm2niix_path in the config, put dcm2niix on PATH, "
        "or `pip install dcm2niix`"
    )


def version(path: str, timeout: float = 30) -> str:
    """dcm2niix's version string (``v1.0.20260724``); raises if the binary is broken.

    ``dcm2niix -v`` exits with status 3 by design, so the text is parsed instead.
    """
    try:
        proc = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Dcm2niixError(f"dcm2niix at {path} does not run: {exc}") from exc
    text = proc.stdout + proc.stderr
    match = re.search(r"v\d+\.\d+\.\d{8}\w*", text)
    if not match:
        raise Dcm2niixError(f"dcm2niix at {path} printed no version (exit {proc.returncode}): {text.strip()[:200]!r}")
    return match.group(0)


@dataclass
class ConversionResult:
    returncode: int | None  # None: timed out
    output: str  # stdout + stderr, for the log and the report

    @property
    def message(self) -> str:
        """The lines worth showing a user (errors and warnings first)."""
        lines = [ln for ln in self.output.splitlines() if ln.strip()]
        important = [ln for ln in lines if re.search(r"error|warning|unable|fail|not", ln, re.I)]
        return " | ".join((important or lines)[-5:])[:1000]


def convert(
    binary: str,
    source: Path,
    out_dir: Path,
    *,
    compress: bool,
    filename: str = "series",
    timeout: float | None = None,
    sidecars_only: bool = False,
) -> ConversionResult:
    """Convert the DICOM files under ``source`` (one series' folder or file) into ``out_dir``
    (``sidecars_only``: write only the JSON sidecars, no image: a cheap header read)."""
    sidecars = "o" if sidecars_only else "y"
    args = [binary, "-b", sidecars, "-ba", "y", "-z", "y" if compress else "n", "-f", filename, "-o", str(out_dir)]
    if source.is_file():
        args += ["-s", "y"]
    args.append(str(source))
    try:
        # Own process group: a timeout kills dcm2niix and anything it started.
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True
        )
    except OSError as exc:
        return ConversionResult(-1, f"cannot run dcm2niix {binary}: {exc}")
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return ConversionResult(None, (output or "") + f"\ndcm2niix timed out after {timeout:g} s")
    return ConversionResult(proc.returncode, output)
