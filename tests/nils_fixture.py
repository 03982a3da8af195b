"""A NILS metadata database (docs/database.md, "The tables read") holding the real samples.

``DDL`` is our own rendering of the tables and columns that document lists (keys,
uniqueness and the foreign-key indexes a real installation has). :func:`load_samples`
fills it from tests/data/samples/series_table.tsv and the DICOM files themselves
(one ``instance`` row per file, read with pydicom), with two cohorts, alternative
identifiers, an inactive subject, a stack flagged for manual review and one series
(Philips 1301, magnitude and phase of two echoes in one folder and one
SeriesInstanceUID) split into four stacks, as NILS splits it, numbered in an order
that is neither echo nor image-type order: only the stack columns and the instance
rows tell them apart.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pydicom

from bidsport.dicom_scan import scan_series

DDL = """
CREATE TABLE subject (
    subject_id serial PRIMARY KEY, subject_code text UNIQUE NOT NULL, patient_name text,
    patient_birth_date date, patient_sex text, is_active int NOT NULL DEFAULT 1);
CREATE TABLE id_types (id_type_id serial PRIMARY KEY, id_type_name text UNIQUE NOT NULL, description text);
CREATE TABLE subject_other_identifiers (
    subject_id int NOT NULL REFERENCES subject, id_type_id int NOT NULL REFERENCES id_types,
    other_identifier text, PRIMARY KEY (subject_id, id_type_id));
CREATE TABLE cohort (cohort_id serial PRIMARY KEY, name text UNIQUE NOT NULL, owner text, path text, is_active int DEFAULT 1);
CREATE TABLE subject_cohorts (
    subject_id int NOT NULL REFERENCES subject, cohort_id int NOT NULL REFERENCES cohort, UNIQUE (subject_id, cohort_id));
CREATE TABLE study (
    study_id serial PRIMARY KEY, study_instance_uid text UNIQUE NOT NULL, study_date date, study_time time,
    subject_id int NOT NULL REFERENCES subject);
CREATE TABLE series (
    series_id serial PRIMARY KEY, series_instance_uid text UNIQUE NOT NULL, series_number int, series_time time,
    series_description text, protocol_name text, modality text, study_id int NOT NULL REFERENCES study,
    subject_id int NOT NULL REFERENCES subject);
CREATE TABLE series_stack (
    series_stack_id serial PRIMARY KEY, series_id int NOT NULL REFERENCES series, stack_index int NOT NULL,
    stack_key text, stack_modality text, stack_echo_time double precision, stack_inversion_time double precision,
    stack_echo_numbers text, stack_echo_train_length int, stack_repetition_time double precision,
    stack_flip_angle double precision, stack_receive_coil_name text, stack_image_orientation text,
    stack_image_type text, stack_n_instances int, UNIQUE (series_id, stack_index));
CREATE TABLE instance (
    instance_id serial PRIMARY KEY, series_id int NOT NULL REFERENCES series,
    series_stack_id int REFERENCES series_stack, sop_instance_uid text UNIQUE NOT NULL,
    instance_number int, dicom_file_path text);
CREATE TABLE series_classification_cache (
    series_stack_id int PRIMARY KEY REFERENCES series_stack, series_id int, series_instance_uid text,
    study_id int, subject_id int, directory_type text, base text, modifier_csv text, technique text,
    construct_csv text, provenance text, acceleration_csv text, post_contrast int, localizer int,
    spinal_cord int, manual_review_required int, manual_review_reasons_csv text, dicom_origin_cohort text);
