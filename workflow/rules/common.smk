# Configuration, paths, and the input functions that read the plan.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# scripts/ holds the bidsport package; make it importable here (jobs get PYTHONPATH
# and PATH from workflow_support.prepare_job_environment below).
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from bidsport import (
    export_series,
    jobs,
    layout,
    qc,
    safety,
    settings,
    workflow_support,
)  # noqa: E402

workflow_support.prepare_job_environment(workflow.basedir)
# Snakemake's scheduler multiplies its wake-up timers (one more chain per finished
# job): keep one (a Snakemake internal, see workflow_support).
workflow_support.one_reevaluation_timer()

# Inside a cluster job (`--mode remote`: a SLURM job holding one series or a group
# of them), the series rules are local rules: this Snakemake runs them itself, as
# threads (use_threads is on under a remote executor), up to the CPUs the job
# holds. Otherwise the job-step executor starts every member as its own
# `srun ... python -m snakemake` (an interpreter, imports and a workflow parse per
# series) and one at a time (it is passed `--jobs 1`, which is the `_nodes`
# resource). This rests on Snakemake internals: see docs/clusters.md.
if workflow.remote_exec:

    localrules:
        convert_series,
        copy_series,

    workflow.register_resource("_nodes", workflow_support.job_cpus())


# Without --configfile/--config, export the demo (config/config.yaml).
if not config:

    configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


validate(config, str(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"))
settings.check_source(config)
CFG = settings.resolve_paths(config)
OUT = Path(CFG["output_dir"])
STATE = layout.state(OUT)
CODE = layout.code(OUT)
ENV = str(Path(workflow.basedir) / "envs" / "bidsport.yaml")

# Never write under the sources. The output lock is taken by onstart (below): only
# a real run holds it; a dry run, --report, --lint or --unlock writes nothing.
safety.check_output_location(OUT, Path(CFG["dicom_root"]))
safety.check_output_writable(OUT)

# nils_database_url: read the cohort once, here in the main process (never in cluster
# job steps); the plan job of a real run writes it as snapshot tables under
# code/bidsport/ (rewritten only when the database changed), and is forced when it did.
NILS_CHANGED = False
if CFG["nils_database_url"] and workflow.is_main_process:
    from bidsport import nils_db

    NILS_CHANGED = nils_db.stage_snapshot(CFG)

# One clear error before any job runs if dcm2niix is missing or broken; the
# resolved binary reaches the jobs through the environment (not a tracked param,
# so pointing at another binary does not re-run finished series).
DCM2NIIX, DCM2NIIX_VERSION = workflow_support.check_dcm2niix(CFG)
workflow_support.export_job_environment(CFG, DCM2NIIX)

# convert_workers bounds concurrent conversions unless --resources says otherwise.
if "dcm2niix_jobs" not in workflow.global_resources:
    workflow.register_resource("dcm2niix_jobs", int(CFG["convert_workers"]))


wildcard_constraints:
    key=r"s[0-9a-f]{16}",
    subject=r"[A-Za-z0-9]+",


# Failed series, series whose files were deleted and a dataset step whose files
# were deleted or changed run again: the input functions below mark those jobs
# forced while the DAG is built (main process only), and delete nothing, so a
# dry run shows exactly what the next run redoes.
def series_spec(part):
    def spec(wildcards):
        manifest = STATE / "done" / f"{wildcards.key}.{part}.json"
        workflow_support.force_if_stale(workflow, manifest, OUT)
        return str(STATE / "specs" / f"{wildcards.key}.json")

    return spec


def plan_inputs(wildcards):
    """The tables the plan reads; a changed database snapshot forces the plan."""
    if NILS_CHANGED:
        workflow_support.force(workflow, CODE / "plan.tsv")
    return workflow_support.table_inputs(CFG)


def series_manifests(wildcards):
    """Every per-series manifest the dataset step needs (after the checkpoint)."""
    workflow_support.force_if_changed(
        workflow, STATE / "dataset_files.json", OUT, CODE / "export_report.tsv"
    )
    return workflow_support.manifest_paths(checkpoints.plan.get().output.plan, STATE)


# Visual QC (rules/qc.smk): one job per subject with NIfTI series.
def qc_rows(wildcards):
    """The subject's plan rows: a tracked param, so a re-classification re-draws."""
    plan = checkpoints.plan.get().output.plan
    return workflow_support.nifti_rows_by_subject(plan).get(wildcards.subject, [])


def qc_manifests(wildcards):
    return [
        str(STATE / "done" / f"{row['key']}.nifti.json") for row in qc_rows(wildcards)
    ]


def qc_subcategory(wildcards, output):
    labels = qc.read_index(output.snapshots).get(wildcards.image, {})
    return (
        f"ses-{labels['session']} images"
        if labels.get("session", "—") != "—"
        else "images"
    )


def qc_labels(wildcards, output):
    labels = qc.read_index(output.snapshots).get(wildcards.image, {})
    shown = (
        "destination",
        "intent",
        "classification",
        "provenance",
        "series",
        "acquired",
        "shape",
        "source",
    )
    return {name: str(labels.get(name, "")) for name in shown}


def qc_targets(wildcards):
    """Every subject's QC page, when QC is on and the export writes NIfTI."""
    if not (CFG["qc_snapshots"] and settings.wants_nifti(CFG)):
        return []
    plan = checkpoints.plan.get().output.plan
    subjects = sorted(workflow_support.nifti_rows_by_subject(plan))
    return [str(STATE / "qc" / f"sub-{s}" / "summary.html") for s in subjects]


# A real run (never a dry run, --report, --lint, --unlock or a cluster job step):
# take the output folder's lock, then warn if its disk looks too small.
onstart:
    safety.lock_output(OUT)
    if not workflow_support.will_run(workflow, "plan"):
        workflow_support.warn_about_space(CODE / "plan.tsv", STATE, CFG)


# A short summary at the end of every run, whether it succeeded or not; the run
# exits non-zero while any series failed (its job succeeded: failure isolation).
onsuccess:
    workflow_support.cancel_pending_timers()  # exit now, not a second later
    workflow_support.finish_run(
        CODE / "export_report.tsv", STATE / "logs" / "series"
    )


onerror:
    workflow_support.cancel_pending_timers()
    workflow_support.print_summary(
        CODE / "export_report.tsv", STATE / "logs" / "series"
    )
