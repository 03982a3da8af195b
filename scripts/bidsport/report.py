"""The export report (``code/bidsport/export_report.tsv``): the series jobs'
manifests merged per series, one row per table row (exported, skipped, failed,
excluded, invalid) plus one per stale series, and the one reader of the file."""

from __future__ import annotations

import json
from pathlib import Path

from . import tsv

REPORT_COLUMNS = [
    "key", "line", "subject_code", "subject", "subject_source", "session", "series_instance_uid", "stack_index",
    "series_description", "directory_type", "provenance", "status", "reason", "files", "warnings",
]  # fmt: skip
STALE_REASON = "series no longer in the plan (removed row, or filtered out); files kept; `overwrite: clean` removes them"


def merge_manifests(manifests: list[Path]) -> tuple[dict[str, dict], set[str]]:
    """Series key -> its merged manifest (status, files, warnings, message, acquired),
    and the files whose sidecar lacks required keys (exported, but ignored).

    A series has one manifest per part (nifti, dicom): a failed part fails it, a
    skipped one is overridden by the other's status, messages are ``part: message``
    joined by ``; ``."""
    by_key: dict[str, dict] = {}
    incomplete: set[str] = set()
    for path in manifests:
        m = json.loads(Path(path).read_text(encoding="utf-8"))
        merged = by_key.setdefault(m["key"], {"status": m["status"], "files": [], "warnings": [], "message": ""})
        merged["files"] += m.get("files", [])
        incomplete |= {f["path"] for f in m.get("files", []) if f.get("incomplete")}
        merged["warnings"] += m.get("warnings", [])
        merged["acquired"] = merged.get("acquired") or m.get("acquired")  # the images' time (NIfTI part)
        if m["status"] == "failed" or merged["status"] == "skipped":
            merged["status"] = m["status"]
        if m.get("message"):
            merged["message"] = "; ".join(x for x in (merged["message"], f"{m.get('part', '')}: {m['message']}") if x)
    return by_key, incomplete


def series_files(plan: list[dict], by_key: dict[str, dict]) -> list[str]:
    """Every file the planned series' jobs wrote, in plan order."""
    return [f["path"] for row in plan for f in by_key.get(row["key"], {}).get("files", [])]


def build(plan: list[dict], by_key: dict[str, dict], excluded: list[dict], output_dir: Path,
          ledger_dir: Path) -> tuple[list[dict], dict[str, int]]:  # fmt: skip
    """(report rows, counts by status): the planned series, the excluded rows, then
    the stale series (a job ledger in ``ledger_dir`` whose series left the plan and
    whose files are still in ``output_dir``)."""
    rows = []
    counts = {"exported": 0, "skipped": 0, "failed": 0, "excluded": 0, "stale": 0}
    for row in plan:
        m = by_key.get(row["key"], {"status": "failed", "message": "no manifest (job did not finish)", "files": []})
        files = [f["path"] for f in m.get("files", [])]
        counts[m["status"]] = counts.get(m["status"], 0) + 1
        rows.append(
            {
                **{k: row.get(k, "") for k in REPORT_COLUMNS},
                "status": m["status"],
                "reason": m.get("message", ""),
                "files": ", ".join(files),
                "warnings": " | ".join([w for w in row.get("warnings", "").split(" | ") if w] + m.get("warnings", [])),
            }
        )
    for row in excluded:
        counts["excluded"] += 1
        rows.append({**{k: row.get(k, "") for k in REPORT_COLUMNS}, "status": row.get("status", "excluded")})
    for row in stale_rows(output_dir, ledger_dir, {r["key"] for r in plan}):
        counts["stale"] += 1
        rows.append(row)
    return rows, counts


def stale_rows(output_dir: Path, ledger_dir: Path, planned: set[str]) -> list[dict]:
    """One row per series no longer planned whose files are still in the dataset."""
    rows = []
    for ledger in sorted(ledger_dir.glob("*.json")) if ledger_dir.exists() else []:
        if ledger.name.split(".")[0] in planned:
            continue
        data = json.loads(ledger.read_text(encoding="utf-8"))
        present = [f["path"] for f in data.get("files", []) if (output_dir / f["path"]).exists()]
        if present:
            rows.append({"key": ledger.name.split(".")[0], "status": "stale", "files": ", ".join(present), "reason": STALE_REASON})
    return rows


def write_report(path: Path, rows: list[dict]) -> bool:
    """Write the report, only if its content changes."""
    return tsv.write(path, rows, REPORT_COLUMNS)


def read_report(path: Path) -> list[dict]:
    """The rows of an export report; none if it does not exist (yet)."""
    return tsv.read(path)

