"""When a series was acquired: for ordering (sessions, fieldmap matching) and for
BIDS ``acq_time`` (scans.tsv, sessions.tsv)."""

from __future__ import annotations

import re

from .table import parse_date, parse_time

_CLOCK = re.compile(r"(?:(\d{4}-?\d{2}-?\d{2})T?)?(\d{1,2}):?(\d{1,2}):?(\d{1,2}(?:\.\d+)?)")


def acq_time(study_date: str, series_time: str) -> str:
    if not study_date or not series_time:
        return "n/a"
    seconds = int(parse_time(series_time))
    return f"{parse_date(study_date).isoformat()}T{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def acquisition(row: dict, manifest: dict | None) -> tuple[float, str]:
    """(seconds, for ordering; BIDS ``acq_time``) of a series. The images' own
    acquisition time (dcm2niix's sidecar, kept by the series job) comes first: a
    table's ``series_time`` can lie minutes after the acquisition. The table's
    ``study_date`` gives the day where the images give only a time of day."""
    found = _CLOCK.fullmatch(str((manifest or {}).get("acquired") or "").strip())
    if found:
        date = found.group(1) or row.get("study_date") or ""
        hours, minutes, seconds = int(found.group(2)), int(found.group(3)), float(found.group(4))
        if date and hours < 24 and minutes < 60 and seconds < 61:
            day = parse_date(date)
            whole = int(seconds)
            text = f"{day.isoformat()}T{hours:02d}:{minutes:02d}:{whole:02d}"
            return day.toordinal() * 86400 + hours * 3600 + minutes * 60 + seconds, text
    return _acq_seconds(row), acq_time(row.get("study_date", ""), row.get("series_time", ""))


def _acq_seconds(row: dict) -> float:
    if not row.get("series_time"):
        return float("inf")
    day = parse_date(row["study_date"]).toordinal() if row.get("study_date") else 0
    return day * 86400 + parse_time(row["series_time"])
