"""Thumbnails drawn from DICOM files (bidsport.thumbnails), on synthetic series."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bidsport import thumbnails
from bidsport.synthdicom import make_uid, spec_for, write_series


@pytest.fixture
def folder_of_two(tmp_path):
    """A T1w and a BOLD series written into one folder (as enhanced exports do)."""
    study = make_uid("thumbs")
    t1 = write_series(tmp_path / "mixed", spec_for("t1w", series_number=1, series_time="090000"), patient_id="X",
                      study_uid=study, study_date="20240101", seed=1, file_prefix="t1_")  # fmt: skip
    bold = write_series(tmp_path / "mixed", spec_for("bold", series_number=2, series_time="091000"), patient_id="X",
                        study_uid=study, study_date="20240101", seed=2, file_prefix="bold_")  # fmt: skip
    return tmp_path / "mixed", t1.series_instance_uid, bold.series_instance_uid


def test_middle_image_of_the_right_series(folder_of_two):
    folder, t1, bold = folder_of_two
    middle = thumbnails.middle_file(folder, t1)
    assert "/t1_" in middle
    t1_files = sorted(p for p in folder.iterdir() if p.name.startswith("t1_"))
    import pydicom

    numbers = sorted(int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in t1_files)
    assert int(pydicom.dcmread(middle, stop_before_pixels=True).InstanceNumber) == numbers[len(numbers) // 2]
    assert "/bold_" in thumbnails.middle_file(folder, bold)


def test_png_is_drawn_once_and_cached(folder_of_two, tmp_path):
    folder, t1, _ = folder_of_two
    path = thumbnails.thumbnail(tmp_path / "cache", folder, t1)
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG" and image.mode == "L" and max(image.size) <= thumbnails.SIZE
    assert len(set(np.asarray(image).ravel().tolist())) > 10  # an image, not a flat grey square
    stamp = path.stat().st_mtime_ns
    assert thumbnails.thumbnail(tmp_path / "cache", folder, t1) == path and path.stat().st_mtime_ns == stamp
    (folder / "new_file").write_text("x")  # the source changed: drawn again, under a new name
    assert thumbnails.thumbnail(tmp_path / "cache", folder, t1) != path


def test_no_image_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(thumbnails.ThumbnailError, match="no image of series 1.2.3"):
        thumbnails.thumbnail(tmp_path / "cache", tmp_path / "empty", "1.2.3")
    with pytest.raises(thumbnails.ThumbnailError, match="does not exist"):
        thumbnails.thumbnail(tmp_path / "cache", tmp_path / "missing", "1.2.3")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
