import json

from bidsport.sidecars import fix_sidecars, missing_required


def test_required_keys_come_from_the_schema():
    assert missing_required("func", "bold", {}) == ["TaskName", "RepetitionTime or VolumeTiming"]
    assert missing_required("func", "bold", {"TaskName": "rest", "VolumeTiming": [0, 1]}) == []
    assert set(missing_required("fmap", "phasediff", {})) == {"EchoTime1", "EchoTime2"}
    assert missing_required("fmap", "epi", {}) == ["PhaseEncodingDirection"]
    assert missing_required("anat", "T1w", {}) == []


def test_fix_sidecars_adds_what_the_table_knows_and_warns_about_the_rest(tmp_path):
    bold = tmp_path / "series.json"
    bold.write_text(json.dumps({"EchoTime": 0.03}))
    fmap = tmp_path / "series_fieldmaphz.json"
    fmap.write_text(json.dumps({}))
    spec = {"datatype": "func"}
    warnings, incomplete = fix_sidecars(spec, [(bold, "sub-1/func/sub-1_task-nback_bold.json")])
    assert json.loads(bold.read_text())["TaskName"] == "nback"
    assert warnings == [
        "sub-1/func/sub-1_task-nback_bold.json: sidecar lacks required RepetitionTime or VolumeTiming: listed in .bidsignore"
    ]
    assert incomplete == {"sub-1/func/sub-1_task-nback_bold"}
    assert fix_sidecars({"datatype": "fmap"}, [(fmap, "sub-1/fmap/sub-1_fieldmap.json")]) == ([], set())
    assert json.loads(fmap.read_text())["Units"] == "Hz"


def test_task_name_is_the_label_even_when_dcm2niix_wrote_another(tmp_path):
    bold = tmp_path / "series.json"
    bold.write_text(json.dumps({"TaskName": "rest", "RepetitionTime": 2}))  # e.g. from a renamed series
    fix_sidecars({"datatype": "func"}, [(bold, "sub-1/func/sub-1_task-motor_bold.json")])
    assert json.loads(bold.read_text())["TaskName"] == "motor"
