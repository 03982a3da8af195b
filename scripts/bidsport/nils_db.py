"""Read a cohort straight from the classifier's PostgreSQL metadata database (NILS).

(Its length is mostly the SQL statements, kept beside the code that reads their rows.)

The database (``docs/database.md``) is read with one set-based, streamed
query (a server-side cursor) in a read-only transaction, and turned into the same
tables a user would write by hand:

* series     — the series-table contract (docs/series-table.md), one row per classified
  stack, plus ``localizer``, ``spinal_cord``, ``manual_review_required``,
  ``manual_review_reasons_csv`` and ``age_at_study`` (years; ``89+`` from 89 on);
* instances  — ``series_instance_uid, stack_index, instance_number, dicom_file_path``:
  the exact files of every stack, in ``instance_number`` order (empty last);
* subjects   — ``subject_code, sex`` (for participants.tsv);
* identifiers — ``subject_code, id_type, other_identifier`` of the one id type that
  names the subjects (other identifiers, which may be hospital numbers, are not read).

The workflow reads the cohort at parse time (:func:`stage_snapshot`) and its plan
job writes it under ``<output_dir>/code/bidsport/`` (:func:`write_staged`, rewritten
only when their content changes); the workflow then plans from those files, so an
export can always be reproduced without the database. Birth dates and names never
leave the database: the age is computed by the server.

The password comes from ``PGPASSWORD`` or ``~/.pgpass`` (libpq); a URL that holds
one is refused, and URLs are shown with any password masked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from . import layout, tsv
from .fsutil import write_if_changed

if TYPE_CHECKING:
    import pandas as pd

SNAPSHOT_DIR = layout.CODE_DIR
# config key -> snapshot file (the keys the planner and dataset step already read)
SNAPSHOT_FILES = {
    "series_table": "series_table.tsv",
    "instances_table": "instances.tsv",
    "subjects_table": "subjects.tsv",
    "subject_identifiers_table": "subject_identifiers.tsv",
}
SERIES_COLUMNS = [
    "subject_code", "study_date", "series_instance_uid", "stack_index", "stack_key", "series_number",
    "series_time", "series_description", "dicom_path", "directory_type", "base", "modifier_csv",
    "construct_csv", "technique", "provenance", "acceleration_csv", "post_contrast", "localizer",
    "spinal_cord", "manual_review_required", "manual_review_reasons_csv", "age_at_study",
    # What each stack holds (series_stack), so that stacks are named by it, never by index.
    "stack_modality", "stack_echo_time", "stack_inversion_time", "stack_echo_numbers", "stack_image_type",
    "stack_image_orientation", "stack_n_instances",
]  # fmt: skip
# series_stack columns read when the database has them (older NILS schemas lack some).
STACK_FACT_COLUMNS = SERIES_COLUMNS[SERIES_COLUMNS.index("stack_modality") :]
INSTANCE_COLUMNS = ["series_instance_uid", "stack_index", "instance_number", "dicom_file_path"]
SUBJECT_COLUMNS = ["subject_code", "sex"]
IDENTIFIER_COLUMNS = ["subject_code", "id_type", "other_identifier"]
AGE_CAP = 89  # HIPAA safe harbour: 89 and older is written as "89+"
FETCH_ROWS = 2000  # rows per round trip of the server-side cursor


class NilsDatabaseError(RuntimeError):
    """A problem reading the NILS database; the message never holds a password."""


# --------------------------------------------------------------------------- connection


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages)."""
    masked = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", str(url))
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", masked, flags=re.I)