CREATE INDEX ON subject_cohorts (cohort_id);
CREATE INDEX ON study (subject_id);
CREATE INDEX ON series (subject_id);
CREATE INDEX ON series (study_id);
CREATE INDEX ON instance (series_id);
CREATE INDEX ON instance (series_stack_id);
"""

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TABLE = REPO / "tests" / "data" / "samples" / "series_table.tsv"

# subject_code -> what the classifier knows about the person (invented: the samples
# are phantoms). Names and birth dates must never reach the export.
PEOPLE = {
    "XA30": {"birth": "1950-03-17", "sex": "F", "cohorts": ["study"], "STUDY_ID": "S001", "name": "Kowalski^Anna"},
    "Ph_1301": {"birth": "1985-06-02", "sex": "M", "cohorts": ["study"], "STUDY_ID": "S002", "name": "Dubois^Marc"},
    "NIH": {"birth": "1990-11-30", "sex": "O", "cohorts": ["study"], "name": "Okafor^Chidi"},  # no STUDY_ID
    "CS-DL": {"birth": "1930-01-05", "sex": "M", "cohorts": ["study"], "STUDY_ID": "S004", "name": "Lindqvist^Erik"},
    "GE-Pioneer": {"birth": "1977-08-08", "sex": "F", "cohorts": ["study"], "STUDY_ID": "S005", "name": "Moreau^Lea"},
    "ENH": {"birth": "1960-07-01", "sex": "", "cohorts": ["study"], "STUDY_ID": "S006", "name": "Tanaka^Yui"},
    "GE-1486": {"birth": "1970-02-02", "sex": "M", "cohorts": ["study"], "STUDY_ID": "S007", "active": 0, "name": "Novak^Petr"},
    "UIH": {"birth": "1966-01-01", "sex": "F", "cohorts": ["other"], "STUDY_ID": "S008", "name": "Silva^Rosa"},
    "Magdeburg": {"birth": "1999-09-09", "sex": "M", "cohorts": ["other"], "STUDY_ID": "O001", "name": "Becker^Jonas"},
}
REVIEW = {"GE-Pioneer": "low_confidence_base,ambiguous_technique"}  # subject -> reasons of its stack
SPLIT = "Ph_1301"  # its series: four stacks (magnitude/phase × two echoes)
DROPPED_COLUMNS = ("session_id", "task", "phase_encoding_direction")  # not in the database


def sample_rows() -> list[dict]:
    with open(SAMPLE_TABLE, encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh, delimiter="\t") if r["subject_code"] in PEOPLE]


def age_at(birth: str, study_date: str) -> str:
    if not study_date:
        return ""
    b, d = dt.date.fromisoformat(birth), dt.date.fromisoformat(study_date)
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return "89+" if years >= 89 else str(years)


def _time(text: str) -> dt.time | None:
    if not text:
        return None
    whole, _, frac = text.partition(".")
    return dt.time(int(whole[:2]), int(whole[2:4]), int(whole[4:6]), int((frac + "000000")[:6]))


def _files(samples: Path, row: dict) -> list[tuple[str, int | None, str, bool, dict]]:
    """(relative path, InstanceNumber, SOPInstanceUID, is phase, stack facts) of the series' files."""
    out = []
    for path in map(Path, scan_series(samples / row["dicom_path"], row["series_instance_uid"]).files):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        number = ds.get("InstanceNumber")
        image_type = [str(v).upper() for v in ds.get("ImageType", [])]
        phase = any("PHASE" in v or v == "P" for v in image_type[2:])
        echo = ds.get("EchoTime")
        facts = {"stack_modality": str(ds.get("Modality") or "MR"), "stack_image_type": "\\".join(image_type),
                 "stack_echo_time": round(float(echo), 2) if echo not in (None, "") else None}  # fmt: skip
        out.append((str(path.relative_to(samples)), int(number) if number not in (None, "") else None, str(ds.SOPInstanceUID), phase, facts))
    return out


def stacks_of(samples: Path, row: dict) -> list[tuple[int, str, list, dict]]:
    """(stack_index, construct, files, stack columns) of a sample series, as NILS splits it."""
    files = _files(samples, row)
    if row["subject_code"] == SPLIT:  # magnitude and phase at two echoes: four stacks, numbered in the
        # order met (phase before magnitude, echo 2 first): names must not follow the index
        order = sorted({(f[3], f[4]["stack_echo_time"]) for f in files}, key=lambda k: (not k[0], -k[1]))
        stacks = [(i, "Phase" if phase else "Magnitude", [f for f in files if (f[3], f[4]["stack_echo_time"]) == (phase, te)])
                  for i, (phase, te) in enumerate(order)]  # fmt: skip
    else:
        stacks = [(0, row["construct_csv"], files)]
    out = []
    for index, construct, stack_files in stacks:
        facts = stack_files[0][4] if stack_files else {}
        if len({f[4]["stack_echo_time"] for f in stack_files}) > 1:
            facts = {**facts, "stack_echo_time": None}  # an unsplit series of several echoes has no one echo time
        out.append((index, construct, stack_files, facts))
    return out


