"""The dataset step's fieldmap sidecar edits, on files written here: phasediff echo
times from its magnitude images, and fieldmaps the validator would still reject."""

from __future__ import annotations

import json

from bidsport import fieldmap_sidecars

FMAP = "sub-1/ses-A/fmap/sub-1_ses-A_"


def write(root, rel, data=None):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if data is not None else "")
    return rel


def test_phasediff_gets_its_echo_times_and_a_lone_phase_map_is_flagged(tmp_path):
    files = [write(tmp_path, FMAP + n) for n in ("phasediff.nii.gz", "magnitude1.nii.gz", "magnitude2.nii.gz")]
    files += [write(tmp_path, FMAP + "phasediff.json", {"EchoTime": 0.00738}),
              write(tmp_path, FMAP + "magnitude1.json", {"EchoTime": 0.00738}),
              write(tmp_path, FMAP + "magnitude2.json", {"EchoTime": 0.00492})]  # fmt: skip
    lone = [write(tmp_path, FMAP + "run-02_phase1.nii.gz"), write(tmp_path, FMAP + "run-02_phase1.json", {})]
    by_key = {"a": {"files": [{"path": f} for f in files], "warnings": []}, "b": {"files": [{"path": f} for f in lone], "warnings": []}}
    incomplete = fieldmap_sidecars.complete_fieldmaps(tmp_path, by_key)
    sidecar = json.loads((tmp_path / (FMAP + "phasediff.json")).read_text())
    assert (sidecar["EchoTime1"], sidecar["EchoTime2"]) == (0.00492, 0.00738)
    assert incomplete == set(lone)
    assert by_key["a"]["warnings"] == []
    assert by_key["b"]["warnings"] == [f"{lone[0]}: a phase1 without its magnitude1 image (not in the export): exported, listed in .bidsignore"]


def test_a_phasediff_whose_magnitudes_share_one_echo_time_stays_incomplete(tmp_path):
    files = [write(tmp_path, FMAP + n) for n in ("phasediff.nii.gz", "magnitude1.nii.gz")]
    files += [write(tmp_path, FMAP + "phasediff.json", {}), write(tmp_path, FMAP + "magnitude1.json", {"EchoTime": 0.005}),
              write(tmp_path, FMAP + "magnitude2.json", {"EchoTime": 0.005})]  # fmt: skip
    before = (tmp_path / (FMAP + "phasediff.json")).read_text()
    found = fieldmap_sidecars.incomplete_fieldmaps(tmp_path, files, set(files))
    fieldmap_sidecars.fill_phasediff_echo_times(tmp_path, files)
    assert (tmp_path / (FMAP + "phasediff.json")).read_text() == before
    assert list(found) == [FMAP + "phasediff.nii.gz"] and "EchoTime1/EchoTime2" in found[FMAP + "phasediff.nii.gz"]
