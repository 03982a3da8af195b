"""The bodies of the checkpoint ``plan`` and the rules ``dataset_files`` and ``qc_subject``.

They run as threads of the Snakemake process (``run:`` with force-use-threads),
where the libraries they need are imported once per run: no interpreter start-up,
and no second import of pandas or nibabel, per job.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from . import bids_schema, faults, layout, probe
from . import dcm2niix as d2n
from .settings import resolve_paths


class PlanningFailed(RuntimeError):
    """The tables cannot be planned (the message says why)."""


class DatasetFailed(RuntimeError):
    """The dataset step could not write its files (the message says why)."""


def plan_job(settings: dict, plan_tsv: str, excluded_tsv: str, log_path: str) -> None:
    """Checkpoint ``plan``: tables → plan.tsv, excluded.tsv and one spec per series.

    ``settings``: ``settings.job_settings(cfg, "plan")``, the keys it reads (tracked)."""
    from . import nils_db, safety, table
    from .plan import NothingToExport, build_plan, write_plan

    cfg = resolve_paths(settings)
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            if cfg.get("nils_cohort"):  # the cohort read at parse time: the tables planned from
                print(f"database snapshot: {nils_db.write_staged(cfg['output_dir'])} table(s) rewritten", file=log)
            series = table.load_series_table(cfg["series_table"], cfg["dicom_root"], lenient=cfg.get("lenient", False))
            identifiers = table.load_identifiers_table(cfg.get("subject_identifiers_table"))
            instances = table.load_instances_table(cfg.get("instances_table"), cfg["dicom_root"])
            state = Path(excluded_tsv).parent
            plan = build_plan(
                series.rows,
                cfg,
                dicom_root=Path(cfg["dicom_root"]),
                identifiers=identifiers,
                table_path=str(series.path),
                image_facts=probe.prober(os.environ.get(d2n.ENV_VAR), Path(cfg["dicom_root"]), state / "probe", instances),
                image_type=probe.image_type_reader(Path(cfg["dicom_root"]), instances),
                instances=instances,
            )
            for warning in plan.warnings:  # unknown vocabulary, images that contradict the table
                print(f"warning: {warning}", file=log)
                print(f"bidsport warning: {warning}", file=sys.stderr)
            for skipped in series.skipped:  # lenient mode: bad rows are reported, never silently dropped
                plan.excluded.append({"line": skipped["line"], "status": "invalid", "reason": skipped["reason"]})
            if cfg["overwrite"] == "clean":  # checked and done only now that the tables are valid
                out = Path(cfg["output_dir"])
                keep = (f"{layout.STATE_DIR}/lock", f"{layout.STATE_DIR}/logs")
                if cfg.get("nils_cohort"):  # this run's database snapshot: the plan's own input
                    keep += nils_db.snapshot_relpaths()
                if cfg.get("overrides_table") and Path(cfg["overrides_table"]).resolve().is_relative_to(out.resolve()):
                    keep += (str(Path(cfg["overrides_table"]).resolve().relative_to(out.resolve())),)  # the page's decisions: an input
                removed = safety.clean_output(out, Path(cfg["dicom_root"]), keep=keep)
                print(f"overwrite: clean removed {len(removed)} entr(y/ies) from {out}", file=log)
            changed = write_plan(plan, Path(plan_tsv), state / "specs", Path(excluded_tsv), cfg["overwrite"])
            bids_schema.write_facts(state / bids_schema.FACTS_FILE)  # the series jobs read these
            from .workflow_support import warn_about_space

            warn_about_space(Path(plan_tsv), state, {"dcm_copy_method": os.environ.get("BIDSPORT_COPY_METHOD", "copy")})
            msg = f"planned {len(plan.entries)} series ({changed} spec(s) changed), excluded {len(plan.excluded)}"
            if plan.fallbacks:
                msg += f"; no {cfg['subject_identifier_source']} identifier, named by subject_code: {', '.join(plan.fallbacks)}"
            print(msg, file=log)
        except (table.TableError, NothingToExport, ValueError, safety.SafetyError) as exc:
            print(str(exc), file=log)
            raise PlanningFailed(str(exc)) from None  # Snakemake prints the message
        except OSError as exc:
            fault = faults.describe(exc, Path(cfg["output_dir"]))
            if not fault:  # a bug of bidsport
                traceback.print_exc(file=log)
                raise
            print(fault, file=log)
            raise PlanningFailed(fault) from None
        except Exception:
            traceback.print_exc(file=log)
            raise


def dataset_job(settings: dict, plan_tsv: str, excluded_tsv: str, manifests: list[str], report_tsv: str,
                ledger: str, dcm2niix_version: str, log_path: str) -> None:  # fmt: skip
    """Rule ``dataset_files``: dataset_description, participants, scans, .bidsignore, report.

    ``settings``: ``settings.job_settings(cfg, "dataset")``, the keys it reads (tracked)."""
    from . import dataset, table

    cfg = resolve_paths(settings)
    subjects = table.load_subjects_table(cfg.get("subjects_table"))
    ages = table.load_ages(cfg["series_table"])  # age_at_study, if the series table has it
    try:
        counts = dataset.finalize(
            output_dir=Path(cfg["output_dir"]),
            plan_tsv=Path(plan_tsv),
            excluded_tsv=Path(excluded_tsv),
            manifests=[Path(p) for p in manifests],
            report_tsv=Path(report_tsv),
            cfg=cfg,
            dcm2niix_version=dcm2niix_version,
            subjects=subjects,
            ages=ages,
            state_ledger=Path(ledger),
        )
    except OSError as exc:  # a full disk, a vanished folder: one line, not a traceback
        fault = faults.describe(exc, Path(cfg["output_dir"]))
        if not fault:
            raise
        raise DatasetFailed(f"dataset-level files not written: {fault}") from None
    with open(log_path, "w", encoding="utf-8") as log:
        print(dataset.summary_text(counts, Path(report_tsv)), file=log)


def qc_job(rows, output_dir: str, dicom_root: str, snapshots: str, summary: str, subject: str, log_path: str) -> None:
    """Rule ``qc_subject``: snapshots of one subject's NIfTI images and its summary page."""
    from . import qc

    result = qc.subject_qc(
        rows=list(rows),
        output_dir=Path(output_dir),
        state_dir=layout.state(output_dir),
        snapshot_dir=Path(snapshots),
        summary=Path(summary),
        dicom_root=Path(dicom_root).absolute(),
    )
    with open(log_path, "w", encoding="utf-8") as log:
        print(f"sub-{subject}: {result['images']} snapshot(s); {result['problems']} image(s) could not be read", file=log)
