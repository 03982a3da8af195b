# bidsport: export classified MRI DICOM series into a BIDS dataset.
# Thin entry point: config, validation, includes and the default target.
# Run: snakemake --cores 4            (config/config.yaml, the demo)
#      snakemake -s path/to/Snakefile -d WORKDIR --configfile cfg.yaml --cores N


include: "workflow/rules/common.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/qc.smk"


report: "workflow/report/workflow.rst"


if config.get("demo"):

    include: "workflow/rules/demo.smk"


rule all:
    default_target: True
    input:
        dataset=rules.dataset_files.output,
        qc=qc_targets,
