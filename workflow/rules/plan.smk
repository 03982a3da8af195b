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
    conda:
        ENV
    params:
        settings=settings.planning_settings(CFG),
        dicom_root=CFG["dicom_root"],
    script:
        "../../scripts/rule_plan.py"
