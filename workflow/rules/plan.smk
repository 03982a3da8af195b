# The one global checkpoint: read and validate the tables, plan every series.


checkpoint plan:
    input:
        workflow_support.table_inputs(CFG),
    output:
        plan=CODE / "plan.tsv",
        excluded=STATE / "excluded.tsv",
    log:
        STATE / "logs" / "plan.log",
    localrule: True
    params:
        settings=settings.planning_settings(CFG),
        dicom_root=CFG["dicom_root"],
        # overwrite: clean empties output_dir at every run: a new token re-runs the plan.
        clean_token=workflow_support.clean_token(CFG),
    run:
        jobs.plan_job(config, output.plan, output.excluded, log[0])
