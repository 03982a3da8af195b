"""Per-lab fieldmap overrides (fieldmap_links_table) and session columns (sessions_table):
table checks, the planning checkpoint's early check, sessions.tsv/sessions.json, and
one real export (demo data + a second fieldmap) checked by the BIDS validator."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bidsport import dataset_metadata, fieldmaps
from bidsport.plan import build_plan
from bidsport.table import TableError, load_fieldmap_links_table, load_sessions_table

HEADER = "series_instance_uid\tfieldmap_series_instance_uid\tstack_index\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- links table, file level


def test_links_table_column_set_is_checked(tmp_path):
    bad = write(tmp_path / "links.tsv", "series_instance_uid\tfmap_uid\tnote\n1.2\t1.3\tx\n")
    with pytest.raises(TableError) as err:
        load_fieldmap_links_table(bad)
    text = str(err.value)
    assert f"{bad}: missing required column 'fieldmap_series_instance_uid'" in text
    assert f"{bad}: unknown column 'fmap_uid'" in text and f"{bad}: unknown column 'note'" in text


def test_links_table_cells_and_duplicates_name_file_and_line(tmp_path):
    bad = write(tmp_path / "links.tsv", HEADER + "1.2\t1.9\t\n\t1.9\t\n1.2\t\t\nx.y\tabc\t-1\n1.5\t1.9\t0\n1.5\t1.9\t00\n")
    with pytest.raises(TableError) as err:
        load_fieldmap_links_table(bad)
    problems = err.value.problems
    assert f"{bad}:3: column 'series_instance_uid': required value is empty" in problems
    assert f"{bad}:4: column 'series_instance_uid': series 1.2 is listed twice, first on line 2" in problems
    assert any(p.startswith(f"{bad}:5: column 'series_instance_uid': 'x.y' is not a DICOM UID") for p in problems)
    assert any(p.startswith(f"{bad}:5: column 'fieldmap_series_instance_uid': 'abc'") for p in problems)
    assert f"{bad}:5: column 'stack_index': '-1' is not an integer >= 0" in problems
    assert f"{bad}:7: column 'series_instance_uid': series 1.5 stack 00 is listed twice, first on line 6" in problems
    good = write(tmp_path / "ok.csv", "series_instance_uid,fieldmap_series_instance_uid\n1.2,1.9\n1.3,\n")
    links = fieldmaps.read_links(good)
    assert [(link.series_instance_uid, link.stack_index, link.fieldmap_uid) for link in links] == [("1.2", None, "1.9"), ("1.3", None, None)]


# --------------------------------------------------------------------------- links table against the plan

PLAN = [
    {"series_instance_uid": "1.1", "stack_index": "0", "subject": "P1", "session": "A", "datatype": "func"},
    {"series_instance_uid": "1.2", "stack_index": "0", "subject": "P1", "session": "A", "datatype": "fmap"},
    {"series_instance_uid": "1.3", "stack_index": "0", "subject": "P1", "session": "B", "datatype": "fmap"},
    {"series_instance_uid": "1.4", "stack_index": "0", "subject": "P1", "session": "A", "datatype": "anat"},
    {"series_instance_uid": "1.5", "stack_index": "0", "subject": "P1", "session": "A", "datatype": "func"},
    {"series_instance_uid": "1.6", "stack_index": "0", "subject": "P1", "session": "A", "datatype": "dwi"},
    {"series_instance_uid": "2.1", "stack_index": "0", "subject": "P2", "session": "A", "datatype": "fmap"},
]
EXCLUDED = [{"series_instance_uid": "1.8", "reason": "exclude_intents: directory_type='func'"}]


def problems_of(tmp_path, rows: str) -> list[str]:
    path = write(tmp_path / "links.tsv", HEADER + rows)
    return [p.split(": ", 1)[1] for p in fieldmaps.check_links(fieldmaps.read_links(path), PLAN, "links.tsv", EXCLUDED)]


def test_links_are_checked_against_the_plan(tmp_path):
    assert problems_of(tmp_path, "1.1\t1.2\t\n1.1\t\t0\n1.4\t1.2\t\n") == []  # a fieldmap, none, an anat target
    found = problems_of(
        tmp_path,
        "1.9\t1.2\t\n"  # 2: target unknown
        "1.8\t1.2\t\n"  # 3: target excluded by a filter
        "1.1\t1.4\t1\n"  # 4: no such stack
        "1.2\t1.2\t\n"  # 5: target is a fieldmap
        "1.4\t1.4\t\n"  # 6: "fieldmap" is an anat series
        "1.1\t1.3\t\n"  # 7: fieldmap from another session
        "1.5\t2.1\t\n"  # 8: fieldmap of another subject
        "1.6\t1.7\t\n",  # 9: fieldmap unknown
    )
    assert found == [
        "column 'series_instance_uid': 1.9 is not in the export plan (not in the series table)",
        "column 'series_instance_uid': 1.8 is not in the export plan (excluded: exclude_intents: directory_type='func')",
        "column 'stack_index': series 1.1 has no stack 1 in the export plan",
        "column 'series_instance_uid': 1.2 is itself a fieldmap series, not a target",
        "column 'fieldmap_series_instance_uid': 1.4 is exported as anat, not as a fieldmap (fmap)",
        "column 'fieldmap_series_instance_uid': fieldmap 1.3 is from sub-P1 ses-B but the target 1.1 is from sub-P1 ses-A: "
        "a fieldmap corrects images of its own subject and session only",
        "column 'fieldmap_series_instance_uid': fieldmap 2.1 is from sub-P2 ses-A but the target 1.5 is from sub-P1 ses-A: "
        "a fieldmap corrects images of its own subject and session only",
        "column 'fieldmap_series_instance_uid': 1.7 is not in the export plan (not in the series table)",
    ]
    path = tmp_path / "links.tsv"
    with pytest.raises(TableError, match=re.escape(f"{path}:2: column 'series_instance_uid': 1.9")):
        fieldmaps.check_links_table(path, PLAN)


def test_the_planning_checkpoint_rejects_a_bad_links_table_before_any_export(tmp_path):
    def row(uid, intent, session, **extra):
        return {"_line": 0, "subject_code": "P1", "session_id": session, "study_date": "", "series_time": "",
                "series_number": "", "provenance": "", "series_instance_uid": uid, "dicom_path": "x",
                "directory_type": intent, **extra}  # fmt: skip

    frame = pd.DataFrame(
        [row("1.1", "func", "A"), row("1.2", "fmap", "A", construct_csv="Phase"), row("1.3", "fmap", "B", construct_csv="Phase")]
    )
    frame = frame.fillna("")
    frame["_line"] = range(2, 5)
    cfg = {"include_intents": ["func", "fmap"], "output_mode": "nii.gz", "layout": "bids"}
    links = write(tmp_path / "links.tsv", HEADER + "1.1\t1.3\t\n")
    with pytest.raises(TableError, match=re.escape(f"{links}:2: column 'fieldmap_series_instance_uid': fieldmap 1.3 is from sub-P1 ses-B")):
        build_plan(frame, {**cfg, "fieldmap_links_table": str(links)}, dicom_root=tmp_path)
    write(links, HEADER + "1.1\t1.2\t\n")
    assert len(build_plan(frame, {**cfg, "fieldmap_links_table": str(links)}, dicom_root=tmp_path).entries) == 3
    # a layout without a BIDS NIfTI tree does not use the table: not checked
    write(links, HEADER + "9.9\t\t\n")
    build_plan(frame, {**cfg, "fieldmap_links_table": str(links), "layout": "flat"}, dicom_root=tmp_path)


# --------------------------------------------------------------------------- sessions table


def test_sessions_table_checks(tmp_path):
    bad = write(tmp_path / "sessions.tsv", "subject_code\tsession_id\tage\nP1\tM00\t30\nP1\tM-00\t31\nP1\tM00\t32\n\tM12\t1\nP2\t\t1\n")
    with pytest.raises(TableError) as err:
        load_sessions_table(bad)
    assert err.value.problems == [
        f"{bad}:3: column 'session_id': 'M-00' and 'M00' (line 2) both become ses-M00 for subject_code 'P1'",
        f"{bad}:4: duplicate (subject_code, session_id) = ('P1', 'M00'), first on line 2",
        f"{bad}:5: column 'subject_code': required value is empty",
        f"{bad}:6: column 'session_id': required value is empty",
    ]
    with pytest.raises(TableError, match="missing required column 'session_id'"):
        load_sessions_table(write(tmp_path / "s2.tsv", "subject_code\tage\nP1\t3\n"))
    with pytest.raises(TableError, match="column 'acq_time' is written by bidsport"):
        load_sessions_table(write(tmp_path / "s3.tsv", "subject_code\tsession_id\tacq_time\nP1\tM00\tx\n"))
    assert load_sessions_table(None) is None


def test_sessions_tsv_gets_the_table_columns_and_sessions_json_describes_them(tmp_path, capsys):
    plan = [
        {"subject": "P1", "subject_code": "P-1", "session": "M00", "study_date": "2024-01-15", "series_time": "093000"},
        {"subject": "P1", "subject_code": "P-1", "session": "M12", "study_date": "2025-01-20", "series_time": "100000"},
        {"subject": "P2", "subject_code": "P-2", "session": "M00", "study_date": "2024-02-01", "series_time": "080000"},
    ]
    table = write(
        tmp_path / "sessions.csv",
        "subject_code,session_id,age,scanner\nP-1,M00,34,Prisma\nP-1,M12,35,\nP-9,M00,50,Skyra\nP-2,M24,40,Skyra\n",
    )
    out = tmp_path / "out"
    sessions = dataset_metadata.sessions_table({"sessions_table": str(table)}, plan)
    warning = capsys.readouterr().err
    assert "2 row(s) match no exported session and are ignored: line 4 (P-9, M00), line 5 (P-2, M24)" in warning
    dataset_metadata.write_sessions(out, plan, sessions)
    p1 = list(csv.DictReader(open(out / "sub-P1/sub-P1_sessions.tsv"), delimiter="\t"))
    assert p1 == [
        {"session_id": "ses-M00", "acq_time": "2024-01-15T09:30:00", "age": "34", "scanner": "Prisma"},
        {"session_id": "ses-M12", "acq_time": "2025-01-20T10:00:00", "age": "35", "scanner": "n/a"},
    ]
    p2 = list(csv.DictReader(open(out / "sub-P2/sub-P2_sessions.tsv"), delimiter="\t"))
    assert p2 == [{"session_id": "ses-M00", "acq_time": "2024-02-01T08:00:00", "age": "n/a", "scanner": "n/a"}]
    described = json.loads((out / "sessions.json").read_text())
    assert list(described) == ["session_id", "acq_time", "age", "scanner"]
    assert described["age"]["Units"] == "year" and all(v["Description"] for v in described.values())
    dataset_metadata.write_sessions(out, plan)  # without a table: the two standard columns
    assert (out / "sub-P1/sub-P1_sessions.tsv").read_text().splitlines()[0] == "session_id\tacq_time"
    assert list(json.loads((out / "sessions.json").read_text())) == ["session_id", "acq_time"]


# --------------------------------------------------------------------------- one real export

def add_second_fieldmap(root: Path, table: Path) -> dict[str, str]:
    """A second fieldmap acquisition (magnitude + phase) late in P-001's first session."""
    from bidsport.synthdicom import make_uid, spec_for, write_series

    rows = list(csv.DictReader(open(table), delimiter="\t"))
    columns = list(rows[0])
    added = {}
    for number, kind, source in ((16, "fmap_magnitude", "07_fieldmap_mag"), (17, "fmap_phasediff", "08_fieldmap_phase")):
        base = next(r for r in rows if r["subject_code"] == "P-001" and r["session_id"] == "M00" and r["dicom_path"].endswith(source))
        folder = f"P-001/M00/{number}_fieldmap_repeat"
        spec = spec_for(kind, series_number=number, series_time=f"10{(number - 16) * 2 + 20:02d}00")
        written = write_series(
            root / "dicom" / folder, spec, patient_id="P-001", study_uid=make_uid("demo", "P-001", "M00"),
            study_date="20240115", seed=900 + number, file_prefix=kind + "_",
        )  # fmt: skip
        rows.append({**base, "series_instance_uid": written.series_instance_uid, "series_number": str(number),
                     "series_time": spec.series_time, "series_description": f"{spec.description}_{number}", "dicom_path": folder})  # fmt: skip
        added[kind] = written.series_instance_uid
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return added


