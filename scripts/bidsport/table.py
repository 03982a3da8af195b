"""Load and validate the series table and its two companion tables.

Every problem is collected and reported together, one line each, naming the file,
the line (row) and the column, before anything is written (docs/series-table.md, Errors).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: start-up that steps without tables skip
    import jsonschema
    import pandas as pd

from .labels import LabelError, sanitize_label

def schema_dir() -> Path:
    """The JSON schemas of the config and the tables: shipped inside the package
    (``workflow/schemas`` in the source tree links here, Snakemake's usual place)."""
    return Path(__file__).resolve().parent / "schemas"

REQUIRED_SERIES_COLUMNS = ("subject_code", "series_instance_uid", "dicom_path", "directory_type")


class TableError(ValueError):
    """One or more problems in an input table; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input tables:"
        super().__init__("\n".join([head, *("  " + p for p in self.problems)]))


@dataclass
class SeriesTable:
    """A validated series table: ``rows`` keeps only rows that passed."""

    path: Path
    rows: pd.DataFrame
    skipped: list[dict] = field(default_factory=list)  # lenient mode: {line, reason}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV/CSV/Parquet table as text; an empty cell becomes ``""``.

    A ``_line`` column records the line each row came from in the file (header = 1)
    so that messages can point at it; for Parquet it is the row number + 2.
    """
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame = frame.astype(object).where(frame.notna(), "")
        frame = frame.map(_cell_text)
    elif suffix in (".tsv", ".csv", ".txt"):
        sep = "," if suffix == ".csv" else "\t"
        frame = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
            skip_blank_lines=True,
        )
    else:
        raise TableError([f"{path}: unsupported table format {suffix!r} (use .tsv, .csv or .parquet)"])
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.map(lambda v: v.strip() if isinstance(v, str) else v)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame.reset_index(drop=True)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y-%m-%d")
    return str(value)