def check_url(url: str) -> None:
    """Refuse a URL that carries a password: it would sit in a config file."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - psycopg.ProgrammingError; keep the message, mask the URL
        raise NilsDatabaseError(f"nils_database_url {mask_url(url)!r} is not a libpq URL: {_masked(exc, url)}") from None
    if params.get("password"):
        raise NilsDatabaseError(
            f"nils_database_url {mask_url(url)!r} contains a password: remove it and give it in "
            "PGPASSWORD or ~/.pgpass (bidsport never stores a password)"
        )


def _masked(exc: Exception, url: str) -> str:
    text = str(exc).strip().replace(str(url), mask_url(url))
    return mask_url(text)


def connect(url: str):
    """A read-only connection (every transaction is READ ONLY)."""
    import psycopg

    check_url(url)
    try:
        conn = psycopg.connect(url, connect_timeout=30, application_name="bidsport")
    except psycopg.Error as exc:
        raise NilsDatabaseError(f"cannot connect to the NILS database {mask_url(url)}: {_masked(exc, url)}") from None
    conn.read_only = True
    return conn


def _query_error(exc: Exception, url: str) -> NilsDatabaseError:
    return NilsDatabaseError(f"reading the NILS database {mask_url(url)} failed: {_masked(exc, url)}")


# --------------------------------------------------------------------------- queries

COHORTS_SQL = """
SELECT c.name, count(s.subject_id) AS n_subjects
FROM cohort c
LEFT JOIN subject_cohorts sc ON sc.cohort_id = c.cohort_id
LEFT JOIN subject s ON s.subject_id = sc.subject_id AND s.is_active = 1
GROUP BY c.name
ORDER BY c.name
"""

# One row per classified stack of the cohort's active subjects, with its files
# (instance rows) aggregated in instance_number order. Instances without a stack
# belong to their series when it has exactly one stack. The age is computed here,
# so the birth date never leaves the server. NOT MATERIALIZED (PostgreSQL >= 12)
# lets the planner join the instances against the cohort's series as it sees fit:
# materialized, it hashed every instance row of the database (benchmarks/nils_db.py).
STACKS_SQL = """
WITH members AS NOT MATERIALIZED (
    SELECT s.subject_id
    FROM subject s
    JOIN subject_cohorts sc ON sc.subject_id = s.subject_id
    JOIN cohort c ON c.cohort_id = sc.cohort_id
    WHERE c.name = %(cohort)s AND s.is_active = 1
),
member_series AS NOT MATERIALIZED (
    SELECT se.series_id FROM series se JOIN members m ON m.subject_id = se.subject_id
),
single_stack AS (
    SELECT ss.series_id, min(ss.series_stack_id) AS series_stack_id
    FROM series_stack ss JOIN member_series ms ON ms.series_id = ss.series_id
    GROUP BY ss.series_id
    HAVING count(*) = 1
),
files AS (
    SELECT coalesce(i.series_stack_id, one.series_stack_id) AS series_stack_id,
           array_agg(i.instance_number ORDER BY i.instance_number NULLS LAST, i.dicom_file_path) AS numbers,
           array_agg(i.dicom_file_path ORDER BY i.instance_number NULLS LAST, i.dicom_file_path) AS paths
    FROM instance i
    JOIN member_series ms ON ms.series_id = i.series_id
    LEFT JOIN single_stack one ON i.series_stack_id IS NULL AND one.series_id = i.series_id
    WHERE i.dicom_file_path IS NOT NULL AND i.dicom_file_path <> ''
    GROUP BY 1
)
SELECT subj.subject_code, st.study_date, se.series_instance_uid, ss.stack_index, ss.stack_key,
       {series_number} AS series_number, se.series_time, se.series_description,
       c.directory_type, c.base, c.modifier_csv, c.construct_csv, c.technique, c.provenance,
       c.acceleration_csv, c.post_contrast, c.localizer, c.spinal_cord,
       c.manual_review_required, c.manual_review_reasons_csv,
       extract(year FROM age(st.study_date, subj.patient_birth_date))::int AS age_years,
       {stack_facts},
       f.numbers, f.paths
