"""Checkpoint `plan`: tables → plan.tsv + one spec per series (thin wrapper)."""

import sys
import traceback
from pathlib import Path

import os

from bidsport import bids_schema, nils_db, probe, safety, table
from bidsport import dcm2niix as d2n
from bidsport.plan import NothingToExport, build_plan, write_plan
from bidsport.settings import resolve_paths

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive
log = open(snakemake.log[0], "w", encoding="utf-8")
cfg = resolve_paths(snakemake.config)
try:
    series = table.load_series_table(cfg["series_table"], cfg["dicom_root"], lenient=cfg.get("lenient", False))
    identifiers = table.load_identifiers_table(cfg.get("subject_identifiers_table"))
    instances = table.load_instances_table(cfg.get("instances_table"), cfg["dicom_root"])
    state = Path(snakemake.output.excluded).parent
    plan = build_plan(
        series.rows,
        cfg,
        dicom_root=Path(cfg["dicom_root"]),
        identifiers=identifiers,
        table_path=str(series.path),
        image_facts=probe.prober(os.environ.get(d2n.ENV_VAR), Path(cfg["dicom_root"]), state / "probe", instances),
        instances=instances,
    )
    for warning in plan.warnings:  # unknown vocabulary, images that contradict the table
        print(f"warning: {warning}", file=log)
        print(f"bidsport warning: {warning}", file=sys.stderr)
    for skipped in series.skipped:  # lenient mode: bad rows are reported, never silently dropped
        plan.excluded.append({"line": skipped["line"], "status": "invalid", "reason": skipped["reason"]})
    if cfg["overwrite"] == "clean":  # checked and done only now that the tables are valid
        out = Path(cfg["output_dir"])
        keep = (".bidsport/lock", ".bidsport/logs")
        if cfg.get("nils_database_url"):  # this run's database snapshot: the plan's own input
            keep += nils_db.snapshot_relpaths()
        removed = safety.clean_output(out, Path(cfg["dicom_root"]), keep=keep)
        print(f"overwrite: clean removed {len(removed)} entr(y/ies) from {out}", file=log)
    changed = write_plan(plan, Path(snakemake.output.plan), state / "specs", Path(snakemake.output.excluded), cfg["overwrite"])
    bids_schema.write_facts(state / bids_schema.FACTS_FILE)  # the series jobs read these
    msg = f"planned {len(plan.entries)} series ({changed} spec(s) changed), excluded {len(plan.excluded)}"
    if plan.fallbacks:
        msg += f"; no {cfg['subject_identifier_source']} identifier, named by subject_code: {', '.join(plan.fallbacks)}"
    print(msg, file=log)
except (table.TableError, NothingToExport, ValueError, safety.SafetyError) as exc:
    print(str(exc), file=log)
    print(str(exc), file=sys.stderr)
    sys.exit(1)
except Exception:
    traceback.print_exc(file=log)
    raise