def uid_of(table: Path, folder_end: str, session: str = "M00") -> str:
    rows = csv.DictReader(open(table), delimiter="\t")
    return next(r["series_instance_uid"] for r in rows if r["subject_code"] == "P-001" and r["session_id"] == session and r["dicom_path"].endswith(folder_end))


def sidecar(out: Path, rel: str) -> dict:
    return json.loads((out / "sub-P001" / rel).read_text())


def ran_jobs(text: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", text, re.M))


@pytest.mark.slow
def test_links_table_and_sessions_table_in_a_real_export(tmp_path):
    from bidsport.demo_data import make_demo
    from helpers import run_workflow, validator_issues, write_config

    table = make_demo(tmp_path / "demo", 1)
    extra = add_second_fieldmap(tmp_path / "demo", table)
    write(tmp_path / "sessions.tsv", "subject_code\tsession_id\tage\tscanner\tvisit\nP-001\tM00\t34\tPrisma\tbaseline\nP-001\tM12\t35\t\tfollow-up\nP-999\tM00\t60\tSkyra\tbaseline\n")
    base = {
        "series_table": "demo/series_table.tsv", "dicom_root": "demo/dicom", "output_dir": "out",
        "include_intents": ["dwi", "func", "fmap"], "exclude_provenance": ["DTIRecon"], "qc_snapshots": False,
        "sessions_table": "sessions.tsv",
    }  # fmt: skip
    out = tmp_path / "out"
    proc = run_workflow(tmp_path, write_config(tmp_path, **base))
    assert "sessions_table" in proc.stderr and "1 row(s) match no exported session and are ignored: line 4 (P-999, M00)" in proc.stderr

    fm1 = sidecar(out, "ses-M00/fmap/sub-P001_ses-M00_run-01_phasediff.json")["B0FieldIdentifier"]
    fm2 = sidecar(out, "ses-M00/fmap/sub-P001_ses-M00_run-02_phasediff.json")["B0FieldIdentifier"]
    bold2, dwi = "ses-M00/func/sub-P001_ses-M00_task-rest_run-02_bold.json", "ses-M00/dwi/sub-P001_ses-M00_dir-AP_dwi.json"
    assert fm1 != fm2
    assert sidecar(out, bold2)["B0FieldSource"] == fm1  # 10:00, after the 09:28 fieldmap, before the 10:20 one
    assert sidecar(out, dwi)["B0FieldSource"] == fm1  # nothing before it: the closest after
    sessions = list(csv.DictReader(open(out / "sub-P001/sub-P001_sessions.tsv"), delimiter="\t"))
    assert [(r["session_id"], r["age"], r["scanner"], r["visit"]) for r in sessions] == [
        ("ses-M00", "34", "Prisma", "baseline"), ("ses-M12", "35", "n/a", "follow-up")]  # fmt: skip
    assert list(json.loads((out / "sessions.json").read_text())) == ["session_id", "acq_time", "age", "scanner", "visit"]

    # The override table: run-02 BOLD -> the later fieldmap, the DWI -> none. Only the dataset step re-runs.
    links = write(tmp_path / "links.tsv", HEADER + f"{uid_of(table, '10_bold_rest_repeat')}\t{extra['fmap_phasediff']}\t\n{uid_of(table, '05_dwi')}\t\t\n")
    cfg = write_config(tmp_path, **base, fieldmap_links_table="links.tsv")
    proc = run_workflow(tmp_path, cfg)
    assert "convert_series" not in ran_jobs(proc.stdout + proc.stderr) and "dataset_files" in ran_jobs(proc.stdout + proc.stderr)
    assert sidecar(out, bold2)["B0FieldSource"] == fm2
    assert "B0FieldSource" not in sidecar(out, dwi)
    assert sidecar(out, "ses-M00/func/sub-P001_ses-M00_task-rest_run-01_bold.json")["B0FieldSource"] == fm1  # not listed: automatic
    intended2 = sidecar(out, "ses-M00/fmap/sub-P001_ses-M00_run-02_magnitude1.json")["IntendedFor"]
    assert intended2 == ["bids::sub-P001/ses-M00/func/sub-P001_ses-M00_task-rest_run-02_bold.nii.gz"]
    intended1 = sidecar(out, "ses-M00/fmap/sub-P001_ses-M00_run-01_phasediff.json")["IntendedFor"]
    assert intended1 == ["bids::sub-P001/ses-M00/func/sub-P001_ses-M00_task-rest_run-01_bold.nii.gz"]
    assert validator_issues(out)["errors"] == []

    # Editing the table re-runs the dataset step; a fieldmap of another session fails it, naming file and line.
    write(links, HEADER + f"{uid_of(table, '05_dwi')}\t{extra['fmap_magnitude']}\t\n")
    run_workflow(tmp_path, cfg)
    assert sidecar(out, dwi)["B0FieldSource"] == fm2 and sidecar(out, bold2)["B0FieldSource"] == fm1
    write(links, HEADER + f"{uid_of(table, '05_dwi')}\t{uid_of(table, '08_fieldmap_phase', 'M12')}\t\n")
    proc = run_workflow(tmp_path, cfg, check=False)
    assert proc.returncode != 0
    assert f"{links}:2: column 'fieldmap_series_instance_uid': fieldmap {uid_of(table, '08_fieldmap_phase', 'M12')} is from sub-P001 ses-M12" in proc.stderr
