"""DICOM copies (dicom_copy.copy_files): exact bytes, the source's mode bits,
sources untouched, for every method; the clone probe is made once per filesystem."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from bidsport import dicom_copy


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    files = []
    for i in range(40):
        path = folder / f"IM{i:04d}.dcm"
        path.write_bytes(os.urandom(1000 + 37 * i))
        path.chmod(0o444 if i % 2 else 0o640)
        files.append(path)
    return files


@pytest.mark.parametrize("method", ["copy", "reflink", "hardlink"])
def test_copies_are_exact_and_sources_untouched(tmp_path, sources, method):
    before = {p: (digest(p), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode)) for p in sources}
    dest = tmp_path / "out" / "dcm"
    dicom_copy.copy_files([str(p) for p in sources], dest, method, workers=4)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in sources)
    umask = os.umask(0)
    os.umask(umask)
    for src in sources:
        copy = dest / src.name
        assert digest(copy) == before[src][0]
        assert stat.S_IMODE(copy.stat().st_mode) == before[src][2] & ~umask
        if method != "hardlink":
            assert copy.stat().st_ino != src.stat().st_ino  # a copy (or clone), never the source itself
    assert {p: (digest(p), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode)) for p in sources} == before


def test_clone_probe_once_per_filesystem_and_leaves_nothing(tmp_path):
    first = dicom_copy.can_clone(tmp_path)
    assert isinstance(first, bool)
    assert dicom_copy.can_clone(tmp_path / ".") == first
    assert list(tmp_path.iterdir()) == []  # the probe files are gone
    # A copy into a filesystem that cannot clone lets cp copy in the kernel.
    flags = dicom_copy.cp_flags("copy", tmp_path)
    assert flags == (["--reflink=never"] if first else ["--reflink=auto"])
