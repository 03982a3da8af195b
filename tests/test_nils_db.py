"""Export a cohort straight from the classifier's PostgreSQL database (issue 12).

A real PostgreSQL (tests/pg_server.py) holds the NILS tables (our own DDL) filled
with the real samples (tests/nils_fixture.py): cohorts ``study`` and ``other``,
STUDY_ID and MRN identifiers, an inactive subject, a stack flagged for review, and
the Philips 1301 series split into four stacks (magnitude/phase × two echoes) that
only the stack columns and the ``instance`` rows tell apart.
"""

from __future__ import annotations

import gzip
import json
import hashlib
import re

import pytest

from bidsport import nils_db
from helpers import SAMPLES, dataset_files, jobs_started, needs_samples, read_report, run_workflow, snapshot, validator_issues, write_config
from nils_fixture import PEOPLE, REVIEW, equivalent_subject_tables, equivalent_table, load_samples

pytestmark = [pytest.mark.slow, needs_samples]

STUDY = ["CS-DL", "ENH", "NIH", "Ph_1301", "XA30"]  # active members of `study`, none flagged
CS_DL_UID = "1.3.46.670589.11.45190.5.0.8492.2023021412300752143"
PH_UID = "1.3.46.670589.11.38109.5.0.13652.2023102414525915777"


@pytest.fixture(scope="module")
def nils(postgres):
    """Database ``nils`` (the re-run tests at the end change it) and an untouched
    copy, ``nils_pristine``, for tests that must not depend on the order."""
    postgres.create_database("nils")
    with postgres.admin("nils") as conn:
        load_samples(conn, SAMPLES)
    with postgres.admin("postgres") as conn:
        conn.execute('DROP DATABASE IF EXISTS "nils_pristine"')
        conn.execute('CREATE DATABASE "nils_pristine" TEMPLATE "nils"')
    return postgres


def db_config(work, server, **extra):
    values = dict(
        nils_database_url=server.url("nils"), nils_cohort="study", dicom_root=str(SAMPLES), output_dir="bids",
        subject_identifier_source="STUDY_ID", dataset_name="nils",
    )  # fmt: skip
    return write_config(work, **{**values, **extra})


@pytest.fixture(scope="module")
def db_export(nils, tmp_path_factory):
    work = tmp_path_factory.mktemp("nils_db")
    cfg = db_config(work, nils)
    proc = run_workflow(work, cfg, env=nils.env)
    return {"work": work, "out": work / "bids", "cfg": cfg, "proc": proc}


@pytest.fixture(scope="module")
def table_export(tmp_path_factory):
    """The same cohort from hand-made tables (what the database says, written by hand)."""
    work = tmp_path_factory.mktemp("nils_table")
    instances = equivalent_table(work / "series.tsv", STUDY)
    people, ids = equivalent_subject_tables(work, STUDY)
    cfg = write_config(
        work, series_table="series.tsv", instances_table=str(instances), subjects_table=str(people), subject_identifiers_table=str(ids),
        dicom_root=str(SAMPLES), output_dir="bids", subject_identifier_source="STUDY_ID", dataset_name="nils",
    )  # fmt: skip
    run_workflow(work, cfg)
    return {"work": work, "out": work / "bids"}


def content_digests(out):
    """Every dataset file (not bidsport's own code/ and state) -> checksum of its content."""
    result = {}
    for rel in dataset_files(out):
        if rel.startswith("code/"):
            continue
        data = (out / rel).read_bytes()
        if rel.endswith(".gz"):
            data = gzip.decompress(data)  # the gzip header carries a time stamp
        result[rel] = hashlib.sha256(data).hexdigest()
    return result


def test_database_export_equals_the_hand_made_table_export(db_export, table_export):
    ours, theirs = content_digests(db_export["out"]), content_digests(table_export["out"])
    assert sorted(ours) == sorted(theirs)
    assert [f for f in ours if ours[f] != theirs[f]] == []
    assert sum(f.endswith(".nii.gz") for f in ours) >= 15
    issues = validator_issues(db_export["out"])
    assert issues["errors"] == [], issues["errors"][:3]


