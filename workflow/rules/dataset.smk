# Dataset-level files from the final names. The run's verdict (non-zero exit while
# any series failed) is given by onsuccess in common.smk: no job of its own.


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
    params:
        dcm2niix_version=DCM2NIIX_VERSION,
        fieldmaps=[
            CFG["fieldmap_targets"],
            CFG["fieldmap_intended_for"],
            CFG["fieldmap_matching"],
            CFG["fieldmap_max_gap_minutes"],
        ],
    run:
        jobs.dataset_job(
            config,
            input.plan,
            input.excluded,
            input.manifests,
            output.report,
            params.dcm2niix_version,
            log[0],
        )