FROM series_classification_cache c
JOIN series_stack ss ON ss.series_stack_id = c.series_stack_id
JOIN series se ON se.series_id = ss.series_id
JOIN members m ON m.subject_id = se.subject_id
JOIN subject subj ON subj.subject_id = se.subject_id
LEFT JOIN study st ON st.study_id = se.study_id
LEFT JOIN files f ON f.series_stack_id = c.series_stack_id
ORDER BY subj.subject_code, st.study_date, se.series_instance_uid, ss.stack_index
"""

SUBJECTS_SQL = """
SELECT s.subject_code, coalesce(s.patient_sex, '') AS sex
FROM subject s
JOIN subject_cohorts sc ON sc.subject_id = s.subject_id
JOIN cohort c ON c.cohort_id = sc.cohort_id
WHERE c.name = %(cohort)s AND s.is_active = 1
ORDER BY s.subject_code
"""

IDENTIFIERS_SQL = """
SELECT s.subject_code, t.id_type_name AS id_type, o.other_identifier
FROM subject_other_identifiers o
JOIN id_types t ON t.id_type_id = o.id_type_id
JOIN subject s ON s.subject_id = o.subject_id
JOIN subject_cohorts sc ON sc.subject_id = s.subject_id
JOIN cohort c ON c.cohort_id = sc.cohort_id
WHERE c.name = %(cohort)s AND s.is_active = 1 AND t.id_type_id = %(id_type_id)s
  AND coalesce(o.other_identifier, '') <> ''
ORDER BY s.subject_code, o.other_identifier
"""


def list_cohorts(url: str) -> list[dict]:
    """Every cohort: ``[{"name": ..., "n_subjects": <active members>}, ...]`` by name."""
    import psycopg

    with connect(url) as conn:
        try:
            rows = conn.execute(COHORTS_SQL).fetchall()
        except psycopg.Error as exc:
            raise _query_error(exc, url) from None
    return [{"name": name, "n_subjects": int(n)} for name, n in rows]


def _cohort_exists(conn, cohort: str) -> bool:
    return conn.execute("SELECT 1 FROM cohort WHERE name = %s", (cohort,)).fetchone() is not None


def _unknown_cohort(cohort: str, url: str, cohorts: list[dict]) -> NilsDatabaseError:
    known = ", ".join(f"{c['name']} ({c['n_subjects']} subjects)" for c in cohorts) or "(none)"
    return NilsDatabaseError(f"nils_cohort {cohort!r} is not a cohort of the NILS database {mask_url(url)}; its cohorts: {known}")


def _id_type_id(conn, id_type: str | int, url: str) -> int:
    rows = conn.execute("SELECT id_type_id, id_type_name FROM id_types ORDER BY id_type_name").fetchall()
    for type_id, name in rows:
        if str(id_type) in (name, str(type_id)):
            return int(type_id)
    known = ", ".join(f"{name} ({type_id})" for type_id, name in rows) or "(none)"
    raise NilsDatabaseError(
        f"subject_identifier_source {id_type!r} is not an id_types.id_type_name (or id) of the NILS "
        f"database {mask_url(url)}; its id types: {known}"
    )


def _has_column(conn, table: str, column: str) -> bool:
    sql = "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s AND table_schema = ANY(current_schemas(false))"
    return conn.execute(sql, (table, column)).fetchone() is not None


def load_cohort(
    url: str, cohort: str, dicom_root: str | os.PathLike, id_type: str | int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(series, instances, subjects, identifiers) of one cohort, as text DataFrames.

    ``id_type``: the ``id_types.id_type_name`` (or id) whose identifiers name the
    subjects (None or ``subject_code``: no identifiers). Relative file paths get the
    ``sub-`` prefix where only that form exists under ``dicom_root``.
    """
    import pandas as pd

    rows = read_cohort(url, cohort, dicom_root, id_type)
    columns = (SERIES_COLUMNS, INSTANCE_COLUMNS, SUBJECT_COLUMNS, IDENTIFIER_COLUMNS)
    return tuple(pd.DataFrame(r, columns=c, dtype=object) for r, c in zip(rows, columns))  # type: ignore[return-value]


