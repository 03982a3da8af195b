"""The overrides table on its own (bidsport.overrides through plan.build_plan)."""

from __future__ import annotations

import pandas as pd
import pytest

from bidsport import overrides
from bidsport.overrides import OverrideError
from bidsport.plan import build_plan

CFG = {"include_intents": ["anat", "dwi", "func", "fmap", "perf", "misc"], "output_mode": "nii.gz", "layout": "bids"}


def table(*rows):
    frame = pd.DataFrame([{"provenance": "", "session_id": "", "study_date": "", "series_time": "", "series_number": "",
                           "series_description": "", **r} for r in rows])  # fmt: skip
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame.fillna("")


def row(uid, intent="anat", subject="P1", **extra):
    return {"subject_code": subject, "series_instance_uid": uid, "dicom_path": "x", "directory_type": intent, "session_id": "M00", **extra}


def write(path, text: str):
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def plan(frame, tmp_path, text: str | None = None, name="overrides.tsv"):
    cfg = dict(CFG)
    if text is not None:
        cfg["overrides_table"] = str(write(tmp_path / name, text))
    return build_plan(frame, cfg, dicom_root=tmp_path)


COHORT = table(
    row("1.1", base="T1w", series_description="t1_mprage"),
    row("1.2", intent="func", series_description="fmri_nback", series_time="100000"),
    row("1.3", intent="func", series_description="fmri_nback", series_time="110000"),
    row("1.4", intent="func", series_description="fmri_rest", series_time="120000"),
    row("2.1", subject="P2", intent="func", series_description="fmri_nback"),
)


def stems(p):
    return {e.series_instance_uid: e.stem for e in p.entries}


def test_a_task_rule_renames_every_matching_series(tmp_path):
    p = plan(COHORT, tmp_path, "series_description\ttask\nfmri_n.*\tnback\n")
    assert stems(p) == {
        "1.1": "sub-P1_ses-M00_T1w",
        "1.2": "sub-P1_ses-M00_task-nback_run-01_bold",
        "1.3": "sub-P1_ses-M00_task-nback_run-02_bold",
        "1.4": "sub-P1_ses-M00_task-rest_bold",
        "2.1": "sub-P2_ses-M00_task-nback_bold",
    }
    shaped = next(e for e in p.entries if e.series_instance_uid == "1.2")
    assert any("override overrides.tsv (line 2: task-nback)" in w for w in shaped.warnings)
    assert not any("override" in w for e in p.entries if e.series_instance_uid == "1.4" for w in e.warnings)


def test_uid_row_wins_over_rules_and_the_later_rule_wins(tmp_path):
    text = "series_instance_uid\tseries_description\ttask\n\tfmri_.*\tfirst\n\tfmri_nback\tsecond\n1.3\t\tthird\n"
    p = plan(COHORT, tmp_path, text)
    got = stems(p)
    assert got["1.2"] == "sub-P1_ses-M00_task-second_bold"
    assert got["1.3"] == "sub-P1_ses-M00_task-third_bold"
    assert got["1.4"] == "sub-P1_ses-M00_task-first_bold"
    # A UID row written first still wins over a later rule.
    text = "series_instance_uid\tseries_description\ttask\n1.3\t\tthird\n\tfmri_nback\tsecond\n"
    assert stems(plan(COHORT, tmp_path, text))["1.3"] == "sub-P1_ses-M00_task-third_bold"


def test_exclusion_removes_one_series_and_says_why(tmp_path):
    p = plan(COHORT, tmp_path, "series_instance_uid\texclude\treason\n1.3\t1\tmotion\n")
    assert "1.3" not in stems(p)
    assert stems(p)["1.2"] == "sub-P1_ses-M00_task-rest_run-01_bold"  # the same names as without the row
    [gone] = [x for x in p.excluded if x["series_instance_uid"] == "1.3"]
    assert gone["status"] == "excluded" and gone["reason"] == "override overrides.tsv line 2: motion"
    assert gone["line"] == 4