def test_only_active_subjects_of_the_cohort_are_exported(db_export):
    subjects = {f.split("/")[0] for f in dataset_files(db_export["out"]) if f.startswith("sub-")}
    # STUDY_ID names the subjects; NIH has none and keeps its subject_code
    assert subjects == {"sub-S001", "sub-S002", "sub-NIH", "sub-S004", "sub-S006"}
    report = read_report(db_export["out"])
    codes = {r["subject_code"] for r in report}
    assert codes == set(STUDY) | set(REVIEW)  # other cohort (UIH, Magdeburg) and inactive GE-1486 absent
    nih = {r["subject_source"] for r in report if r["subject_code"] == "NIH"}
    assert nih == {"subject_code (no STUDY_ID identifier)"}


def test_stacks_told_apart_by_stack_columns_and_instance_rows(db_export):
    rows = [r for r in read_report(db_export["out"]) if r["series_instance_uid"] == PH_UID]
    assert sorted(r["stack_index"] for r in rows) == ["0", "1", "2", "3"]
    images = {r["stack_index"]: [f.rsplit("/", 1)[1] for f in r["files"].split(", ") if f.endswith(".nii.gz")] for r in rows}
    # discovery order (phase echo 2, phase echo 1, magnitude echo 2, magnitude echo 1) never names them
    assert images == {
        "0": ["sub-S002_ses-20231024_phase2.nii.gz"], "1": ["sub-S002_ses-20231024_phase1.nii.gz"],
        "2": ["sub-S002_ses-20231024_magnitude2.nii.gz"], "3": ["sub-S002_ses-20231024_magnitude1.nii.gz"],
    }  # fmt: skip
    fmap = db_export["out"] / "sub-S002" / "ses-20231024" / "fmap"
    for name, echo, kind in (("magnitude1", 0.007001, "MAGNITUDE"), ("magnitude2", 0.01, "MAGNITUDE"),
                             ("phase1", 0.007001, "PHASE"), ("phase2", 0.01, "PHASE")):  # fmt: skip
        sidecar = json.loads((fmap / f"sub-S002_ses-20231024_{name}.json").read_text())
        assert (sidecar["EchoTime"], sidecar["ImageType"][-1]) == (echo, kind), name  # each file holds its own image
    identifiers = {json.loads(p.read_text())["B0FieldIdentifier"] for p in fmap.glob("*.json")}
    assert len(identifiers) == 1  # one fieldmap acquisition, one identifier


def test_review_flagged_stack_is_excluded_with_the_classifiers_reasons(db_export):
    row = next(r for r in read_report(db_export["out"]) if r["subject_code"] == "GE-Pioneer")
    assert row["status"] == "excluded"
    assert REVIEW["GE-Pioneer"] in row["reason"]
    assert not any(f.startswith("sub-S005") for f in dataset_files(db_export["out"]))


def test_participants_have_sex_and_age_at_the_first_exported_session(db_export):
    out = db_export["out"]
    lines = (out / "participants.tsv").read_text().splitlines()
    assert lines[0] == "participant_id\tsex\tage"
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[1:]}
    assert rows == {
        "sub-NIH": ["O", "27"],
        "sub-S001": ["F", "72"],
        "sub-S002": ["M", "38"],
        "sub-S004": ["M", "89+"],  # born 1930: 93 at the scan
        "sub-S006": ["n/a", "57"],  # ENH: 57 at its first session (2018-05-26), 58 at its second
    }
    import json

    sidecar = json.loads((out / "participants.json").read_text())
    assert sidecar["age"]["Units"] == "year" and "first exported session" in sidecar["age"]["Description"]
    assert sidecar["sex"]["Levels"]["F"] == "female"


