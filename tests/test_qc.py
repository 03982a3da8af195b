"""Visual QC: orientation, 4D/2D images, broken images, the summary page."""

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from bidsport import qc


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


def _panels(png: bytes) -> list[np.ndarray]:
    image = np.asarray(Image.open(io.BytesIO(png)))
    box = qc.PANEL_HEIGHT
    return [image[:, i * (box + 6) : i * (box + 6) + box] for i in range(3)]


def _bright_centre(panel: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(panel > 200)
    return rows.mean() / panel.shape[0], cols.mean() / panel.shape[1]


@pytest.mark.parametrize("flip_x", [False, True], ids=["RAS", "LAS"])
def test_orientation_is_anatomical_whatever_the_storage_order(tmp_path, flip_x):
    # A bright block right, anterior and superior of the centre (RAS voxel order).
    data = np.full((40, 40, 40), 10.0)
    data[18:34, 18:34, 18:34] = 1000.0  # the middle slices (20) cut it
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    if flip_x:  # stored left-to-right: same anatomy, other voxel order
        data = data[::-1]
        affine[0, 0], affine[0, 3] = -2.0, 78.0
    png, facts = qc.render_png(_nifti(tmp_path / "img.nii.gz", data, affine))
    assert facts == {"shape": "40×40×40", "voxel_mm": "2×2×2", "volumes": 1}
    sagittal, coronal, axial = _panels(png)
    row, col = _bright_centre(sagittal)
    assert row < 0.5 and col > 0.5  # superior up, anterior right
    row, col = _bright_centre(coronal)
    assert row < 0.5 and col > 0.5  # superior up, subject's right on the right
    row, col = _bright_centre(axial)
    assert row < 0.5 and col > 0.5  # anterior up, subject's right on the right


def test_4d_uses_the_first_volume_and_physical_aspect(tmp_path):
    data = np.zeros((64, 64, 8, 5))
    data[16:48, 16:48, :, 0] = 500.0  # only the first volume has signal
    png, facts = qc.render_png(_nifti(tmp_path / "bold.nii.gz", data, np.diag([3.0, 3.0, 6.0, 1.0])))
    assert facts["volumes"] == 5 and facts["shape"] == "64×64×8×5"
    sagittal, _, axial = _panels(png)
    assert axial.max() == 255
    # The slab is 48 mm thick and 192 mm wide: a strip a quarter of the box high.
    rows_with_signal = np.nonzero(sagittal.max(axis=1) > 0)[0]
    assert 0.15 < (rows_with_signal.max() - rows_with_signal.min() + 1) / qc.PANEL_HEIGHT < 0.3


def test_single_slice_and_constant_images_render(tmp_path):
    png, facts = qc.render_png(_nifti(tmp_path / "loc.nii", np.ones((32, 32, 1)) * 7, np.eye(4)))
    assert facts["shape"] == "32×32×1"
    image = Image.open(io.BytesIO(png))
    assert image.size == (3 * qc.PANEL_HEIGHT + 12, qc.PANEL_HEIGHT)
    assert image.getextrema()[1] > 0  # constant signal is shown, not a black picture


def _row(key: str, **kw) -> dict:
    base = {"key": key, "subject": "01", "session": "A", "series_time": "101500", "series_number": "3",
            "series_description": "t1_mprage", "directory_type": "anat", "classification": "T1w · MPRAGE",
            "provenance": "RawRecon", "source": "/dicom/s1", "formats": "nii.gz"}  # fmt: skip
    return {**base, **kw}


def _manifest(state: Path, key: str, files: list[str], status: str = "exported", message: str = "") -> None:
    (state / "done").mkdir(parents=True, exist_ok=True)
    data = {"key": key, "status": status, "message": message, "warnings": [], "files": [{"path": f} for f in files]}
    (state / "done" / f"{key}.nifti.json").write_text(json.dumps(data))


def test_subject_qc_pictures_every_image_and_reports_failures(tmp_path):
    out, state = tmp_path / "bids", tmp_path / "bids" / ".bidsport"
    anat = out / "sub-01/ses-A/anat"
    (anat / "SyMRI").mkdir(parents=True)
    volume = np.random.default_rng(0).random((20, 20, 20)) * 100
    _nifti(anat / "sub-01_ses-A_T1w.nii.gz", volume, np.eye(4))
    _nifti(anat / "SyMRI" / "sub-01_ses-A_T1w.nii.gz", volume, np.eye(4))  # same name, other folder
    (anat / "sub-01_ses-A_T2w.nii.gz").write_bytes(b"not a nifti")
    _manifest(state, "s1", ["sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz", "sub-01/ses-A/anat/sub-01_ses-A_T1w.json"])
    _manifest(state, "s2", ["sub-01/ses-A/anat/SyMRI/sub-01_ses-A_T1w.nii.gz"])
    _manifest(state, "s3", ["sub-01/ses-A/anat/sub-01_ses-A_T2w.nii.gz"])
    _manifest(state, "s4", [], status="failed", message="dcm2niix wrote no image for this series")
    rows = [_row("s1"), _row("s2", provenance="SyMRI"), _row("s3", classification="T2w"),
            _row("s4", series_description="broken <dwi>")]  # fmt: skip
    snapshots, summary = tmp_path / "qc" / "snapshots", tmp_path / "qc" / "summary.html"
    result = qc.subject_qc(rows, out, state, snapshots, summary)
    assert result == {"images": 2, "problems": 1}
    index = qc.read_index(snapshots)
    assert sorted(index) == ["sub-01_ses-A_T1w", "sub-01_ses-A_anat_SyMRI_sub-01_ses-A_T1w"]
    assert {p.name for p in snapshots.glob("*.png")} == {f"{stem}.png" for stem in index}
    t1 = index["sub-01_ses-A_T1w"]
    assert t1["classification"] == "T1w · MPRAGE" and t1["acquired"] == "10:15:00" and t1["source"] == "/dicom/s1"
    page = summary.read_text()
    assert page.count("<img ") == 2
    assert "dcm2niix wrote no image for this series" in page and "1 failed" in page
    assert "broken &lt;dwi&gt;" in page  # escaped, never raw HTML from the table
    assert "sub-01_ses-A_T2w.nii.gz: " in page  # the unreadable image is named


def test_read_index_before_the_job_ran(tmp_path):
    assert qc.read_index(tmp_path / "missing") == {}