def test_a_later_uid_row_can_keep_what_a_rule_excludes(tmp_path):
    text = "series_instance_uid\tseries_description\texclude\n\tfmri_.*\t1\n1.4\t\t0\n"
    assert sorted(stems(plan(COHORT, tmp_path, text))) == ["1.1", "1.4"]


def test_entities_datatype_and_suffix(tmp_path):
    frame = table(
        row("1.1", base="T1w", series_description="t1"),
        row("1.5", intent="misc", series_description="oops_really_a_t2"),
    )
    text = "series_instance_uid\tacq\trun\tdatatype\tsuffix\n1.1\tsag\t3\t\t\n1.5\t\t\tanat\tT2w\n"
    p = plan(frame, tmp_path, text)
    assert stems(p) == {"1.1": "sub-P1_ses-M00_acq-sag_run-03_T1w", "1.5": "sub-P1_ses-M00_T2w"}
    moved = next(e for e in p.entries if e.series_instance_uid == "1.5")
    assert (moved.datatype, moved.nifti_dir, moved.kind) == ("anat", "sub-P1/ses-M00/anat", "raw")


def test_selectors_all_must_match(tmp_path):
    text = "subject_code\tdirectory_type\tsession_id\ttask\nP2\tfunc\tM00\tnback\n"
    got = stems(plan(COHORT, tmp_path, text))
    assert got["2.1"] == "sub-P2_ses-M00_task-nback_bold" and "nback" not in got["1.2"]


def test_a_rule_matching_nothing_is_a_warning(tmp_path):
    p = plan(COHORT, tmp_path, "series_description\ttask\nfmri_nback\tnback\nnothing_like_this\tx\n")
    assert len(p.warnings) == 1 and "overrides.tsv:3: matches no planned series" in p.warnings[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("series_instance_uid\ttask\n1.1\tnback\n", "overrides.tsv:2"),  # task- on a T1w is fine in BIDS 1.10: see below
        ("series_instance_uid\tdatatype\tsuffix\n1.2\tanat\tbold\n", "no raw anat/…_bold"),
        ("series_instance_uid\tdir\n1.1\tAP\n", "dir- is not allowed on anat/…_T1w"),
        ("series_instance_uid\ttask\n1.2\tn-back\n", "is not a BIDS label"),
        ("series_instance_uid\texclude\n1.2\tyes\n", "column 'exclude'"),
        ("series_description\ttask\n(unclosed\tx\n", "is not a regular expression"),
        ("series_instance_uid\tcolour\n1.2\tred\n", "unknown column"),
        ("series_instance_uid\treason\n1.2\tnone\n", "no action"),
        ("series_instance_uid\trun\n1.2\t2\n", "1.2"),  # collides with the other nback run
    ],
)
def test_invalid_decisions_are_errors_naming_the_line(tmp_path, text, message):
    if message == "overrides.tsv:2":
        p = plan(COHORT, tmp_path, text)  # a task on an anat image is allowed by the schema
        assert stems(p)["1.1"] == "sub-P1_ses-M00_task-nback_T1w"
        return
    with pytest.raises(OverrideError) as err:
        plan(COHORT, tmp_path, text)
    line = 1 if message == "unknown column" else 2  # the header names the columns
    assert f"{tmp_path / 'overrides.tsv'}:{line}: " in str(err.value)
    if message != "1.2":
        assert message in str(err.value)


def test_a_colliding_run_names_the_line_and_the_series(tmp_path):
    with pytest.raises(OverrideError) as err:
        plan(COHORT, tmp_path, "series_instance_uid\trun\n1.2\t2\n")
    text = str(err.value)
    assert "overrides.tsv:2: 2 series would be written to sub-P1/ses-M00/func/sub-P1_ses-M00_task-rest_run-02_bold" in text
    assert err.value.keys == {("1.2", 0), ("1.4", 0)}
    # Two runs asked for explicitly, one each: fine.
    p = plan(COHORT, tmp_path, "series_instance_uid\tacq\trun\n1.2\tx\t1\n1.3\tx\t2\n")
    assert stems(p)["1.2"] == "sub-P1_ses-M00_task-rest_acq-x_run-01_bold"
    assert stems(p)["1.3"] == "sub-P1_ses-M00_task-rest_acq-x_run-02_bold"