def test_no_birth_date_name_identifier_or_password_is_written(db_export, nils):
    secrets = [nils.password]
    for person in PEOPLE.values():
        birth = person["birth"]
        secrets += [birth, birth.replace("-", ""), person["name"], person["name"].split("^")[0]]
    secrets += [f"MRN{9000 + n}" for n in range(len(PEOPLE))]
    found = []
    for root in (db_export["out"], db_export["work"]):  # the export and Snakemake's own files and logs
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                data = gzip.decompress(data)
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    assert found == []
    assert nils.password not in db_export["proc"].stdout + db_export["proc"].stderr


def test_snapshot_is_written_and_reproduces_the_plan_without_the_database(db_export, tmp_path):
    code = db_export["out"] / "code" / "bidsport"
    for name in ("series_table.tsv", "instances.tsv", "subjects.tsv", "subject_identifiers.tsv"):
        assert (code / name).stat().st_size > 0
    header = (code / "series_table.tsv").read_text().splitlines()[0].split("\t")
    assert {"manual_review_required", "manual_review_reasons_csv", "localizer", "spinal_cord", "age_at_study"} <= set(header)
    assert "MRN" not in (code / "subject_identifiers.tsv").read_text()  # only the id type that names subjects
    cfg = write_config(
        tmp_path, series_table=str(code / "series_table.tsv"), instances_table=str(code / "instances.tsv"),
        subjects_table=str(code / "subjects.tsv"), subject_identifiers_table=str(code / "subject_identifiers.tsv"),
        dicom_root=str(SAMPLES), output_dir="bids", subject_identifier_source="STUDY_ID", dataset_name="nils",
    )  # fmt: skip
    run_workflow(tmp_path, cfg, str(tmp_path / "bids" / "code" / "bidsport" / "plan.tsv"), env={"PGPASSWORD": ""})
    ours = db_export["out"] / ".bidsport" / "specs"
    theirs = tmp_path / "bids" / ".bidsport" / "specs"
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
    assert all((ours / p.name).read_text() == (theirs / p.name).read_text() for p in ours.iterdir())
    assert (tmp_path / "bids/code/bidsport/plan.tsv").read_text() == (code / "plan.tsv").read_text()


def test_include_manual_review_exports_the_flagged_stack(nils, tmp_path):
    cfg = db_config(tmp_path, nils, include_manual_review=True, include_intents=["dwi"])
    run_workflow(tmp_path, cfg, env=nils.env)
    row = next(r for r in read_report(tmp_path / "bids") if r["subject_code"] == "GE-Pioneer")
    assert row["status"] == "exported"
    assert "sub-S005/ses-20200929/dwi/sub-S005_ses-20200929_dwi.nii.gz" in row["files"]


def test_overwrite_clean_keeps_the_snapshot_it_plans_from(nils, tmp_path):
    cfg = db_config(tmp_path, nils, overwrite="clean", include_intents=["anat"])
    for _ in range(2):  # the second run empties the export first, but not the snapshot
        run_workflow(tmp_path, cfg, env=nils.env)
        assert (tmp_path / "bids/code/bidsport/series_table.tsv").exists()
        assert "sub-S001/ses-20220711/anat/sub-S001_ses-20220711_T1w.nii.gz" in dataset_files(tmp_path / "bids")


# ---- re-runs against the database (these change it: they run last, in this order)


def test_noop_rerun_against_an_unchanged_database_runs_nothing(db_export, nils):
    before = snapshot(db_export["out"])
    proc = run_workflow(db_export["work"], db_export["cfg"], env=nils.env)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert snapshot(db_export["out"]) == before


def _changed(before, after):
    return sorted(f for f in after if f.startswith("sub-") and before.get(f) != after[f] and not f.endswith("scans.tsv"))


