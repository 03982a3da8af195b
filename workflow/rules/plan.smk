# The one global checkpoint: read and validate the tables, plan every series.


checkpoint plan:
    input:
        plan_inputs,
    output:
        plan=CODE / "plan.tsv",
        excluded=STATE / "excluded.tsv",
    log:
        STATE / "logs" / "plan.log",
    localrule: True
    params:
        settings=settings.job_settings(CFG, "plan"),
        # overwrite: clean empties output_dir at every run: a new token re-runs the plan.
        clean_token=workflow_support.clean_token(CFG),
    run:
        jobs.plan_job(params.settings, output.plan, output.excluded, log[0])
