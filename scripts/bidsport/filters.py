"""What is not exported, and why: the classifier's own exclusions (``excluded``,
manual review, non-MR stacks) and the export page's intent and provenance filters,
in the page's order; "No series to export" says what each filter removed."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only; table.read_table imports pandas when it reads
    import pandas as pd


EXCLUDED_COLUMNS = [
    "line", "subject_code", "series_instance_uid", "stack_index", "series_description",
    "directory_type", "provenance", "status", "reason",
]  # fmt: skip


def with_default_provenance(rows: pd.DataFrame) -> pd.DataFrame:
    """``provenance`` defaults to RawRecon (docs/series-table.md)."""
    if "provenance" not in rows.columns:
        return rows.assign(provenance="RawRecon")
    return rows.assign(provenance=rows["provenance"].where(rows["provenance"] != "", "RawRecon"))


def removed_record(r: dict, status: str, reason: str) -> dict:
    return {
        **{k: r.get(k, "") for k in EXCLUDED_COLUMNS},
        "line": r["_line"],
        "stack_index": r.get("stack_index") or "0",
        "status": status,
        "reason": reason,
    }


def classifier_exclusions(rows: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """What the classifier itself rules out: ``excluded`` rows and (unless
    ``include_manual_review``) rows it flagged for manual review. A ``localizer = 1``
    row is a localizer whatever its intent says, for the filters too."""
    rows = with_default_provenance(rows)
    if "localizer" in rows.columns:
        rows = rows.assign(directory_type=rows["directory_type"].where(rows["localizer"] != "1", "localizer"))
    if "manual_review_reasons_csv" in rows.columns:
        reasons = rows["manual_review_reasons_csv"]
    else:
        import pandas as pd  # already loaded by table.read_table

        reasons = pd.Series("", index=rows.index)
    removed: list[dict] = []
    counts = {"classifier (excluded)": 0, "not MR": 0, "manual review": 0}
    if "stack_modality" in rows.columns:  # NILS holds CT and PET too: never in an MRI dataset
        modality = rows["stack_modality"].str.strip().str.upper()
        other = (modality != "") & (modality != "MR")
        for r in rows[other].to_dict("records"):
            removed.append(removed_record(r, "excluded", f"not an MR image (stack_modality {r['stack_modality']})"))
        counts["not MR"] = int(other.sum())
        rows, reasons = rows[~other], reasons[~other]
    excluded = rows["directory_type"] == "excluded"
    for r, why in zip(rows[excluded].to_dict("records"), reasons[excluded]):
        removed.append(removed_record(r, "excluded", "classifier: directory_type excluded" + (f" ({why})" if why else "")))
    counts["classifier (excluded)"] = int(excluded.sum())
    rows, reasons = rows[~excluded], reasons[~excluded]
    if "manual_review_required" in rows.columns and not cfg.get("include_manual_review"):
        review = rows["manual_review_required"] == "1"
        for r, why in zip(rows[review].to_dict("records"), reasons[review]):
            removed.append(removed_record(
                r, "excluded", f"manual review required: {why or 'no reason given'} (include_manual_review: true exports it)"
            ))  # fmt: skip
        counts["manual review"] = int(review.sum())
        rows = rows[~review]
    return rows, removed, counts


def apply_filters(rows: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """The classifier's own exclusions, then the intent and provenance filters in
    the export page's order.

    Returns the kept rows, one record per removed row, and how many each step removed.
    """
    rows, removed, counts = classifier_exclusions(rows, cfg)
    steps = [
        ("include_intents", "directory_type", lambda v, allowed: v in allowed),
        ("exclude_intents", "directory_type", lambda v, banned: v not in banned),
        ("include_provenance", "provenance", lambda v, allowed: v in allowed),
        ("exclude_provenance", "provenance", lambda v, banned: v not in banned),
    ]
    for name, column, keep in steps:
        values = cfg.get(name)
        if values is None or (name.startswith("include") and not values):
            counts[name] = 0
            continue
        mask = rows[column].map(lambda v: keep(v, set(values))).astype(bool)
        gone = rows[~mask]
        counts[name] = len(gone)
        removed += [removed_record(r, "excluded", f"{name}: {column}={r[column]!r}") for r in gone.to_dict("records")]
        rows = rows[mask]
    return rows, removed, counts


def nothing_to_export_message(table: pd.DataFrame, counts: dict[str, int], cfg: dict) -> str:
    prov = with_default_provenance(table)["provenance"]
    lines = [f"No series to export: the series table has {len(table)} usable row(s), and the filters removed all of them."]
    for name, n in counts.items():
        if cfg.get(name):
            lines.append(f"  {name} = {list(cfg[name])} removed {n} row(s)")
        elif name not in cfg and n:
            lines.append(f"  {name} removed {n} row(s)")
    lines.append("  intents in the table: " + _value_counts(table["directory_type"]))
    lines.append("  provenances in the table: " + _value_counts(prov))
    lines.append("Check that sorting/classification completed, and loosen include_/exclude_ filters to match these values.")
    return "\n".join(lines)


def _value_counts(series: pd.Series) -> str:
    counts = Counter(series)
    return ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())) or "(none)"