def read_cohort(
    url: str, cohort: str, dicom_root: str | os.PathLike, id_type: str | int | None = None
) -> tuple[list[list[str]], list[list[str]], list[list[str]], list[list[str]]]:
    """:func:`load_cohort` as plain rows of text (no pandas: the snapshot needs none)."""
    import psycopg

    resolve = _path_resolver(Path(dicom_root))
    series_rows: list[list[str]] = []
    instance_rows: list[list[str]] = []
    with connect(url) as conn:
        try:
            if not _cohort_exists(conn, cohort):
                cohorts = [{"name": n, "n_subjects": int(k)} for n, k in conn.execute(COHORTS_SQL).fetchall()]
                raise _unknown_cohort(cohort, url, cohorts)
            id_type_id = None
            if id_type not in (None, "", "subject_code"):
                id_type_id = _id_type_id(conn, id_type, url)
            number = "se.series_number::text" if _has_column(conn, "series", "series_number") else "NULL::text"
            sql = STACKS_SQL.format(series_number=number, stack_facts=_stack_fact_columns(conn))
            # This session only: JIT compiling took a large share of the statement at
            # scale, and the default work_mem spilled the aggregation of the file lists
            # to disk (benchmarks/results_nils_db.md).
            conn.execute("SET jit = off")
            conn.execute("SET work_mem = '64MB'")
            with conn.cursor(name="bidsport_stacks") as cur:  # server-side: streamed, not loaded at once
                cur.itersize = FETCH_ROWS
                cur.execute(sql, {"cohort": cohort})
                for row in cur:
                    _add_stack(row, resolve, series_rows, instance_rows)
            subjects = conn.execute(SUBJECTS_SQL, {"cohort": cohort}).fetchall()
            identifiers = []
            if id_type_id is not None:
                identifiers = conn.execute(IDENTIFIERS_SQL, {"cohort": cohort, "id_type_id": id_type_id}).fetchall()
        except psycopg.Error as exc:
            raise _query_error(exc, url) from None
    return series_rows, instance_rows, [[_text(c) for c in r] for r in subjects], [[_text(c) for c in r] for r in identifiers]


def _stack_fact_columns(conn) -> str:
    """The SELECT list of the stack columns; a column the database lacks is NULL, and
    a stack without a modality takes its series' (NILS holds CT and PET too)."""
    chosen = []
    for column in STACK_FACT_COLUMNS:
        value = f"ss.{column}::text" if _has_column(conn, "series_stack", column) else "NULL::text"
        if column == "stack_modality" and _has_column(conn, "series", "modality"):
            value = f"coalesce({value}, se.modality)"
        chosen.append(f"{value} AS {column}")
    return ", ".join(chosen)


def _add_stack(row: tuple, resolve, series_rows: list, instance_rows: list) -> None:
    (code, study_date, uid, stack_index, stack_key, series_number, series_time, description, directory_type,
     base, modifiers, constructs, technique, provenance, acceleration, post_contrast, localizer, spinal_cord,
     review, reasons, age_years, *stack_facts, numbers, paths) = row  # fmt: skip
    paths = [resolve(p) for p in (paths or [])]
    stack = _text(stack_index if stack_index is not None else 0)
    for number, path in zip(numbers or [], paths):
        instance_rows.append([uid, stack, _text(number), path])
    series_rows.append(
        [
            _text(code), _text(study_date), _text(uid), stack, _text(stack_key), _text(series_number),
            _text(series_time), _text(description), common_folder(paths) or ".", _text(directory_type), _text(base),
            _text(modifiers), _text(constructs), _text(technique), _text(provenance), _text(acceleration),
            _text(post_contrast), _text(localizer), _text(spinal_cord), _text(review), _text(reasons),
            age_text(age_years), *(_text(v) for v in stack_facts),
        ]
    )  # fmt: skip