def _load_schema(name: str) -> dict:
    import yaml

    with open(schema_dir() / name, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def parse_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` → date (ValueError if it is not a real date)."""
    digits = text.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError(f"{text!r} is not YYYY-MM-DD or YYYYMMDD")
    return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))


def parse_time(text: str) -> float:
    """``HHMMSS[.ffffff]`` or ``HH:MM:SS[.ffffff]`` → seconds since midnight."""
    clean = text.replace(":", "")
    whole, _, frac = clean.partition(".")
    if len(whole) != 6 or not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"{text!r} is not HHMMSS or HH:MM:SS")
    hours, minutes, seconds = int(whole[:2]), int(whole[2:4]), int(whole[4:])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 3600 + minutes * 60 + seconds + (float("0." + frac) if frac else 0.0)


def resolve_dicom_path(value: str, dicom_root: Path) -> Path:
    """A row's ``dicom_path``: relative paths are relative to ``dicom_root``."""
    path = Path(value)
    return path if path.is_absolute() else dicom_root / path


def _read_or_fail(path: str | os.PathLike) -> pd.DataFrame:
    try:
        return read_table(path)
    except TableError:
        raise
    except Exception as exc:  # pandas/pyarrow parse errors: keep the message, name the file
        raise TableError([f"{path}: cannot read the table: {exc}"]) from exc


def load_series_table(
    path: str | os.PathLike, dicom_root: str | os.PathLike, *, lenient: bool = False
) -> SeriesTable:
    """Read and validate the series table.

    Raises :class:`TableError` with every problem found. With ``lenient``, bad rows
    are dropped instead and listed in ``skipped`` (file-level problems still raise).
    """
    path = Path(path)
    dicom_root = Path(dicom_root)
    frame = _read_or_fail(path)

    missing = [c for c in REQUIRED_SERIES_COLUMNS if c not in frame.columns]
    if missing:
        raise TableError([f"{path}: missing required column {c!r}" for c in missing])

    import jsonschema

    schema = _load_schema("series_table.schema.yaml")
    validator = jsonschema.Draft202012Validator(schema)
    known = set(schema["properties"])
    row_problems: dict[int, list[str]] = {}

    def problem(line: int, column: str | None, message: str) -> None:
        where = f"{path}:{line}" + (f": column {column!r}" if column else "")
        row_problems.setdefault(line, []).append(f"{where}: {message}")

    first_line_of_key: dict[tuple[str, str], int] = {}
    for record in frame.to_dict("records"):
        line = record["_line"]
        cells = {k: v for k, v in record.items() if k in known and v != ""}
        for err in validator.iter_errors(cells):
            if err.validator == "required":
                column = err.message.split("'")[1]
                problem(line, column, "required value is empty")
            else:
                column = err.path[0] if err.path else None
                problem(line, column, _schema_message(err))
        for column in ("subject_code", "session_id", "task"):
            if cells.get(column):
                try:
                    sanitize_label(cells[column])
                except LabelError as exc:
                    problem(line, column, str(exc))
        if "study_date" in cells:
            try:
                parse_date(cells["study_date"])
            except ValueError as exc:
                problem(line, "study_date", f"unparseable date: {exc}")
        if "series_time" in cells:
            try:
                parse_time(cells["series_time"])
            except ValueError as exc:
                problem(line, "series_time", f"unparseable time: {exc}")
        uid = cells.get("series_instance_uid")
        if uid:
            key = (uid, cells.get("stack_index", "0"))
            if key in first_line_of_key:
                problem(
                    line,
                    "series_instance_uid",
                    f"duplicate (series_instance_uid, stack_index) = {key}, "
                    f"first seen on line {first_line_of_key[key]}",
                )
            else:
                first_line_of_key[key] = line
        if cells.get("dicom_path"):
            if "\x00" in cells["dicom_path"]:
                problem(line, "dicom_path", "path contains a NUL character")
            else:
                source = resolve_dicom_path(cells["dicom_path"], dicom_root)
                if not source.exists():
                    problem(line, "dicom_path", f"does not exist: {source}")

    skipped: list[dict] = []
    if row_problems:
        if not lenient:
            raise TableError([p for line in sorted(row_problems) for p in row_problems[line]])
        for line in sorted(row_problems):
            skipped.append({"line": line, "reason": "; ".join(row_problems[line])})
        frame = frame[~frame["_line"].isin(row_problems)]
    return SeriesTable(path=path, rows=frame.reset_index(drop=True), skipped=skipped)


def _schema_message(err: jsonschema.ValidationError) -> str:
    value = err.instance
    if err.validator == "enum":
        return f"{value!r} is not one of {', '.join(map(str, err.validator_value))}"
    if err.validator == "pattern":
        return f"{value!r} is not in the expected format"
    return err.message


def load_subjects_table(path: str | os.PathLike | None) -> pd.DataFrame | None:
    """Optional subjects table: ``subject_code`` plus columns for participants.tsv."""
    if not path:
        return None
    frame = read_table(path)
    if "subject_code" not in frame.columns:
        raise TableError([f"{path}: missing required column 'subject_code'"])
    dupes = frame[frame.duplicated("subject_code", keep=False)]
    if not dupes.empty:
        raise TableError(
            [f"{path}:{r._line}: column 'subject_code': duplicate {r.subject_code!r}" for r in dupes.itertuples()]
        )
    return frame


def load_identifiers_table(path: str | os.PathLike | None) -> pd.DataFrame | None:
    """Optional alternative identifiers: ``subject_code, id_type, other_identifier``."""
    if not path:
        return None
    frame = read_table(path)
    missing = [c for c in ("subject_code", "id_type", "other_identifier") if c not in frame.columns]
    if missing:
        raise TableError([f"{path}: missing required column {c!r}" for c in missing])
    return frame


LINK_COLUMNS = ("series_instance_uid", "fieldmap_series_instance_uid")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def load_fieldmap_links_table(path: str | os.PathLike) -> pd.DataFrame:
    """Per-lab fieldmap overrides: ``series_instance_uid`` (the target series),
    ``fieldmap_series_instance_uid`` (empty: no fieldmap), optional ``stack_index``
    (empty or absent: every stack). Checks against the plan: fieldmaps.check_links."""
    frame = _read_or_fail(path)
    columns = [c for c in frame.columns if c != "_line"]
    missing = [c for c in LINK_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in (*LINK_COLUMNS, "stack_index")]
    if missing or unknown:
        expected = ", ".join(LINK_COLUMNS) + " and optionally stack_index"
        raise TableError(
            [f"{path}: missing required column {c!r}" for c in missing]
            + [f"{path}: unknown column {c!r} (a fieldmap links table has the columns {expected})" for c in unknown]
        )
    if "stack_index" not in frame.columns:
        frame["stack_index"] = ""
    problems: list[str] = []
    first: dict[tuple[str, str], int] = {}
    for r in frame.to_dict("records"):
        at = f"{path}:{r['_line']}"
        uid, fmap, stack = r["series_instance_uid"], r["fieldmap_series_instance_uid"], r["stack_index"]
        if not uid:
            problems.append(f"{at}: column 'series_instance_uid': required value is empty")
        elif not _UID.match(uid):
            problems.append(f"{at}: column 'series_instance_uid': {uid!r} is not a DICOM UID")
        if fmap and not _UID.match(fmap):
            problems.append(f"{at}: column 'fieldmap_series_instance_uid': {fmap!r} is not a DICOM UID (leave it empty for no fieldmap)")
        if stack and not stack.isdigit():
            problems.append(f"{at}: column 'stack_index': {stack!r} is not an integer >= 0")
        key = (uid, str(int(stack)) if stack.isdigit() else stack)
        if uid and key in first:
            what = f"series {uid}" + (f" stack {stack}" if stack else "")
            problems.append(f"{at}: column 'series_instance_uid': {what} is listed twice, first on line {first[key]}")
        first.setdefault(key, r["_line"])
    if problems:
        raise TableError(problems)
    return frame


SESSION_RESERVED = ("acq_time",)


def load_sessions_table(path: str | os.PathLike | None) -> pd.DataFrame | None:
    """Optional sessions table: ``subject_code``, ``session_id`` (as in the series
    table) + columns for sessions.tsv. Adds ``_session``, the BIDS session label;
    two rows on one (subject_code, label) are an error naming both lines."""
    if not path:
        return None
    frame = _read_or_fail(path)
    missing = [c for c in ("subject_code", "session_id") if c not in frame.columns]
    reserved = [c for c in SESSION_RESERVED if c in frame.columns]
    if missing or reserved:
        raise TableError(
            [f"{path}: missing required column {c!r}" for c in missing]
            + [f"{path}: column {c!r} is written by bidsport (from the series table); rename it" for c in reserved]
        )
    problems: list[str] = []
    labels: list[str] = []
    first: dict[tuple[str, str], tuple[int, str]] = {}
    for r in frame.to_dict("records"):
        at = f"{path}:{r['_line']}"
        label = ""
        for column in ("subject_code", "session_id"):
            if not r[column]:
                problems.append(f"{at}: column {column!r}: required value is empty")
        if r["session_id"]:
            try:
                label = sanitize_label(r["session_id"])
            except LabelError as exc:
                problems.append(f"{at}: column 'session_id': {exc}")
        labels.append(label)
        if r["subject_code"] and label:
            key = (r["subject_code"], label)
            if key in first:
                line, raw = first[key]
                if raw == r["session_id"]:
                    problems.append(f"{at}: duplicate (subject_code, session_id) = ({r['subject_code']!r}, {raw!r}), first on line {line}")
                else:
                    problems.append(
                        f"{at}: column 'session_id': {r['session_id']!r} and {raw!r} (line {line}) both become "
                        f"ses-{label} for subject_code {r['subject_code']!r}"
                    )
            else:
                first[key] = (r["_line"], r["session_id"])
    if problems:
        raise TableError(problems)
    frame.insert(1, "_session", labels)
    return frame


INSTANCE_COLUMNS = ("series_instance_uid", "stack_index", "instance_number", "dicom_file_path")


def load_instances_table(path: str | os.PathLike | None, dicom_root: str | os.PathLike) -> dict[tuple[str, int], list[str]] | None:
    """Optional exact files per stack: ``(series_instance_uid, stack_index)`` -> absolute
    paths in ``instance_number`` order (empty last, then by path). Relative paths are
    relative to ``dicom_root``. Whether the files exist is checked by the series job
    (a missing file fails that series only)."""
    if not path:
        return None
    frame = _read_or_fail(path)
    missing = [c for c in INSTANCE_COLUMNS if c not in frame.columns]
    if missing:
        raise TableError([f"{path}: missing required column {c!r}" for c in missing])
    problems: list[str] = []
    root = Path(dicom_root)
    entries: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
    for line, uid, stack, number, file in zip(
        frame["_line"], frame["series_instance_uid"], frame["stack_index"], frame["instance_number"], frame["dicom_file_path"]
    ):
        at = f"{path}:{line}"
        if not uid or not _UID.match(uid):
            problems.append(f"{at}: column 'series_instance_uid': {uid!r} is not a DICOM UID")
        if stack and not stack.isdigit():
            problems.append(f"{at}: column 'stack_index': {stack!r} is not an integer >= 0")
        if number and not re.fullmatch(r"-?\d+", number):
            problems.append(f"{at}: column 'instance_number': {number!r} is not an integer")
        if not file or "\x00" in file:
            problems.append(f"{at}: column 'dicom_file_path': {'required value is empty' if not file else 'path contains a NUL character'}")
        if len(problems) >= 50:
            break  # enough to see the pattern
        if problems:
            continue
        order = (1, 0) if not number else (0, int(number))
        entries.setdefault((uid, int(stack or 0)), []).append((*order, str(resolve_dicom_path(file, root))))
    if problems:
        raise TableError(problems)
    return {key: [p for *_, p in sorted(files)] for key, files in entries.items()}


def load_ages(path: str | os.PathLike) -> dict[tuple[str, str], str] | None:
    """(series_instance_uid, stack_index) -> ``age_at_study`` of the series table, if it
    has that column (a NILS database snapshot has); the table itself was validated."""
    frame = _read_or_fail(path)
    if "age_at_study" not in frame.columns:
        return None
    stacks = frame["stack_index"] if "stack_index" in frame.columns else ["0"] * len(frame)
    return {(uid, str(int(stack or 0))): age for uid, stack, age in zip(frame["series_instance_uid"], stacks, frame["age_at_study"]) if age}
