"""Cohorts the page can export: series tables named in the config and, when
``nils_database_url`` is set, the database's cohorts (bidsport.nils_db)."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .. import nils_db, table
from ..filters import with_default_provenance

# Config keys only the page reads: never written into an export's config.
WEB_ONLY_KEYS = ("series_tables",)
# Keys a database cohort replaces (nils_db reads them from the database).
TABLE_KEYS = ("series_table", "subjects_table", "subject_identifiers_table", "instances_table")
DB_REFRESH_SECONDS = 60


@dataclass
class Cohort:
    """A loaded cohort: validated rows plus what the form offers for it."""

    ident: str  # "table:<path>" or "db:<name>"
    label: str
    rows: pd.DataFrame
    table_path: str
    skipped: list[dict] = field(default_factory=list)
    id_types: list[str] = field(default_factory=list)
    # Database cohorts: the identifiers of one id type, read from the database.
    identifiers_for: Callable[[str], pd.DataFrame] | None = None

    def identifiers(self, cfg: dict) -> pd.DataFrame | None:
        """The alternative identifiers the plan needs (build_plan's ``identifiers``)."""
        if self.identifiers_for is None:
            return table.load_identifiers_table(cfg.get("subject_identifiers_table"))
        source = str(cfg.get("subject_identifier_source", "subject_code"))
        return None if source == "subject_code" else self.identifiers_for(source)

    def counts(self) -> dict:
        """Series by intent x provenance (the page's cohort table)."""
        rows = with_default_provenance(self.rows)
        grid = pd.crosstab(rows["directory_type"], rows["provenance"]) if len(rows) else pd.DataFrame()
        return {
            "intents": [str(i) for i in grid.index],
            "provenances": [str(p) for p in grid.columns],
            "cells": [[int(v) for v in row] for row in grid.to_numpy()],
            "total": int(len(rows)),
        }


class CohortError(ValueError):
    pass


def table_sources(defaults: dict) -> list[str]:
    """Absolute paths of the series tables the config names (series_table, series_tables)."""
    found: list[str] = []
    for value in [defaults.get("series_table"), *(defaults.get("series_tables") or [])]:
        if value and str(value) not in found:
            found.append(str(value))
    return found


def database_cohorts(defaults: dict) -> tuple[list[str], str | None]:
    """(cohort names, problem) from the NILS database, if one is configured."""
    url = defaults.get("nils_database_url")
    if not url:
        return [], None
    try:
        found = nils_db.list_cohorts(url)  # [{"name", "n_subjects"}]
    except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
        return [], f"cannot list the database's cohorts: {_without_secrets(str(exc), url)}"
    return [str(c["name"]) for c in found], None


def _without_secrets(text: str, url: str) -> str:
    """A driver message may quote the URL; never show a password."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def choices(defaults: dict) -> tuple[list[dict], str | None]:
    """Every cohort the page can offer: [{"value", "label"}], plus a database problem."""
    options = [{"value": f"table:{p}", "label": f"Series table {p}"} for p in table_sources(defaults)]
    names, problem = database_cohorts(defaults)
    options += [{"value": f"db:{n}", "label": f"Database cohort {n}"} for n in names]
    return options, problem


class CohortCache:
    """Loaded cohorts, re-read when a table file changes (keyed by its mtime)."""

    def __init__(self, defaults: dict, snapshot_dir: Path):
        self.defaults = defaults
        self.snapshot_dir = Path(snapshot_dir)
        self._lock = threading.Lock()
        self._cache: dict[tuple, Cohort] = {}

    def load(self, ident: str) -> Cohort:
        offered = {o["value"] for o in choices(self.defaults)[0]} if ident.startswith("db:") else {
            f"table:{p}" for p in table_sources(self.defaults)
        }
        if ident not in offered:
            raise CohortError(f"unknown cohort {ident!r}: choose one of the list")
        dicom_root = self.defaults.get("dicom_root")
        if not dicom_root:
            raise CohortError("the config names no dicom_root")
        key = (ident, dicom_root, self._version(ident))
        with self._lock:
            if key not in self._cache:
                self._cache = {k: v for k, v in self._cache.items() if k[0] != ident}
                self._cache[key] = self._read(ident, dicom_root)
            return self._cache[key]

    def _version(self, ident: str) -> tuple:
        if ident.startswith("db:"):
            return (int(time.time() // DB_REFRESH_SECONDS),)  # a database has no mtime: re-read now and then
        paths = [ident[len("table:"):]]
        paths.append(self.defaults.get("subject_identifiers_table") or "")
        return tuple(Path(p).stat().st_mtime_ns if p and Path(p).exists() else 0 for p in paths)

    def _read(self, ident: str, dicom_root: str) -> Cohort:
        lenient = bool(self.defaults.get("lenient", False))
        if ident.startswith("table:"):
            path = ident[len("table:"):]
            try:
                loaded = table.load_series_table(path, dicom_root, lenient=lenient)
            except table.TableError as exc:
                raise CohortError(str(exc)) from exc
            rows, skipped, label = loaded.rows, loaded.skipped, f"Series table {path}"
        else:
            name = ident[len("db:"):]
            rows, skipped, label, path = self._read_database(name, dicom_root, lenient)
            configured = str(self.defaults.get("subject_identifier_source") or "subject_code")
            id_types = [] if configured == "subject_code" else [configured]
            return Cohort(ident, label, rows, path, skipped, id_types, self._database_identifiers(name, dicom_root))
        return Cohort(ident, label, rows, path, skipped, self._id_types())

    def _database_identifiers(self, name: str, dicom_root: str) -> Callable[[str], pd.DataFrame]:
        url = self.defaults["nils_database_url"]

        def read(id_type: str) -> pd.DataFrame:
            try:
                return nils_db.load_cohort(url, name, dicom_root, id_type=id_type)[3]
            except Exception as exc:  # noqa: BLE001 - e.g. an unknown id type, shown in the preview
                raise CohortError(_without_secrets(str(exc), url)) from exc

        return read

    def _read_database(self, name: str, dicom_root: str, lenient: bool):
        """The cohort as the workflow will see it: nils_db reads it, and its snapshot
        (the series-table contract) is checked by the same table loader."""
        url = self.defaults["nils_database_url"]
        try:
            series = nils_db.load_cohort(url, name, dicom_root)[0]
        except Exception as exc:  # noqa: BLE001 - shown beside the cohort field
            raise CohortError(_without_secrets(str(exc), url)) from exc
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        snapshot = self.snapshot_dir / f"{hashlib.sha1(name.encode()).hexdigest()[:12]}.tsv"
        series.drop(columns=["_line"], errors="ignore").to_csv(snapshot, sep="\t", index=False)
        try:
            checked = table.load_series_table(snapshot, dicom_root, lenient=lenient)
        except table.TableError as exc:
            raise CohortError(str(exc).replace(str(snapshot), f"database cohort {name}")) from exc
        return checked.rows, checked.skipped, f"Database cohort {name}", f"database cohort {name}"

    def _id_types(self) -> list[str]:
        ids = table.load_identifiers_table(self.defaults.get("subject_identifiers_table"))
        if ids is None:
            return []
        return sorted({str(v) for v in ids["id_type"] if str(v)})