def _text(value) -> str:
    """A database value as series-table text (dates ISO, times HH:MM:SS[.ffffff])."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()


def age_text(years: int | None) -> str:
    """Whole years, or ``89+`` from 89 on (an exact high age identifies a person)."""
    if years is None or years < 0:
        return ""
    return f"{AGE_CAP}+" if years >= AGE_CAP else str(int(years))


def common_folder(paths: list[str]) -> str:
    """The ``dicom_path`` of a stack: its one file, or the deepest folder holding all its files."""
    if not paths:
        return ""
    if len(paths) == 1:
        return paths[0]
    if len({os.path.isabs(p) for p in paths}) > 1:
        return ""  # mixed absolute/relative: no one folder (the job uses the exact files anyway)
    folders = {os.path.dirname(p) or "." for p in paths}  # usually one: no path splitting
    return folders.pop() if len(folders) == 1 else os.path.commonpath(list(folders))


def _path_resolver(dicom_root: Path):
    """Relative paths as stored, or with ``sub-`` before the first part where only
    that exists under ``dicom_root`` (one stat per distinct first part)."""
    prefixed: dict[str, bool] = {}

    def resolve(path: str) -> str:
        path = _text(path)
        if not path or os.path.isabs(path):
            return path
        first, sep, rest = path.partition("/")
        if first not in prefixed:
            prefixed[first] = not (dicom_root / first).exists() and (dicom_root / f"sub-{first}").exists()
        return f"sub-{first}{sep}{rest}" if prefixed[first] else path

    return resolve


# --------------------------------------------------------------------------- snapshot


def snapshot_paths(output_dir: str | os.PathLike) -> dict[str, Path]:
    """config key -> snapshot file under ``<output_dir>/code/bidsport``."""
    folder = Path(output_dir) / SNAPSHOT_DIR
    return {key: folder / name for key, name in SNAPSHOT_FILES.items()}


def snapshot_relpaths() -> tuple[str, ...]:
    """The snapshot files relative to output_dir (kept by ``overwrite: clean``)."""
    return tuple(f"{SNAPSHOT_DIR}/{name}" for name in SNAPSHOT_FILES.values())


def snapshot_texts(cfg: dict) -> dict[Path, str]:
    """Read the configured cohort: snapshot file -> its content (nothing is written)."""
    url, cohort = cfg["nils_database_url"], cfg["nils_cohort"]
    source = cfg.get("subject_identifier_source", "subject_code")
    series, instances, subjects, identifiers = read_cohort(url, cohort, cfg["dicom_root"], id_type=source)
    if not series:
        raise NilsDatabaseError(
            f"nils_cohort {cohort!r} of the NILS database {mask_url(url)} has no classified series "
            f"of an active subject (series_classification_cache): nothing to export"
        )
    paths = snapshot_paths(cfg["output_dir"])
    tables = {
        "series_table": (SERIES_COLUMNS, series),
        "instances_table": (INSTANCE_COLUMNS, instances),
        "subjects_table": (SUBJECT_COLUMNS, subjects),
        "subject_identifiers_table": (IDENTIFIER_COLUMNS, identifiers),
    }
    return {paths[k]: tsv.quoted_text(*tables[k]) for k in SNAPSHOT_FILES}


def write_snapshot(cfg: dict) -> dict[str, bool]:
    """Read the configured cohort and write the snapshot tables (only changed files
    are rewritten, so an unchanged database re-runs nothing). Returns file -> changed."""
    return {str(path): write_if_changed(path, text) for path, text in snapshot_texts(cfg).items()}


# The cohort read at parse time, written by the plan job of a real run (never by a
# dry run, --report or --lint): output folder -> {snapshot file: content}.
STAGED: dict[str, dict[Path, str]] = {}


def stage_snapshot(cfg: dict) -> bool:
    """Read the cohort now (main process, parse time) and keep it for the plan job;
    True when it differs from the snapshot on disk (the plan must be re-made)."""
    texts = snapshot_texts(cfg)
    STAGED[str(Path(cfg["output_dir"]))] = texts
    return any(_content(path) != text for path, text in texts.items())


def _content(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_staged(output_dir: str | os.PathLike) -> int:
    """The plan job: write the cohort staged at parse time; returns files rewritten."""
    texts = STAGED.get(str(Path(output_dir)), {})
    return sum(write_if_changed(path, text) for path, text in texts.items())
