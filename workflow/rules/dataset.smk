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
        ledger=STATE / "dataset_files.json",
        files=workflow_support.dataset_outputs(CFG, OUT),
    log:
        STATE / "logs" / "dataset_files.log",
    localrule: True
    params:
        settings=settings.job_settings(CFG, "dataset"),
        dcm2niix_version=DCM2NIIX_VERSION,
    run:
        jobs.dataset_job(
            params.settings,
            input.plan,
            input.excluded,
            input.manifests,
            output.report,
            output.ledger,
            params.dcm2niix_version,
            log[0],
        )
