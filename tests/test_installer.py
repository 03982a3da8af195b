"""A series job killed after moving files into place but before recording them must
recognise those files as its own next time (found by the web page's Cancel)."""

from bidsport import install, nifti_outputs

REL = "sub-1/anat/sub-1_T1w.nii.gz"


def _install(out, tmp_path, previous):
    src = tmp_path / "new.nii.gz"
    src.write_bytes(b"new")
    installer = install.Installer(out, "skip", previous)
    installer.install_file(src, REL)
    return installer


def test_files_announced_before_a_kill_are_ours(tmp_path):
    out = tmp_path / "out"
    (out / REL).parent.mkdir(parents=True)
    install.announce(out, "s1", "nifti", None, [REL])  # what the job does before installing
    (out / REL).write_bytes(b"old")  # ... installed, then killed before its ledger was final
    installer = _install(out, tmp_path, install.read_json(install.ledger_path(out, "s1", "nifti")))
    assert (out / REL).read_bytes() == b"new" and installer.skipped == []


def test_foreign_files_are_kept_in_skip_mode(tmp_path):
    out = tmp_path / "out"
    (out / REL).parent.mkdir(parents=True)
    (out / REL).write_bytes(b"someone else's")
    installer = _install(out, tmp_path, None)
    assert (out / REL).read_bytes() == b"someone else's" and installer.skipped == [REL]


def test_outputs_named_by_series_uid_are_told_apart_exactly():
    prefix = "series_1.2.3"
    assert nifti_outputs.named_for("series_1.2.3.nii.gz", prefix)
    assert nifti_outputs.named_for("series_1.2.3_e2.json", prefix)
    assert nifti_outputs.named_for("series_1.2.3_ph.nii.gz", prefix)
    assert nifti_outputs.named_for("series_1.2.3a.nii.gz", prefix)  # dcm2niix's suffix for a repeated name
    assert not nifti_outputs.named_for("series_1.2.34.nii.gz", prefix)  # another UID that starts like ours
    assert not nifti_outputs.named_for("series_1.2.3.4.nii.gz", prefix)
    assert not nifti_outputs.named_for("series_9.9.nii.gz", prefix)
