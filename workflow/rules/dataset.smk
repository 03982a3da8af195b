# Dataset-level files from the final names, then the run's verdict.


rule dataset_files:
    input:
        plan=CODE / "plan.tsv",
        excluded=STATE / "excluded.tsv",
        manifests=series_manifests,
        # optional tables the step reads (an edit re-runs it)
        tables=workflow_support.dataset_tables(CFG),
    output:
        report=CODE / "export_report.tsv",
        files=workflow_support.dataset_outputs(CFG, OUT),
    log:
        STATE / "logs" / "dataset_files.log",
    localrule: True
    conda:
        ENV
    params:
        dcm2niix_version=DCM2NIIX_VERSION,
        fieldmaps=[
            CFG["fieldmap_targets"],
            CFG["fieldmap_intended_for"],
            CFG["fieldmap_matching"],
            CFG["fieldmap_max_gap_minutes"],
        ],
    script:
        "../../scripts/rule_dataset.py"


rule export_status:
    # Fails (so the run exits non-zero) while any series failed; cheap to re-run.
    input:
        report=CODE / "export_report.tsv",
    output:
        STATE / "status.ok",
    log:
        STATE / "logs" / "export_status.log",
    localrule: True
    conda:
        ENV
    shell:
        "python -m bidsport.workflow_support status {input.report:q} {output:q} > {log:q} 2>&1 || (cat {log:q} >&2; exit 1)"