def test_reclassified_stack_reruns_only_that_stack(db_export, nils):
    out = db_export["out"]
    before = snapshot(out)
    with nils.admin("nils") as conn:
        conn.execute("UPDATE series_classification_cache SET base = 'T2w' WHERE series_instance_uid = %s", (CS_DL_UID,))
    # A preview of the changed database writes nothing (not even the snapshot) and shows the plan re-made.
    state = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    dry = run_workflow(db_export["work"], db_export["cfg"], "-n", env=nils.env)
    assert "checkpoint plan:" in dry.stdout and "reason: Forced execution" in dry.stdout
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == state
    proc = run_workflow(db_export["work"], db_export["cfg"], "--printshellcmds", env=nils.env)
    assert jobs_started(proc.stdout + proc.stderr).get("convert_series") == 1
    after = snapshot(out)
    assert "sub-S004/ses-20230214/anat/sub-S004_ses-20230214_T1w.nii.gz" not in after
    assert _changed(before, after) == [
        "sub-S004/ses-20230214/anat/sub-S004_ses-20230214_T2w.json",
        "sub-S004/ses-20230214/anat/sub-S004_ses-20230214_T2w.nii.gz",
    ]


def test_subject_added_to_the_cohort_adds_only_its_jobs(db_export, nils):
    out = db_export["out"]
    before = snapshot(out)
    with nils.admin("nils") as conn:
        conn.execute(
            "INSERT INTO subject_cohorts SELECT s.subject_id, c.cohort_id FROM subject s, cohort c "
            "WHERE s.subject_code = 'UIH' AND c.name = 'study'"
        )
    proc = run_workflow(db_export["work"], db_export["cfg"], "--printshellcmds", env=nils.env)
    assert jobs_started(proc.stdout + proc.stderr).get("convert_series") == 2
    after = snapshot(out)
    assert all(f.startswith("sub-S008/") for f in _changed(before, after))
    assert [f for f in before if f.startswith("sub-") and before[f] != after.get(f) and not f.endswith("scans.tsv")] == []
    assert "sub-S008\tF\tn/a" in (out / "participants.tsv").read_text()  # UIH: no study date, no age


def test_a_listed_file_missing_on_disk_fails_only_its_series(db_export, nils):
    with nils.admin("nils") as conn:
        conn.execute(
            "INSERT INTO instance (series_id, series_stack_id, sop_instance_uid, instance_number, dicom_file_path) "
            "SELECT ss.series_id, ss.series_stack_id, '2.25.1', 2, 'dcm_qa_nih/In/20180918Si/mr_0003/gone.dcm' "
            "FROM series_stack ss JOIN series s USING (series_id) WHERE s.series_number = 3 AND s.series_description = 'EPI PE=AP'"
        )
    proc = run_workflow(db_export["work"], db_export["cfg"], env=nils.env, check=False)
    assert proc.returncode != 0
    report = read_report(db_export["out"])
    failed = [r for r in report if r["status"] == "failed"]
    assert [r["series_description"] for r in failed] == ["EPI PE=AP"]
    assert f"1 of the 3 listed DICOM file(s) of this stack are missing: {SAMPLES}/dcm_qa_nih/In/20180918Si/mr_0003/gone.dcm" in failed[0]["reason"]
    assert {r["status"] for r in report if r not in failed} <= {"exported", "excluded"}
    assert "1 series failed" in proc.stderr


# ---- configuration errors (parse time, before anything runs): common.smk calls
# nils_db.write_snapshot in the main process; tested in-process here, and once end
# to end (the password case: the message reaches the terminal, the password never).
# The checks that need no server are in test_refusals.py.


def snapshot_config(nils, tmp_path, **extra):
    values = {"nils_database_url": nils.url("nils_pristine"), "nils_cohort": "study", "dicom_root": str(SAMPLES),
              "output_dir": str(tmp_path / "bids"), "subject_identifier_source": "STUDY_ID", **extra}  # fmt: skip
    return values