def load_samples(conn, samples: Path, *, with_ddl: bool = True) -> None:
    """Create the tables (``with_ddl``) and load the sample subjects, series and files."""
    if with_ddl:
        conn.execute(DDL)
    ids = {}
    for name in ("STUDY_ID", "MRN"):
        ids[name] = conn.execute("INSERT INTO id_types (id_type_name, description) VALUES (%s, %s) RETURNING id_type_id", (name, name)).fetchone()[0]
    cohorts = {}
    for name in ("study", "other"):
        cohorts[name] = conn.execute(
            "INSERT INTO cohort (name, owner, path) VALUES (%s, 'lab', %s) RETURNING cohort_id", (name, f"/data/{name}")
        ).fetchone()[0]
    subject_ids = {}
    for n, (code, p) in enumerate(sorted(PEOPLE.items())):
        sid = conn.execute(
            "INSERT INTO subject (subject_code, patient_name, patient_birth_date, patient_sex, is_active) VALUES (%s,%s,%s,%s,%s) RETURNING subject_id",
            (code, p["name"], p["birth"], p["sex"], p.get("active", 1)),
        ).fetchone()[0]
        subject_ids[code] = sid
        for cohort in p["cohorts"]:
            conn.execute("INSERT INTO subject_cohorts VALUES (%s, %s)", (sid, cohorts[cohort]))
        conn.execute("INSERT INTO subject_other_identifiers VALUES (%s, %s, %s)", (sid, ids["MRN"], f"MRN{9000 + n}"))
        if p.get("STUDY_ID"):
            conn.execute("INSERT INTO subject_other_identifiers VALUES (%s, %s, %s)", (sid, ids["STUDY_ID"], p["STUDY_ID"]))
    studies = {}
    for row in sample_rows():
        sid = subject_ids[row["subject_code"]]
        key = (sid, row["study_date"])
        if key not in studies:
            studies[key] = conn.execute(
                "INSERT INTO study (study_instance_uid, study_date, subject_id) VALUES (%s, %s, %s) RETURNING study_id",
                (f"2.25.{900000 + len(studies)}", row["study_date"] or None, sid),
            ).fetchone()[0]
        series_id = conn.execute(
            "INSERT INTO series (series_instance_uid, series_number, series_time, series_description, modality, study_id, subject_id) "
            "VALUES (%s, %s, %s, %s, 'MR', %s, %s) RETURNING series_id",
            (row["series_instance_uid"], int(row["series_number"]), _time(row["series_time"]), row["series_description"], studies[key], sid),
        ).fetchone()[0]
        stack_key = "multi_echo" if row["subject_code"] == SPLIT else None
        for index, construct, stack_files, facts in stacks_of(samples, row):
            stack_id = conn.execute(
                "INSERT INTO series_stack (series_id, stack_index, stack_key, stack_modality, stack_echo_time, stack_image_type, "
                "stack_n_instances) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING series_stack_id",
                (series_id, index, stack_key, facts.get("stack_modality"), facts.get("stack_echo_time"),
                 facts.get("stack_image_type"), len(stack_files)),
            ).fetchone()[0]  # fmt: skip
            for rel, number, sop, _, _ in stack_files:
                conn.execute(
                    "INSERT INTO instance (series_id, series_stack_id, sop_instance_uid, instance_number, dicom_file_path) VALUES (%s,%s,%s,%s,%s)",
                    (series_id, stack_id, sop, number, rel),
                )
            reasons = REVIEW.get(row["subject_code"])
            conn.execute(
                "INSERT INTO series_classification_cache (series_stack_id, series_id, series_instance_uid, study_id, subject_id, "
                "directory_type, base, modifier_csv, technique, construct_csv, provenance, post_contrast, localizer, spinal_cord, "
                "manual_review_required, manual_review_reasons_csv) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,0,%s,0,%s,%s)",
                (stack_id, series_id, row["series_instance_uid"], studies[key], sid, row["directory_type"], row["base"] or None,
                 row["modifier_csv"] or None, row["technique"] or None, construct or None, row["provenance"] or None,
                 1 if row["directory_type"] == "localizer" else 0, 1 if reasons else 0, reasons),
            )  # fmt: skip


def equivalent_table(path: Path, subjects: list[str], *, include_review: bool = False, samples: Path | None = None) -> Path:
    """The hand-made series table that says what the database says for ``subjects``
    (no session_id, task or PE direction: the database has none; one row per stack,
    with the stack columns), and beside it the instances table that lists each
    stack's files, as the database does. Returns the instances table's path."""
    from helpers import SAMPLES

    rows, instances = [], []
    for row in sample_rows():
        code = row["subject_code"]
        if code not in subjects or (code in REVIEW and not include_review):
            continue
        row = {k: v for k, v in row.items() if k not in DROPPED_COLUMNS}
        row["age_at_study"] = age_at(PEOPLE[code]["birth"], row["study_date"])
        for index, construct, files, facts in stacks_of(samples or SAMPLES, row):
            stack_echo = facts.get("stack_echo_time")
            rows.append({**row, "stack_index": str(index), "construct_csv": construct,
                         "stack_key": "multi_echo" if code == SPLIT else "", "stack_modality": facts.get("stack_modality", ""),
                         "stack_echo_time": "" if stack_echo is None else f"{stack_echo:g}",
                         "stack_image_type": facts.get("stack_image_type", ""), "stack_n_instances": str(len(files))})  # fmt: skip
            instances += [{"series_instance_uid": row["series_instance_uid"], "stack_index": str(index),
                           "instance_number": "" if number is None else str(number), "dicom_file_path": rel}
                          for rel, number, _, _, _ in files]  # fmt: skip
    for target, table in ((path, rows), (path.with_name("instances.tsv"), instances)):
        with open(target, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(table[0]), delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
    return path.with_name("instances.tsv")


def equivalent_subject_tables(folder: Path, subjects: list[str]) -> tuple[Path, Path]:
    """Hand-made subjects (sex) and identifiers (STUDY_ID) tables for ``subjects``."""
    people = folder / "subjects.tsv"
    people.write_text("subject_code\tsex\n" + "".join(f"{c}\t{PEOPLE[c]['sex']}\n" for c in subjects), encoding="utf-8")
    ids = folder / "identifiers.tsv"
    ids.write_text(
        "subject_code\tid_type\tother_identifier\n"
        + "".join(f"{c}\tSTUDY_ID\t{PEOPLE[c]['STUDY_ID']}\n" for c in subjects if PEOPLE[c].get("STUDY_ID")),
        encoding="utf-8",
    )
    return people, ids
