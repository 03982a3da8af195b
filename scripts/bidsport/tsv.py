"""Tab-separated tables: the one writer and reader of the files bidsport writes
(plan, report, participants, sessions, scans), with no heavy imports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .fsutil import write_if_changed


def clean(value) -> str:
    """A cell on one line: tabs and line breaks would split the row."""
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def to_text(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as TSV text: ``columns`` in order (missing cells empty, others dropped)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: clean(r.get(k, "")) for k in columns})
    return buf.getvalue()


def quoted_text(columns: list[str], rows: list[list[str]]) -> str:
    """TSV as pandas would write it: cells kept whole, quoted only where a value needs
    it (a snapshot of a database, read back by the table loader)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def write(path: Path, rows: list[dict], columns: list[str]) -> bool:
    """Write the table atomically unless the file already holds exactly it."""
    return write_if_changed(path, to_text(rows, columns))


def read(path: Path) -> list[dict]:
    """The rows of a TSV file as dicts; none if the file does not exist."""
    if not Path(path).exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