def test_unknown_cohort_is_one_error_listing_the_cohorts(nils, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", nils.password)
    with pytest.raises(nils_db.NilsDatabaseError) as info:
        nils_db.write_snapshot(snapshot_config(nils, tmp_path, nils_cohort="stduy"))
    url = nils.url("nils_pristine")
    assert str(info.value) == f"nils_cohort 'stduy' is not a cohort of the NILS database {url}; its cohorts: other (2 subjects), study (6 subjects)"
    assert not (tmp_path / "bids").exists()


def test_unknown_identifier_type_is_one_error_listing_the_types(nils, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", nils.password)
    with pytest.raises(nils_db.NilsDatabaseError) as info:
        nils_db.write_snapshot(snapshot_config(nils, tmp_path, subject_identifier_source="STUDYID"))
    assert "subject_identifier_source 'STUDYID' is not an id_types.id_type_name (or id) of the NILS database" in str(info.value)
    assert "its id types: MRN (2), STUDY_ID (1)" in str(info.value)
    assert not (tmp_path / "bids").exists()


def test_wrong_password_is_one_error_without_the_password(nils, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "not-" + nils.password)
    with pytest.raises(nils_db.NilsDatabaseError) as info:
        nils_db.write_snapshot(snapshot_config(nils, tmp_path))
    assert str(info.value).startswith(f"cannot connect to the NILS database {nils.url('nils_pristine')}: ")
    assert nils.password not in str(info.value)


def test_a_password_in_the_url_is_refused_and_never_shown(nils, tmp_path):
    url = nils.url("nils").replace("bidsport_reader@", f"bidsport_reader:{nils.password}@")
    cfg = db_config(tmp_path, nils, nils_database_url=url)
    proc = run_workflow(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "contains a password: remove it and give it in PGPASSWORD or ~/.pgpass" in proc.stdout + proc.stderr
    assert nils.password not in proc.stdout + proc.stderr
    assert not (tmp_path / "bids").exists()


def test_list_cohorts_and_load_cohort_api(nils, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", nils.password)
    url = nils.url("nils_pristine")
    cohorts = nils_db.list_cohorts(url)
    assert cohorts == [{"name": "other", "n_subjects": 2}, {"name": "study", "n_subjects": 6}]  # GE-1486 is inactive
    series, instances, subjects, identifiers = nils_db.load_cohort(url, "other", SAMPLES, id_type="STUDY_ID")
    assert set(series["subject_code"]) == {"Magdeburg", "UIH"}
    assert list(instances.columns) == ["series_instance_uid", "stack_index", "instance_number", "dicom_file_path"]
    assert set(instances["series_instance_uid"]) == set(series["series_instance_uid"])
    assert set(identifiers["id_type"]) == {"STUDY_ID"}
    assert set(subjects["subject_code"]) == {"Magdeburg", "UIH"}
    import psycopg

    with nils_db.connect(url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("UPDATE cohort SET name = 'x'")  # bidsport's connection never writes
    assert "patient_birth_date" not in series.columns and not any(re.search(r"19\d\d-\d\d-\d\d", str(v)) for v in series["age_at_study"])


def test_relative_paths_take_the_sub_prefix_where_only_that_exists(tmp_path):
    (tmp_path / "sub-P001" / "ses-1").mkdir(parents=True)
    (tmp_path / "P002").mkdir()
    resolve = nils_db._path_resolver(tmp_path)
    assert resolve("P001/ses-1/a.dcm") == "sub-P001/ses-1/a.dcm"
    assert resolve("P002/b.dcm") == "P002/b.dcm"
    assert resolve("/abs/c.dcm") == "/abs/c.dcm"
    assert resolve("P003/d.dcm") == "P003/d.dcm"  # neither exists: reported missing by its series


def test_mask_url_hides_passwords():
    assert nils_db.mask_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert nils_db.mask_url("host=h password=s3cret dbname=db") == "host=h password=*** dbname=db"
    assert nils_db.mask_url("host=h password='s3 cret' dbname=db") == "host=h password=*** dbname=db"
    assert nils_db.mask_url("postgresql://u@h:5432/db") == "postgresql://u@h:5432/db"  # nothing to hide
