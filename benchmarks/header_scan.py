"""What reading a file's top-level SeriesInstanceUID costs, against reading its
first 4 KiB (the floor of any header scan), on the real DICOM samples.

    python benchmarks/header_scan.py [--repeats 7]

Compares, per file and in CPU time (min of the repeats, all in this invocation):
the 4 KiB read; ``series_uid_of`` (byte search where it can prove its answer, else
the element walk); ``series_uid_by_walk`` (the walk alone); pydicom's ``read_partial``
up to (0020,000E); and ``stack_files``' header read (the element walk for a
single-frame file, pydicom's whole header for a multi-frame one), reported apart
for the two kinds since their share of the samples says nothing about a cohort.
Writes benchmarks/results-header-scan.md and prints the same table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

from bidsport.dicom_scan import series_uid_by_walk, series_uid_of, stack_files, walk_files  # noqa: E402

SAMPLES = Path(os.environ.get("BIDSPORT_SAMPLES") or HERE.parent.parent / "shared" / "dicom-samples")


def read_4k(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    finally:
        os.close(fd)


def pydicom_partial(path: str) -> None:
    from pydicom.filereader import read_partial

    with open(path, "rb") as fh:
        read_partial(fh, stop_when=lambda tag, vr, length: tag > 0x0020000E)


def stack_header(path: str) -> None:
    stack_files([path], {"modality": "MR"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    files = [f for f in walk_files(SAMPLES) if series_uid_of(f)[0]]
    if not files:
        sys.exit(f"no DICOM samples under {SAMPLES}")
    import pydicom

    multi = {f for f in files if int(pydicom.dcmread(f, stop_before_pixels=True).get("NumberOfFrames") or 1) > 1}
    single = [f for f in files if f not in multi]
    methods = {
        "4 KiB read (baseline)": (read_4k, files),
        "series_uid_of (search, walk where needed)": (series_uid_of, files),
        "series_uid_by_walk (walk alone)": (series_uid_by_walk, files),
        "pydicom read_partial to (0020,000E)": (pydicom_partial, files),
        f"stack_files, {len(single)} single-frame files (walk)": (stack_header, single),
        f"stack_files, {len(multi)} multi-frame files (pydicom)": (stack_header, sorted(multi)),
    }
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, (method, subset) in methods.items():  # interleaved: load changes hit all alike
            start = time.process_time()
            for path in subset:
                method(path)
            per_file = (time.process_time() - start) / len(subset) * 1e6
            best[name] = min(best.get(name, per_file), per_file)
    base = best["4 KiB read (baseline)"]
    lines = [
        "# Header scan cost per file",
        "",
        f"{len(files)} real DICOM files ({SAMPLES.name}), CPU time per file, min of {args.repeats} interleaved repeats; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs. "
        "The machine may be shared: read the ratios, which share the run's load.",
        "",
        "| method | µs a file | × the 4 KiB read |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:.1f} | {value / base:.1f} |" for name, value in best.items()]
    text = "\n".join(lines) + "\n"
    (HERE / "results-header-scan.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