def test_derived_data_cannot_become_raw(tmp_path):
    frame = table(row("1.6", intent="dwi", base="DWI", construct_csv="ADC", series_description="adc"))
    with pytest.raises(OverrideError, match="derived data"):
        plan(frame, tmp_path, "series_instance_uid\tdatatype\tsuffix\n1.6\tdwi\tdwi\n")


def test_csv_and_excluding_everything(tmp_path):
    with pytest.raises(OverrideError, match="every planned series is excluded"):
        plan(COHORT, tmp_path, "exclude\n1\n", name="overrides.csv")


def test_set_decision_edits_one_row(tmp_path):
    rows = overrides.set_decision([], {"series_instance_uid": "1.2", "stack_index": "0"}, "exclude", "1")
    rows = overrides.set_decision(rows, overrides.description_rule("fmri_nback (2)"), "task", "nback")
    rows = overrides.set_decision(rows, {"series_instance_uid": "1.2", "stack_index": "0"}, "task", "x")
    assert [(r["series_instance_uid"], r.get("exclude"), r.get("task")) for r in rows] == [("1.2", "1", "x"), ("", None, "nback")]
    path = tmp_path / "code" / "overrides.tsv"
    overrides.write_rows(path, rows)
    loaded = overrides.load(path)
    assert [o.line for o in loaded.rows] == [2, 3]
    assert loaded.rows[1].matches({"series_description": "fmri_nback (2)"})
    rows = overrides.set_decision(rows, {"series_instance_uid": "1.2", "stack_index": "0"}, "exclude", "")
    rows = overrides.set_decision(rows, {"series_instance_uid": "1.2", "stack_index": "0"}, "task", "")
    assert len(rows) == 1  # a row without actions goes


def test_the_pages_review_rows(tmp_path):
    """form.preview: an excluded series stays in the review (in its place, to be brought
    back); a colliding decision is an error over the plan without the table, its series marked."""
    from bidsport.web.cohorts import Cohort
    from bidsport.web.form import Checked, preview, save_decision

    out = tmp_path / "out"
    cfg = {**CFG, "dicom_root": str(tmp_path), "output_dir": str(out), "overwrite": "skip"}
    cohort = Cohort("table:x", "x", COHORT, "series table")
    save_decision(cfg, {"uid": "1.2", "stack_index": 0}, "exclude", "1")
    save_decision(cfg, {"scope": "description", "description": "fmri_nback"}, "task", "nback")
    cfg["overrides_table"] = str(overrides.table_path(out))
    result = preview(Checked(cfg), cohort)
    assert result["errors"] == []
    assert [(r["uid"], r["excluded"]) for r in result["rows"]] == [("1.1", False), ("1.2", True), ("1.3", False), ("1.4", False), ("2.1", False)]
    by_uid = {r["uid"]: r for r in result["rows"]}
    assert by_uid["1.3"]["task"] == "nback" and "line 3: task-nback" in by_uid["1.3"]["override"]
    assert by_uid["1.4"]["task"] == "rest" and by_uid["1.4"]["override"] == ""
    assert by_uid["1.1"]["raw_bids"] and by_uid["1.2"]["override"].startswith("override overrides.tsv line 2")

    save_decision(cfg, {"uid": "1.2", "stack_index": 0}, "exclude", "0")  # brought back, with a run that collides
    save_decision(cfg, {"uid": "1.2", "stack_index": 0}, "run", "2")
    save_decision(cfg, {"uid": "1.4", "stack_index": 0}, "task", "nback")
    result = preview(Checked(cfg), cohort)
    assert len(result["errors"]) == 1 and "overrides.tsv:2" in result["errors"][0]
    assert {r["uid"] for r in result["rows"] if r["collides"]} >= {"1.2"}
    assert all(not r["excluded"] for r in result["rows"])
